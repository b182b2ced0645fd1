"""Idempotent submission: a response with a business identifier is stored once, however often it is sent."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import Fhir, Keys


@pytest.fixture(autouse=True)
def instrument(fhir: Fhir) -> None:
    fhir.create(scored_questionnaire())


def _with_identifier(value: str, system: str | None = "urn:ehr:forms") -> dict[str, Any]:
    body = scored_response(("often", "never", "always"))
    body["identifier"] = {"value": value, **({"system": system} if system else {})}
    return body


def test_a_repeat_returns_the_stored_response(fhir: Fhir) -> None:
    first = fhir.post("QuestionnaireResponse", _with_identifier("F-1"))
    assert first.status_code == 201
    again = fhir.post("QuestionnaireResponse", _with_identifier("F-1"))
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["ETag"] == 'W/"1"'
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 1
    assert fhir.get("Observation").get_json()["total"] == 2
    # The same value in another system, or with no system, is a different response.
    assert fhir.post("QuestionnaireResponse", _with_identifier("F-1", "urn:other")).status_code == 201
    assert fhir.post("QuestionnaireResponse", _with_identifier("F-1", None)).status_code == 201
    assert fhir.post("QuestionnaireResponse", _with_identifier("F-1", None)).status_code == 200
    odd = _with_identifier("a,b|c\\d")
    assert fhir.post("QuestionnaireResponse", odd).status_code == 201
    assert fhir.post("QuestionnaireResponse", odd).status_code == 200
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 4


def test_a_repeat_is_answered_from_the_store_whatever_its_body(fhir: Fhir) -> None:
    # As FHIR's conditional create: once the identifier matches, the posted body is not looked at again.
    first = fhir.post("QuestionnaireResponse", _with_identifier("F-2"))
    assert first.status_code == 201
    changed = _with_identifier("F-2")
    changed["item"][0]["answer"] = [{"valueCoding": {"code": "not-an-option"}}]
    without_identifier = {k: v for k, v in changed.items() if k != "identifier"}
    assert fhir.post("QuestionnaireResponse", without_identifier).status_code == 422
    again = fhir.post("QuestionnaireResponse", changed)
    assert again.status_code == 200
    assert again.get_json() == first.get_json()


def test_a_deleted_response_frees_its_identifier(fhir: Fhir) -> None:
    first = fhir.create(_with_identifier("D-1"))
    fhir.delete(f"QuestionnaireResponse/{first['id']}")
    assert fhir.post("QuestionnaireResponse", _with_identifier("D-1")).status_code == 201


IDENTIFIERS = 50


def test_parallel_submissions_of_the_same_identifiers_store_each_once(app: Flask, keys: Keys) -> None:
    token = keys.token()
    statuses: list[int] = []
    ids: dict[str, set[str]] = {}
    lock = threading.Lock()

    def submit(worker: int) -> None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        fhir = Fhir(client)
        for number in range(IDENTIFIERS):
            value = f"R-{(number + worker * 7) % IDENTIFIERS}"
            result = fhir.post("QuestionnaireResponse", _with_identifier(value))
            with lock:
                statuses.append(result.status_code)
                if result.status_code in (200, 201):
                    ids.setdefault(value, set()).add(result.get_json()["id"])

    threads = [threading.Thread(target=submit, args=(worker,)) for worker in range(8)]  # 8 x 50 submissions
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 201}, statuses
    assert statuses.count(201) == IDENTIFIERS
    assert all(len(found) == 1 for found in ids.values())
    check = Fhir(app.test_client())
    check.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert check.get("QuestionnaireResponse?_summary=count").get_json()["total"] == IDENTIFIERS
    assert check.get("Observation?_summary=count").get_json()["total"] == 2 * IDENTIFIERS
