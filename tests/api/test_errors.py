"""Every kind of bad request gets a clear OperationOutcome with the right status, and changes nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient

from service import resources
from tests.api.builders import questionnaire, response
from tests.conftest import Fhir


def _outcome(result: Any, status: int) -> dict[str, Any]:
    assert result.status_code == status, result.get_data(as_text=True)
    body: dict[str, Any] = result.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["details"]["text"]
    return body


def test_malformed_json_is_400(client: FlaskClient) -> None:
    result = client.post("/fhir/Questionnaire", data=b"{not json", content_type="application/fhir+json")
    assert "not valid JSON" in _outcome(result, 400)["issue"][0]["details"]["text"]
    for body in (b"", b"[1, 2]", b'"text"'):
        _outcome(client.post("/fhir/Questionnaire", data=body, content_type="application/fhir+json"), 400)


def test_invalid_fhir_lists_every_problem_with_its_expression(fhir: Fhir) -> None:
    bad = response()
    bad["authored"] = "last Tuesday"
    bad["item"][0]["answer"][0] = {"valueInteger": "three"}
    bad["colour"] = "blue"
    outcome = _outcome(fhir.post("QuestionnaireResponse", bad), 400)
    expressions = {issue["expression"][0] for issue in outcome["issue"]}
    assert "QuestionnaireResponse.authored" in expressions
    assert "QuestionnaireResponse.item[0].answer[0].valueInteger" in expressions
    assert "QuestionnaireResponse.colour" in expressions


def test_wrong_resource_type_in_body_is_400(fhir: Fhir) -> None:
    outcome = _outcome(fhir.post("QuestionnaireResponse", questionnaire()), 400)
    assert "Questionnaire" in outcome["issue"][0]["details"]["text"]


def test_unknown_type_and_endpoint_are_404(fhir: Fhir, client: FlaskClient) -> None:
    _outcome(fhir.get("Patient/123"), 404)
    _outcome(fhir.post("Patient", {"resourceType": "Patient"}), 404)
    _outcome(client.get("/nowhere"), 404)
    _outcome(fhir.get("Questionnaire/bad id with spaces"), 404)


def test_wrong_method_is_405(client: FlaskClient) -> None:
    result = client.patch("/fhir/Questionnaire/abc", data=b"{}", content_type="application/fhir+json")
    _outcome(result, 405)
    assert "GET" in result.headers["Allow"]


def test_unacceptable_format_is_406(fhir: Fhir, client: FlaskClient) -> None:
    _outcome(client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    _outcome(client.get("/fhir/Questionnaire?_format=xml"), 406)
    assert client.get("/fhir/metadata", headers={"Accept": "application/json"}).status_code == 200
    assert client.get("/fhir/metadata", headers={"Accept": "*/*"}).status_code == 200
    assert client.get("/fhir/metadata?_format=json", headers={"Accept": "text/html"}).status_code == 200


def test_wrong_content_type_is_415(client: FlaskClient, fhir: Fhir) -> None:
    body = orjson.dumps(questionnaire())
    _outcome(client.post("/fhir/Questionnaire", data=body, content_type="text/plain"), 415)
    _outcome(client.post("/fhir/Questionnaire", data=body), 415)
    assert client.post("/fhir/Questionnaire", data=body, content_type="application/json").status_code == 201
    assert fhir.get("Questionnaire").get_json()["total"] == 1


def test_body_over_the_limit_is_413(client: FlaskClient, app: Flask) -> None:
    limit = app.web.services.settings.max_body_bytes
    huge = questionnaire(description="x" * (limit + 1))
    _outcome(client.post("/fhir/Questionnaire", data=orjson.dumps(huge), content_type="application/fhir+json"), 413)
    assert client.get("/fhir/Questionnaire").get_json()["total"] == 0


def test_unexpected_error_is_500_outcome_with_request_id_and_no_traceback(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(resources, "read", explode)
    result = client.get("/fhir/Questionnaire/abc", headers={"X-Request-ID": "req-42"})
    outcome = _outcome(result, 500)
    text = outcome["issue"][0]["details"]["text"]
    assert "req-42" in text
    assert "secret internals" not in result.get_data(as_text=True)
    assert "Traceback" not in result.get_data(as_text=True)
    assert result.headers["X-Request-ID"] == "req-42"
    assert any("secret internals" in (record.exc_text or "") for record in caplog.records)


def test_request_id_is_generated_when_absent_or_unsafe(client: FlaskClient) -> None:
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    unsafe = client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"}).headers["X-Request-ID"]
    assert unsafe != "<script>alert(1)</script>"
    assert len(unsafe) == 32
