"""Terminology over HTTP: ValueSet and CodeSystem as stored, versioned definitions; the shipped ones; $expand,
$validate-code and $lookup; who may read and write them.

Expected values are counted from the shipped files and from pycountry's data directly, not from the service."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pycountry
import pytest
from flask import Flask

from service.config import PROJECT_ROOT
from service.terminology import load_terminology
from tests.conftest import Fhir, Keys

GENDER = "http://hl7.org/fhir/ValueSet/administrative-gender"
ITEM_TYPE = "http://hl7.org/fhir/ValueSet/item-type"
JURISDICTION = "http://hl7.org/fhir/ValueSet/jurisdiction"
ISO = "urn:iso:std:iso:3166"


def load(app: Flask) -> Any:
    return load_terminology(app.web.services, PROJECT_ROOT / "terminology", PROJECT_ROOT / "questionnaires")


@pytest.fixture
def shipped(app: Flask) -> None:
    report = load(app)
    assert not report.failed, report.failed


def codes(value_set: dict[str, Any]) -> list[str]:
    return [entry["code"] for entry in value_set["expansion"].get("contains", [])]


def parameter(parameters: dict[str, Any], name: str) -> Any:
    found = [p for p in parameters["parameter"] if p["name"] == name]
    assert found, parameters
    return next(value for key, value in found[0].items() if key.startswith("value"))


def small_code_system(**changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "url": "http://example.org/CodeSystem/mood",
        "version": "1",
        "name": "Mood",
        "status": "active",
        "content": "complete",
        "concept": [
            {"code": "good", "display": "Good", "concept": [{"code": "great", "display": "Great"}]},
            {"code": "bad", "display": "Bad"},
        ],
        **changes,
    }


def small_value_set(**changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "url": "http://example.org/ValueSet/mood",
        "version": "1",
        "name": "Mood",
        "status": "active",
        "compose": {"include": [{"system": "http://example.org/CodeSystem/mood"}]},
        **changes,
    }


# loading -------------------------------------------------------------------------------------------------------


def test_loading_twice_changes_nothing(app: Flask) -> None:
    first = load(app)
    assert not first.failed
    # 6 files, ISO 3166-1 and -2, and one answer list per instrument (PHQ-9 has two): 11 instruments + 1
    assert len(first.created) == 6 + 2 + 12
    again = load(app)
    assert again.created == [] and again.updated == [] and len(again.unchanged) == len(first.created)


# CRUD, history, search -----------------------------------------------------------------------------------------


def test_create_read_update_history_search_delete(fhir: Fhir) -> None:
    created = fhir.create(small_code_system())
    resource_id = created["id"]
    assert fhir.get(f"CodeSystem/{resource_id}").get_json()["name"] == "Mood"
    changed = {**created, "version": "2", "title": "Mood, second edition"}
    assert fhir.put(f"CodeSystem/{resource_id}", changed).status_code == 200
    history = fhir.get(f"CodeSystem/{resource_id}/_history").get_json()
    assert [entry["resource"]["meta"]["versionId"] for entry in history["entry"]] == ["2", "1"]
    assert fhir.get(f"CodeSystem/{resource_id}/_history/1").get_json()["version"] == "1"
    for query, expected in [
        ("url=http://example.org/CodeSystem/mood", 1),
        ("version=2", 1),
        ("version=1", 0),
        ("name=mo", 1),
        ("status=active", 1),
        ("status=retired", 0),
    ]:
        assert fhir.get(f"CodeSystem?{query}").get_json()["total"] == expected, query
    assert fhir.delete(f"CodeSystem/{resource_id}").status_code == 200
    assert fhir.get(f"CodeSystem/{resource_id}").status_code == 410


def test_bad_definitions_are_refused_and_change_nothing(fhir: Fhir) -> None:
    assert fhir.post("CodeSystem", small_code_system(status="final")).status_code == 400
    assert fhir.post("CodeSystem", small_code_system(content="everything")).status_code == 422
    twice = [{"code": "a"}, {"code": "a"}]
    assert fhir.post("CodeSystem", small_code_system(concept=twice)).status_code == 422
    assert (
        fhir.post("ValueSet", small_value_set(compose={"include": [{"concept": [{"code": "a"}]}]})).status_code == 422
    )
    assert fhir.get("CodeSystem").get_json()["total"] == 0
    assert fhir.get("ValueSet").get_json()["total"] == 0
    fhir.create(small_code_system())
    assert fhir.post("CodeSystem", small_code_system()).status_code == 422  # the same url|version twice


def test_a_patient_app_reads_terminology_but_only_a_backend_writes_it(fhir: Fhir, keys: Keys, shipped: None) -> None:
    patient = fhir.as_token(keys.token("patient/QuestionnaireResponse.cruds", patient="p1"))
    assert patient.get(f"ValueSet/$expand?url={GENDER}").status_code == 200
    assert patient.get("ValueSet?name=AdministrativeGender").get_json()["total"] == 1
    assert patient.post("ValueSet", small_value_set()).status_code == 403
    clinician = fhir.as_token(keys.token("user/*.cruds"))
    assert clinician.post("CodeSystem", small_code_system()).status_code == 403


# $expand -------------------------------------------------------------------------------------------------------


def test_expand_by_url_and_by_id_get_and_post(fhir: Fhir, shipped: None) -> None:
    by_url = fhir.get(f"ValueSet/$expand?url={GENDER}").get_json()
    assert codes(by_url) == ["male", "female", "other", "unknown"]
    assert by_url["expansion"]["total"] == 4
    assert codes(fhir.get("ValueSet/administrative-gender/$expand").get_json()) == codes(by_url)
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "url", "valueUri": GENDER}, {"name": "valueSetVersion", "valueString": "4.0.1"}],
    }
    posted = fhir.post("ValueSet/$expand", body)
    assert posted.status_code == 200 and codes(posted.get_json()) == codes(by_url)
    assert fhir.get(f"ValueSet/$expand?url={GENDER}&valueSetVersion=3.0.0").status_code == 404


def test_expand_filter_count_offset_for_type_ahead(fhir: Fhir, shipped: None) -> None:
    wanted = sorted(
        c.alpha_2 for c in pycountry.countries if "land" in c.name.casefold() or "land" in c.alpha_2.casefold()
    )
    wanted_2 = sorted(s.code for s in pycountry.subdivisions if "land" in s.name.casefold())
    found = fhir.get(f"ValueSet/$expand?url={JURISDICTION}&filter=LAND&count=1000").get_json()
    alpha_2 = sorted(code for code in codes(found) if len(code) == 2 and code.isalpha())
    assert alpha_2 == wanted
    assert sorted(code for code in codes(found) if "-" in code) == wanted_2
    total = found["expansion"]["total"]
    first = fhir.get(f"ValueSet/$expand?url={JURISDICTION}&filter=land&count=5").get_json()
    second = fhir.get(f"ValueSet/$expand?url={JURISDICTION}&filter=land&count=5&offset=5").get_json()
    assert first["expansion"]["total"] == second["expansion"]["total"] == total
    assert codes(first) + codes(second) == codes(found)[:10]
    assert second["expansion"]["offset"] == 5


def test_expand_item_type_hierarchy_and_filters(fhir: Fhir, shipped: None) -> None:
    expanded = fhir.get(f"ValueSet/$expand?url={ITEM_TYPE}").get_json()
    assert len(codes(expanded)) == 17
    question = next(e for e in expanded["expansion"]["contains"] if e["code"] == "question")
    assert question.get("abstract") is True
    inline = {
        "resourceType": "ValueSet",
        "status": "active",
        "compose": {
            "include": [
                {
                    "system": "http://hl7.org/fhir/item-type",
                    "filter": [{"property": "concept", "op": "descendent-of", "value": "question"}],
                }
            ],
            "exclude": [{"system": "http://hl7.org/fhir/item-type", "concept": [{"code": "url"}]}],
        },
    }
    body = {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": inline}]}
    found = fhir.post("ValueSet/$expand", body).get_json()
    assert len(codes(found)) == 13 and "url" not in codes(found) and "question" not in codes(found)


def test_a_code_system_not_held_is_a_422_naming_it(fhir: Fhir, shipped: None) -> None:
    loinc = small_value_set(
        url="http://example.org/ValueSet/all-loinc", compose={"include": [{"system": "http://loinc.org"}]}
    )
    fhir.create(loinc)
    response = fhir.get("ValueSet/$expand?url=http://example.org/ValueSet/all-loinc")
    assert response.status_code == 422
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "CodeSystem http://loinc.org" in str(outcome["issue"][0])
    assert fhir.get("ValueSet/$expand?url=http://example.org/ValueSet/none").status_code == 404
    assert fhir.get("ValueSet/$expand").status_code == 400
    assert fhir.get(f"ValueSet/$expand?url={GENDER}&count=-1").status_code == 400


def test_an_expansion_follows_a_changed_code_system(fhir: Fhir) -> None:
    created = fhir.create(small_code_system())
    fhir.create(small_value_set())
    assert codes(fhir.get("ValueSet/$expand?url=http://example.org/ValueSet/mood").get_json()) == [
        "good",
        "great",
        "bad",
    ]
    changed = {**created, "concept": [*created["concept"], {"code": "calm", "display": "Calm"}]}
    assert fhir.put(f"CodeSystem/{created['id']}", changed).status_code == 200
    assert "calm" in codes(fhir.get("ValueSet/$expand?url=http://example.org/ValueSet/mood").get_json())


# $validate-code and $lookup --------------------------------------------------------------------------------------


def test_validate_code(fhir: Fhir, shipped: None) -> None:
    def check(query: str) -> dict[str, Any]:
        response = fhir.get(f"ValueSet/$validate-code?url={JURISDICTION}&{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return dict(response.get_json())

    assert parameter(check(f"system={ISO}&code=AU"), "result") is True
    assert parameter(check(f"system={ISO}&code=AU"), "display") == "Australia"
    assert parameter(check(f"system={ISO}&code=XX"), "result") is False
    assert parameter(check(f"system={ISO}&code=BD&display=Australia"), "result") is False
    coding = {"system": "http://hl7.org/fhir/administrative-gender", "code": "other"}
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "url", "valueUri": GENDER}, {"name": "coding", "valueCoding": coding}],
    }
    assert parameter(fhir.post("ValueSet/$validate-code", body).get_json(), "result") is True


def test_lookup(fhir: Fhir, shipped: None) -> None:
    found = fhir.get("CodeSystem/$lookup?system=http://hl7.org/fhir/item-type&code=dateTime").get_json()
    assert parameter(found, "display") == "Date Time"
    parts = [p["part"] for p in found["parameter"] if p["name"] == "property"]
    assert [{"name": "code", "valueCode": "parent"}, {"name": "value", "valueCode": "question"}] in parts
    country = pycountry.countries.get(alpha_2="NZ")
    assert parameter(fhir.get(f"CodeSystem/$lookup?system={ISO}&code=NZ").get_json(), "display") == country.name
    assert fhir.get(f"CodeSystem/$lookup?system={ISO}&code=QQ").status_code == 404
    assert fhir.get("CodeSystem/$lookup?system=http://loinc.org&code=1-8").status_code == 404
    assert fhir.get("CodeSystem/$lookup?code=NZ").status_code == 400


# audit and conformance -------------------------------------------------------------------------------------------


def test_writes_are_audited_and_reads_of_definitions_are_not(fhir: Fhir) -> None:
    created = fhir.create(small_code_system())
    fhir.get(f"CodeSystem/{created['id']}")
    fhir.put(f"CodeSystem/{created['id']}", {**created, "title": "Mood"})
    fhir.delete(f"CodeSystem/{created['id']}")
    bundle = fhir.get(f"AuditEvent?entity=CodeSystem/{created['id']}").get_json()
    kinds = sorted(entry["resource"]["subtype"][0]["code"] for entry in bundle.get("entry", []))
    assert kinds == ["create", "delete", "update"]


def test_the_capability_statement_declares_terminology(fhir: Fhir) -> None:
    statement = fhir.get("metadata").get_json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for resource_type, operations in (("ValueSet", {"expand", "validate-code"}), ("CodeSystem", {"lookup"})):
        declared = resources[resource_type]
        assert {i["code"] for i in declared["interaction"]} >= {"read", "vread", "create", "update", "delete"}
        assert {p["name"] for p in declared["searchParam"]} >= {"url", "version", "name", "status"}
        assert {o["name"] for o in declared["operation"]} == operations
    assert "422" in resources["ValueSet"]["documentation"]


# a transaction carrying the value set its Questionnaire points at -------------------------------------------------

MOOD_VS = "http://example.org/ValueSet/mood"


def _transaction(*resources: tuple[dict[str, Any], str]) -> dict[str, Any]:
    entries = [
        {"fullUrl": urn, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
        for resource, urn in resources
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _mood_questionnaire() -> dict[str, Any]:
    item = {"linkId": "mood", "text": "Mood today", "type": "choice", "answerValueSet": MOOD_VS}
    return {
        "resourceType": "Questionnaire",
        "url": "http://example.org/Questionnaire/mood-list",
        "version": "1",
        "name": "MoodList",
        "title": "Mood list",
        "status": "active",
        "item": [item],
    }


def _mood_response(questionnaire: str, code: str, patient: str) -> dict[str, Any]:
    coding = {"system": "http://example.org/CodeSystem/mood", "code": code}
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2026-01-15T10:00:00Z",
        "item": [{"linkId": "mood", "answer": [{"valueCoding": coding}]}],
    }


def _send(fhir: Fhir, bundle: dict[str, Any]) -> Any:
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    return fhir.client.post("/fhir", data=orjson.dumps(bundle), headers=headers)


def test_a_transaction_with_its_value_set_is_stored_whole_or_not_at_all(fhir: Fhir) -> None:
    questionnaire_urn = f"urn:uuid:{uuid.uuid4()}"
    responses = [(_mood_response(questionnaire_urn, code, p), f"urn:uuid:{uuid.uuid4()}") for code, p in
                 (("good", "p1"), ("great", "p2"), ("bad", "p3"))]  # fmt: skip
    definitions = [
        (small_code_system(), f"urn:uuid:{uuid.uuid4()}"),
        (small_value_set(), f"urn:uuid:{uuid.uuid4()}"),
        (_mood_questionnaire(), questionnaire_urn),
    ]
    refused = [*responses[:2], (_mood_response(questionnaire_urn, "calm", "p3"), f"urn:uuid:{uuid.uuid4()}")]
    answer = _send(fhir, _transaction(*refused, *definitions))
    assert answer.status_code == 422, answer.get_data(as_text=True)  # calm is not in the stored value set
    assert "calm" in answer.get_data(as_text=True)
    for resource_type in ("CodeSystem", "ValueSet", "Questionnaire", "QuestionnaireResponse"):
        assert fhir.get(f"{resource_type}?_summary=count").get_json()["total"] == 0, resource_type
    answer = _send(fhir, _transaction(*responses, *definitions))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert [entry["response"]["status"] for entry in answer.get_json()["entry"]] == ["201 Created"] * 6
    assert fhir.get("QuestionnaireResponse?_summary=count").get_json()["total"] == 3
