"""Batch and transaction Bundles (POST /fhir): each entry as its own request would be; a transaction whole or not."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from werkzeug.test import TestResponse

from tests.api.scored import URL, scored_questionnaire, scored_response
from tests.conftest import Fhir, Keys


def _send(fhir: Fhir, bundle: dict[str, Any]) -> TestResponse:
    """POST a Bundle to the FHIR base itself."""
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    return fhir.client.post("/fhir", data=orjson.dumps(bundle), headers=headers)


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _group(name: str) -> dict[str, Any]:
    return {
        "resourceType": "Group",  # another stored type that a transaction can carry beside a Questionnaire
        "type": "person",
        "actual": True,
        "name": name,
        "member": [{"entity": {"reference": "Patient/p1"}}],
    }


def _counts(fhir: Fhir) -> tuple[int, int, int]:
    def total(query: str) -> int:
        found: int = fhir.get(f"{query}?_summary=count").get_json()["total"]
        return found

    return total("Questionnaire"), total("QuestionnaireResponse"), total("Observation")


def _responses_to(questionnaire_urn: str, patients: tuple[str, ...]) -> list[dict[str, Any]]:
    entries = []
    for patient in patients:
        response = scored_response(("often", "never", "always"), patient=patient)
        response["questionnaire"] = questionnaire_urn
        entries.append(_post(response, _urn()))
    return entries


def test_a_transaction_stores_a_questionnaire_and_responses_that_refer_to_it_by_urn_uuid(fhir: Fhir) -> None:
    questionnaire_urn = _urn()
    # The responses come first in the Bundle: the server orders creates so that each follows what it refers to.
    bundle = _bundle(
        "transaction",
        *_responses_to(questionnaire_urn, ("p1", "p2", "p3")),
        _post(_group("cohort"), _urn()),
        _post(scored_questionnaire(), questionnaire_urn),
    )
    answer = _send(fhir, bundle)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["type"] == "transaction-response"
    assert [entry["response"]["status"] for entry in body["entry"]] == ["201 Created"] * 5
    questionnaire = body["entry"][4]["resource"]
    assert questionnaire["url"] == URL
    for entry in body["entry"][:3]:
        response = entry["resource"]
        # The urn:uuid became the id the server gave the Questionnaire, and the response was scored against it.
        assert response["questionnaire"] == f"Questionnaire/{questionnaire['id']}"
        total = next(item for item in response["item"] if item["linkId"] == "total")
        assert total["answer"] == [{"valueInteger": 5}]  # often 2 + never 0 + always 3, worked by hand
        assert entry["response"]["location"].endswith(f"QuestionnaireResponse/{response['id']}/_history/1")
        assert entry["response"]["etag"] == 'W/"1"'
        stored = fhir.get(f"QuestionnaireResponse/{response['id']}").get_json()
        assert stored == response
    assert _counts(fhir) == (1, 3, 6)  # each response's total as an Observation, and its band


def test_one_failing_entry_leaves_nothing_of_the_transaction(fhir: Fhir) -> None:
    questionnaire_urn = _urn()
    entries = _responses_to(questionnaire_urn, ("p1", "p2", "p3"))
    entries[2]["resource"]["item"][0]["answer"] = [
        {"valueCoding": {"system": "http://proms.test/answers", "code": "x"}}
    ]
    bundle = _bundle("transaction", _post(scored_questionnaire(), questionnaire_urn), *entries)
    answer = _send(fhir, bundle)
    assert answer.status_code == 422, answer.get_data(as_text=True)
    issues = answer.get_json()["issue"]
    assert "Bundle.entry[3] (POST QuestionnaireResponse) failed with 422" in issues[0]["details"]["text"]
    assert issues[0]["expression"] == ["Bundle.entry[3]"]
    assert any(issue["severity"] == "error" and "x" in issue["details"]["text"] for issue in issues[1:])
    assert _counts(fhir) == (0, 0, 0)
    # What failed is recorded; what was rolled back is not.
    events = fhir.get("AuditEvent?outcome=4").get_json()
    assert any(event["resource"]["subtype"][0]["code"] == "transaction" for event in events.get("entry", [])), events
    # The same transaction, corrected, goes through: nothing half-written stood in its way.
    entries[2]["resource"]["item"][0]["answer"] = [
        {"valueCoding": {"system": "http://proms.test/answers", "code": "never", "display": "Never"}}
    ]
    assert _send(fhir, bundle).status_code == 200
    assert _counts(fhir) == (1, 3, 6)


def test_a_rolled_back_questionnaire_is_not_remembered(fhir: Fhir) -> None:
    # A transaction that PUTs a Questionnaire under a chosen id, scores a response with it, then fails...
    first = scored_questionnaire() | {"id": "chosen"}
    response = scored_response(("always", "always", "always")) | {"id": "r1", "questionnaire": "Questionnaire/chosen"}
    failing = response | {"id": "r2", "status": "not-a-status"}
    bundle = _bundle(
        "transaction",
        {"resource": first, "request": {"method": "PUT", "url": "Questionnaire/chosen"}},
        {"resource": response, "request": {"method": "PUT", "url": "QuestionnaireResponse/r1"}},
        {"resource": failing, "request": {"method": "PUT", "url": "QuestionnaireResponse/r2"}},
    )
    failed = _send(fhir, bundle)
    assert failed.status_code == 400, failed.get_data(as_text=True)
    assert "Bundle.entry[2]" in failed.get_json()["issue"][0]["details"]["text"]
    assert _counts(fhir) == (0, 0, 0)
    # ...and then a different Questionnaire stored under the same id and version: responses are scored with it.
    second = scored_questionnaire() | {"id": "chosen"}
    for option in second["item"][0]["answerOption"]:
        option["extension"][0]["valueDecimal"] = 10
    assert fhir.put("Questionnaire/chosen", second).status_code == 201
    stored = fhir.create({key: value for key, value in response.items() if key != "id"})
    total = next(item for item in stored["item"] if item["linkId"] == "total")
    assert total["answer"] == [{"valueInteger": 16}]  # 10 + 3 + 3 with the weights now stored


def test_a_batch_answers_each_entry_on_its_own(fhir: Fhir) -> None:
    fhir.create(scored_questionnaire())
    good = scored_response(("never", "never", "sometimes"))
    bad = scored_response(("never", "never", "sometimes"))
    bad["item"][1]["answer"] = [{"valueCoding": {"system": "http://proms.test/answers", "code": "nope"}}]
    bundle = _bundle(
        "batch",
        _post(good),
        _post(bad),
        {"request": {"method": "GET", "url": "QuestionnaireResponse?patient=Patient/p1"}},
        {"request": {"method": "GET", "url": "QuestionnaireResponse/missing"}},
    )
    answer = _send(fhir, bundle)
    assert answer.status_code == 200
    entries = answer.get_json()["entry"]
    assert answer.get_json()["type"] == "batch-response"
    assert [entry["response"]["status"].split()[0] for entry in entries] == ["201", "422", "200", "404"]
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    searchset = entries[2]["resource"]
    assert searchset["type"] == "searchset" and searchset["total"] == 1
    assert entries[3]["response"]["outcome"]["issue"][0]["code"] == "not-found"
    assert _counts(fhir) == (1, 1, 2)


def test_batch_entries_cannot_refer_to_each_other(fhir: Fhir) -> None:
    questionnaire_urn = _urn()
    bundle = _bundle(
        "batch", _post(scored_questionnaire(), questionnaire_urn), *_responses_to(questionnaire_urn, ("p1",))
    )
    entries = _send(fhir, bundle).get_json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"] == "400 Bad Request"
    assert "send a transaction" in entries[1]["response"]["outcome"]["issue"][0]["details"]["text"]


def test_conditional_create_and_update_inside_a_transaction(fhir: Fhir) -> None:
    stored = fhir.create(scored_questionnaire())
    questionnaire_urn = _urn()
    changed = dict(stored, title="Distress, three questions")
    bundle = _bundle(
        "transaction",
        _post(scored_questionnaire(), questionnaire_urn, ifNoneExist=f"url={URL}"),
        *_responses_to(questionnaire_urn, ("p1",)),
        {"resource": changed, "request": {"method": "PUT", "url": f"Questionnaire/{stored['id']}", "ifMatch": 'W/"1"'}},
    )
    answer = _send(fhir, bundle)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    entries = answer.get_json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"  # found, not created again
    assert entries[1]["resource"]["questionnaire"] == f"Questionnaire/{stored['id']}"
    assert entries[2]["response"]["etag"] == 'W/"2"'
    assert _counts(fhir) == (1, 1, 2)
    # A stale If-Match fails the whole transaction with 412, and the response in it is not stored.
    bundle["entry"][2]["request"]["ifMatch"] = 'W/"1"'
    assert _send(fhir, bundle).status_code == 412
    assert _counts(fhir) == (1, 1, 2)


def test_processing_order_deletes_before_creates_and_reads_after_writes(fhir: Fhir) -> None:
    fhir.create(scored_questionnaire())
    old = fhir.create(scored_response(("never", "never", "never"), patient="p9"))
    bundle = _bundle(
        "transaction",
        {"request": {"method": "GET", "url": "QuestionnaireResponse?patient=Patient/p9"}},
        _post(scored_response(("always", "never", "never"), patient="p9")),
        {"request": {"method": "DELETE", "url": f"QuestionnaireResponse/{old['id']}"}},
    )
    answer = _send(fhir, bundle)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    entries = answer.get_json()["entry"]
    found = entries[0]["resource"]
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == entries[1]["resource"]["id"]
    assert entries[2]["response"]["status"] == "200 OK"


@pytest.mark.parametrize(
    ("bundle", "status", "text"),
    [
        ({"resourceType": "Bundle", "type": "collection"}, 400, "batch or transaction"),
        ({"resourceType": "Questionnaire", "status": "draft"}, 400, "batch or transaction"),
        (
            {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {"resourceType": "Group"}}]},
            400,
            "request",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "POST", "url": "Group"}}],
            },
            400,
            "needs its resource",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": "https://elsewhere.example/fhir/Group"}}],
            },
            400,
            "relative",
        ),
        (
            {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": "../app"}}]},
            400,
            "relative",
        ),
        (
            {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "FETCH", "url": "Group"}}]},
            400,
            "method",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"request": {"method": "DELETE", "url": "Group/a"}},
                    {"request": {"method": "DELETE", "url": "Group/a"}},
                ],
            },
            400,
            "once",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": "urn:uuid:0b3c2b83-1f0e-4b47-9a0e-6fb1d5d6a001",
                        "request": {"method": "DELETE", "url": "Group/a"},
                    },
                    {
                        "fullUrl": "urn:uuid:0b3c2b83-1f0e-4b47-9a0e-6fb1d5d6a001",
                        "request": {"method": "DELETE", "url": "Group/b"},
                    },
                ],
            },
            400,
            "distinct",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    _post(
                        scored_response(("never", "never", "never"))
                        | {"subject": {"reference": "urn:uuid:8e9b7f0e-5b7c-4a55-9d2c-000000000000"}}
                    )
                ],
            },
            400,
            "not the fullUrl",
        ),
    ],
)
def test_malformed_bundles_are_refused_whole(fhir: Fhir, bundle: dict[str, Any], status: int, text: str) -> None:
    answer = _send(fhir, bundle)
    assert answer.status_code == status, answer.get_data(as_text=True)
    outcome = answer.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert text in " ".join(issue["details"]["text"] for issue in outcome["issue"])
    assert _counts(fhir) == (0, 0, 0)


def test_more_entries_than_the_limit_is_a_413(fhir: Fhir) -> None:
    limit = fhir.client.application.web.services.settings.max_bundle_entries  # type: ignore[attr-defined]
    entry = {"request": {"method": "GET", "url": "Questionnaire"}}
    assert _send(fhir, _bundle("batch", *[entry] * limit)).status_code == 200
    too_many = _send(fhir, _bundle("batch", *[entry] * (limit + 1)))
    assert too_many.status_code == 413
    assert "PROMS_MAX_BUNDLE_ENTRIES" in too_many.get_json()["issue"][0]["details"]["text"]


def test_every_entry_is_held_to_the_callers_scopes_and_compartment(fhir: Fhir, keys: Keys) -> None:
    fhir.create(scored_questionnaire())
    person = fhir.as_token(keys.token("patient/QuestionnaireResponse.cruds", patient="p1"))
    own = scored_response(("never", "never", "never"), patient="p1")
    other = scored_response(("never", "never", "never"), patient="p2")
    batch = _send(person, _bundle("batch", _post(own), _post(other), _post(scored_questionnaire())))
    assert batch.status_code == 200
    assert [entry["response"]["status"][:3] for entry in batch.get_json()["entry"]] == ["201", "403", "403"]
    transaction = _send(person, _bundle("transaction", _post(own), _post(other)))
    assert transaction.status_code == 403
    assert _counts(fhir) == (1, 1, 2)
    assert _send(fhir.as_token(None), _bundle("batch", _post(own))).status_code == 401


def test_every_entry_is_audited_with_its_own_interaction(fhir: Fhir) -> None:
    fhir.create(scored_questionnaire())
    bundle = _bundle(
        "transaction",
        _post(scored_response(("never", "never", "never"), patient="p7")),
        {"request": {"method": "GET", "url": "QuestionnaireResponse?patient=Patient/p7"}},
    )
    assert _send(fhir, bundle).status_code == 200
    events = [entry["resource"] for entry in fhir.get("AuditEvent?patient=Patient/p7").get_json().get("entry", [])]
    assert sorted(event["subtype"][0]["code"] for event in events) == ["create", "search-type"]
