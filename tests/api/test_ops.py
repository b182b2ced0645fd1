"""Liveness, readiness, metrics, the CapabilityStatement and the served OpenAPI contract."""

from __future__ import annotations

from pathlib import Path

import yaml
from flask.testing import FlaskClient

from service.app import create_app
from service.config import Settings


def test_healthz(client: FlaskClient) -> None:
    result = client.get("/healthz")
    assert result.status_code == 200
    assert result.get_json() == {"status": "ok"}


def test_readyz_when_migrated(client: FlaskClient) -> None:
    result = client.get("/readyz")
    assert result.status_code == 200
    assert result.get_json()["migrations"] == "current"


def test_readyz_when_migrations_are_pending(tmp_path: Path) -> None:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}", log_level="WARNING", auth_mode="none")
    )
    result = app.test_client().get("/readyz")
    assert result.status_code == 503
    assert result.get_json()["migrations"] == "pending"


def test_readyz_when_database_is_unreachable() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", log_level="WARNING", auth_mode="none"
    )
    result = create_app(settings).test_client().get("/readyz")
    assert result.status_code == 503
    assert result.get_json()["database"] == "unreachable"
    assert result.headers["Retry-After"]


def test_metrics_count_requests_by_route_and_status(client: FlaskClient) -> None:
    client.get("/fhir/Questionnaire")
    client.get("/fhir/Questionnaire/missing")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'proms_http_requests_total{method="GET",route="/fhir/<resource_type>",status="200"} 1.0' in text
    assert 'route="/fhir/<resource_type>/<fhirid:resource_id>",status="404"} 1.0' in text
    assert "proms_http_request_duration_seconds_bucket" in text


def test_capability_statement_tells_the_truth(client: FlaskClient) -> None:
    statement = client.get("/fhir/metadata").get_json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {
        "Questionnaire",
        "QuestionnaireResponse",
        "Observation",
        "Provenance",
        "StructureDefinition",
        "AuditEvent",
        "Flag",
        "Subscription",
        "Group",
        "Basic",
        "Patient",
        "Measure",
        "MeasureReport",
        "Task",
        "Communication",
        "ValueSet",
        "CodeSystem",
    }
    task = resources["Task"]
    assert {p["name"] for p in task["searchParam"]} == {
        "_id", "_lastUpdated", "patient", "subject", "status", "code", "focus", "owner", "requester", "authored-on",
        "period",
    }  # fmt: skip
    assert {op["name"] for op in task["operation"]} == {"invite"}
    assert "create" in {i["code"] for i in task["interaction"]}
    qr = resources["QuestionnaireResponse"]
    params = {p["name"] for p in qr["searchParam"]}
    assert params == {
        "_id",
        "_lastUpdated",
        "patient",
        "subject",
        "questionnaire",
        "status",
        "authored",
        "author",
        "identifier",
    }
    assert {i["code"] for i in qr["interaction"]} == {
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    }
    assert qr["searchInclude"] == ["QuestionnaireResponse:questionnaire"]
    assert qr["searchRevInclude"] == ["Observation:derived-from"]
    assert {op["name"] for op in qr["operation"]} == {"validate", "extract"}
    observation = resources["Observation"]
    assert {i["code"] for i in observation["interaction"]} == {
        "read",
        "vread",
        "history-instance",
        "history-type",
        "search-type",
    }
    assert {p["name"] for p in observation["searchParam"]} == {
        "_id",
        "_lastUpdated",
        "patient",
        "subject",
        "code",
        "category",
        "date",
        "derived-from",
        "status",
    }
    assert "http://hl7.org/fhir/uv/sdc/CapabilityStatement/sdc-form-manager" in statement["instantiates"]
    assert {i["code"] for i in resources["AuditEvent"]["interaction"]} == {"read", "search-type"}
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    q_params = {p["name"] for p in resources["Questionnaire"]["searchParam"]}
    assert q_params == {"_id", "_lastUpdated", "url", "version", "name", "title", "status", "code"}
    subscription = resources["Subscription"]
    assert {op["name"] for op in subscription["operation"]} == {"status", "events"}
    assert {p["name"] for p in subscription["searchParam"]} == {"_id", "_lastUpdated", "status", "url", "patient"}
    assert "history-type" not in {i["code"] for i in subscription["interaction"]}
    assert len(subscription["extension"]) == 4  # the topics it can name
    assert {i["code"] for i in resources["Basic"]["interaction"]} == {"read", "search-type"}
    assert [op["name"] for op in resources["Group"]["operation"]] == ["export"]
    assert resources["Measure"]["operation"] == [
        {"name": "evaluate-measure", "definition": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"}
    ]
    assert {i["code"] for i in resources["MeasureReport"]["interaction"]} == {
        "read", "vread", "history-instance", "history-type", "search-type",
    }  # fmt: skip
    assert {p["name"] for p in resources["MeasureReport"]["searchParam"]} == {
        "_id", "_lastUpdated", "measure", "subject", "patient", "period", "date", "status",
    }  # fmt: skip
    assert [p["name"] for p in resources["Group"]["searchParam"] if p["name"] == "member"] == ["member"]
    assert resources["Patient"] == {
        "type": "Patient",
        "operation": [
            {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}
        ],
    }
    assert statement["rest"][0]["operation"] == [
        {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
    ]


def test_openapi_contract_is_served(client: FlaskClient) -> None:
    result = client.get("/openapi.yaml")
    assert result.status_code == 200
    spec = yaml.safe_load(result.get_data())
    assert spec["openapi"].startswith("3.")
    assert "/fhir/metadata" in spec["paths"]
