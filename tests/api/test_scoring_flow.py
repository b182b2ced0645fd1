"""Submitting scored responses: server-computed scores, Observations, change, amend, entered-in-error, $extract."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.scored import URL, scored_questionnaire, scored_response
from tests.conftest import Fhir, load_fixture

CHANGE = "https://recovery-proms.org/fhir/StructureDefinition/reliable-change-result"


@pytest.fixture(autouse=True)
def instrument(fhir: Fhir) -> dict[str, Any]:
    return fhir.create(scored_questionnaire())


def _answer(resource: dict[str, Any], link_id: str) -> Any:
    item = next(i for i in resource["item"] if i["linkId"] == link_id)
    return item["answer"][0]


def _observations(fhir: Fhir, query: str) -> list[dict[str, Any]]:
    bundle = fhir.get(f"Observation?{query}").get_json()
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _total(observations: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in observations if o["code"]["coding"][0]["code"] == "distress-total")


def test_completed_response_is_scored_and_extracted(fhir: Fhir) -> None:
    # often(2) + sometimes(1) + always(3) = 6 -> band 4-6 "moderate"
    stored = fhir.create(scored_response(("often", "sometimes", "always")))
    assert _answer(stored, "total") == {"valueInteger": 6}
    observations = _observations(fhir, f"derived-from=QuestionnaireResponse/{stored['id']}")
    assert len(observations) == 2  # the panel and the total
    total = _total(observations)
    assert total["valueInteger"] == 6
    assert total["status"] == "final"
    assert total["category"][0]["coding"][0]["code"] == "survey"
    assert total["subject"] == {"reference": "Patient/p1"}
    assert total["effectiveDateTime"] == "2024-01-01T10:00:00Z"
    assert total["performer"] == [{"reference": "Practitioner/dr1"}]
    assert total["interpretation"][0]["coding"][0]["code"] == "moderate"
    assert total["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{stored['id']}"}]
    panel = next(o for o in observations if "hasMember" in o)
    assert panel["hasMember"] == [{"reference": f"Observation/{total['id']}"}]
    assert _observations(fhir, "patient=p1&code=http://proms.test/scores|distress-total") == [total]
    provenance = fhir.get(f"Provenance?target=QuestionnaireResponse/{stored['id']}").get_json()
    assert provenance["total"] == 1
    entity = provenance["entry"][0]["resource"]["entity"][0]["what"]
    assert entity["display"] == f"{URL}|1.0.0"


SCORE = {"unit": "{score}", "system": "http://unitsofmeasure.org", "code": "{score}"}


def test_score_observations_carry_their_bands_as_reference_ranges(fhir: Fhir) -> None:
    # distress3's bands, written out: 0-3 Low, 4-6 Moderate, 7-9 High (inclusive integers, no gaps between them)
    expected = [
        {"low": {"value": 0, **SCORE}, "high": {"value": 3, **SCORE}, "text": "Low"},
        {"low": {"value": 4, **SCORE}, "high": {"value": 6, **SCORE}, "text": "Moderate"},
        {"low": {"value": 7, **SCORE}, "high": {"value": 9, **SCORE}, "text": "High"},
    ]
    stored = fhir.create(scored_response(("never", "never", "often")))
    observations = _observations(fhir, f"derived-from=QuestionnaireResponse/{stored['id']}")
    total = _total(observations)
    assert total["referenceRange"] == expected
    assert total["valueInteger"] == 2
    panel = next(o for o in observations if "hasMember" in o)
    assert "referenceRange" not in panel  # the panel has no value of its own
    bundle = fhir.post("QuestionnaireResponse/$extract", scored_response(("always", "often", "never"))).get_json()
    assert _total([e["resource"] for e in bundle["entry"]])["referenceRange"] == expected


def test_submitted_score_is_recomputed_and_reported(fhir: Fhir) -> None:
    result = fhir.post(
        "QuestionnaireResponse",
        scored_response(("never", "never", "often"), total=9),
        headers={"Prefer": "return=OperationOutcome"},
    )
    assert result.status_code == 201
    warnings = [i for i in result.get_json()["issue"] if i["severity"] == "warning"]
    assert any("total" in (i.get("diagnostics", "") + i["details"]["text"]) for i in warnings)
    stored = fhir.get(result.headers["Location"].removeprefix("http://proms.test/fhir/")).get_json()
    assert _answer(stored, "total") == {"valueInteger": 2}


def test_reliable_change_against_the_previous_response(fhir: Fhir) -> None:
    fhir.create(scored_response(("always", "always", "always"), authored="2024-01-01T10:00:00Z"))  # 9
    fhir.create(scored_response(("often", "often", "often"), authored="2024-02-01T10:00:00Z"))  # 6: -3, improved
    fhir.create(scored_response(("often", "often", "always"), authored="2024-03-01T10:00:00Z"))  # 7: +1, no change
    fhir.create(scored_response(("always", "always", "always"), authored="2024-04-01T10:00:00Z"))  # 9: +2
    totals = _observations(fhir, "patient=p1&code=distress-total&_sort=date")
    results = [next((e for e in o.get("extension", []) if e["url"] == CHANGE), None) for o in totals]
    assert results[0] is None  # nothing to compare the first with
    parts = [
        {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in r["extension"]}
        for r in results[1:]
        if r
    ]
    assert [p["result"] for p in parts] == ["improved", "no-reliable-change", "no-reliable-change"]
    assert [p["difference"] for p in parts] == [-3, 1, 2]
    improved = totals[1]
    assert {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
        "code": "B",
        "display": "Better",
    } in [c for i in improved["interpretation"] for c in i["coding"]]


def test_reliable_deterioration_is_coded_worse(fhir: Fhir) -> None:
    fhir.create(scored_response(("never", "never", "sometimes"), authored="2024-01-01T10:00:00Z"))  # 1
    fhir.create(scored_response(("often", "often", "never"), authored="2024-02-01T10:00:00Z"))  # 4: +3
    latest = _observations(fhir, "patient=p1&code=distress-total&_sort=-date")[0]
    codes = [c["code"] for i in latest["interpretation"] for c in i["coding"]]
    assert codes == ["moderate", "W"]


def test_amend_replaces_observations_and_entered_in_error_withdraws_them(fhir: Fhir) -> None:
    stored = fhir.create(scored_response(("never", "never", "never")))
    total_before = _total(_observations(fhir, f"derived-from={stored['id']}"))
    amended = {**stored, "status": "amended"}
    amended["item"][0]["answer"] = [
        {"valueCoding": {"system": "http://proms.test/answers", "code": "always", "display": "Always"}}
    ]
    assert fhir.put(f"QuestionnaireResponse/{stored['id']}", amended).status_code == 200
    total_after = _total(_observations(fhir, f"derived-from={stored['id']}"))
    assert total_after["id"] == total_before["id"]
    assert total_after["status"] == "amended"
    assert total_after["valueInteger"] == 3
    assert total_after["meta"]["versionId"] == "2"
    withdrawn = {**amended, "status": "entered-in-error"}
    assert fhir.put(f"QuestionnaireResponse/{stored['id']}", withdrawn).status_code == 200
    statuses = {o["status"] for o in _observations(fhir, f"derived-from={stored['id']}")}
    assert statuses == {"entered-in-error"}
    assert _observations(fhir, "patient=p1&status=final,amended") == []


def test_deleting_a_response_deletes_its_observations(fhir: Fhir) -> None:
    stored = fhir.create(scored_response(("never", "never", "never")))
    total = _total(_observations(fhir, f"derived-from={stored['id']}"))
    assert fhir.delete(f"QuestionnaireResponse/{stored['id']}").status_code == 200
    assert fhir.get(f"Observation/{total['id']}").status_code == 410
    assert _observations(fhir, "patient=p1") == []


def test_in_progress_responses_are_not_extracted(fhir: Fhir) -> None:
    partial = scored_response(("never", "never", "never"), status="in-progress")
    partial["item"] = partial["item"][:1]
    stored = fhir.create(partial)
    assert _observations(fhir, f"derived-from={stored['id']}") == []


def test_observations_cannot_be_written_by_clients(fhir: Fhir) -> None:
    refused = fhir.post("Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
    assert refused.status_code == 405
    assert "read and searched" in refused.get_json()["issue"][0]["details"]["text"]
    assert fhir.get("Observation").get_json()["total"] == 0


def test_invalid_response_lists_every_problem_and_stores_nothing(fhir: Fhir) -> None:
    bad = scored_response(("often", "sometimes", "always"))
    bad["item"][0]["answer"] = [{"valueCoding": {"system": "http://proms.test/answers", "code": "rarely"}}]
    bad["item"][1]["answer"] = [{"valueString": "sometimes"}]
    del bad["item"][2]  # a required answer missing from a completed response
    bad["item"].append({"linkId": "z", "answer": [{"valueInteger": 1}]})
    result = fhir.post("QuestionnaireResponse", bad)
    assert result.status_code == 422
    issues = [i for i in result.get_json()["issue"] if i["severity"] == "error"]
    assert len(issues) >= 4
    expressions = {e for i in issues for e in i.get("expression", [])}
    assert any(e.startswith("QuestionnaireResponse.item[0].answer[0]") for e in expressions)
    assert any(e.startswith("QuestionnaireResponse.item[1].answer[0]") for e in expressions)
    assert any(e.startswith("QuestionnaireResponse.item[2]") for e in expressions)
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 0
    assert fhir.get("Observation").get_json()["total"] == 0


def test_validate_operation_reports_without_storing(fhir: Fhir) -> None:
    good = fhir.post("QuestionnaireResponse/$validate", scored_response(("never", "never", "never")))
    assert good.status_code == 200
    assert [i["severity"] for i in good.get_json()["issue"]] == ["information"]
    bad = scored_response(("never", "never", "never"))
    bad["item"][0]["answer"] = [{"valueInteger": 1}]
    outcome = fhir.post("QuestionnaireResponse/$validate", bad).get_json()
    assert any(i["severity"] == "error" for i in outcome["issue"])
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bad}]}
    assert fhir.post("QuestionnaireResponse/$validate", wrapped).get_json() == outcome
    unknown = {**bad, "questionnaire": "urn:nothing"}
    not_found = fhir.post("QuestionnaireResponse/$validate", unknown).get_json()
    assert not_found["issue"][0]["code"] == "not-found"
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 0


def test_validate_update_and_delete_modes(fhir: Fhir) -> None:
    stored = fhir.create(scored_response(("never", "never", "never")))
    path = f"QuestionnaireResponse/{stored['id']}/$validate"
    assert fhir.post(f"{path}?mode=update", stored).get_json()["issue"][0]["severity"] == "information"
    mismatch = fhir.post(f"{path}?mode=update", {**stored, "id": "other"}).get_json()
    assert mismatch["issue"][0]["severity"] == "error"
    deletion = fhir.client.post(f"/fhir/{path}?mode=delete")
    assert deletion.status_code == 200
    assert fhir.post(f"{path}?mode=sideways", stored).status_code == 400
    assert fhir.client.post("/fhir/QuestionnaireResponse/unknown/$validate?mode=delete").status_code == 404


def test_extract_returns_a_transaction_bundle_and_stores_nothing(fhir: Fhir) -> None:
    bundle = fhir.post("QuestionnaireResponse/$extract", scored_response(("always", "often", "never"))).get_json()
    assert bundle["type"] == "transaction"
    resources = [e["resource"] for e in bundle["entry"]]
    assert all(e["request"] == {"method": "POST", "url": "Observation"} for e in bundle["entry"])
    total = _total(resources)
    assert total["valueInteger"] == 5
    panel = next(r for r in resources if "hasMember" in r)
    member_urls = {m["reference"] for m in panel["hasMember"]}
    assert member_urls <= {e["fullUrl"] for e in bundle["entry"]}
    assert fhir.get("Observation").get_json()["total"] == 0
    stored = fhir.create(scored_response(("always", "often", "never")))
    again = fhir.client.get(f"/fhir/QuestionnaireResponse/{stored['id']}/$extract").get_json()
    assert _total([e["resource"] for e in again["entry"]])["derivedFrom"] == [
        {"reference": f"QuestionnaireResponse/{stored['id']}"}
    ]


def test_revinclude_observations_with_responses(fhir: Fhir) -> None:
    stored = fhir.create(scored_response(("always", "often", "never")))
    bundle = fhir.get("QuestionnaireResponse?patient=p1&_revinclude=Observation:derived-from").get_json()
    modes = sorted(e["search"]["mode"] for e in bundle["entry"])
    assert modes == ["include", "include", "match"]
    assert bundle["entry"][0]["resource"]["id"] == stored["id"]


def test_us_core_phq9_total_extracts_like_the_us_core_example(fhir: Fhir) -> None:
    questionnaire = load_fixture("us-core/Questionnaire-phq-9-example.json")
    total_item = next(i for i in questionnaire["item"] if any(c["code"] == "44261-6" for c in i.get("code", [])))
    total_item.setdefault("extension", []).append(
        {
            "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract",
            "valueBoolean": True,
        }
    )
    fhir.create(questionnaire)
    response = fhir.create(load_fixture("us-core/QuestionnaireResponse-phq-9-example.json"))
    expected = load_fixture("us-core/Observation-PHQ9-item-example-44261-6.json")
    (total,) = _observations(fhir, "patient=example&code=http://loinc.org|44261-6")
    assert total["code"]["coding"][0]["code"] == expected["code"]["coding"][0]["code"]
    assert total["category"][0] == expected["category"][0]
    assert total["status"] == expected["status"]
    assert total["subject"] == expected["subject"]
    assert total["performer"] == expected["performer"]
    assert float(expected["valueString"]) == total["valueQuantity"]["value"]
    assert total["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{response['id']}"}]


def test_structure_definitions_of_every_documented_extension_are_served(fhir: Fhir) -> None:
    from service.config import PROJECT_ROOT

    summary = (PROJECT_ROOT / "docs" / "extensions.md").read_text().split("\n## ")[0]
    documented = [line.split("`")[1] for line in summary.splitlines() if line.startswith("| `")]
    listed = fhir.get("StructureDefinition").get_json()
    served = {e["resource"]["id"] for e in listed["entry"]}
    assert set(documented) == served  # each served extension is documented, and each documented one served
    assert len(documented) == len(served) == 10
    one = fhir.get("StructureDefinition/score-band").get_json()
    assert one["url"] == "https://recovery-proms.org/fhir/StructureDefinition/score-band"
    assert fhir.get("StructureDefinition/nothing").status_code == 404


def _flagged_questionnaire() -> dict[str, Any]:
    questionnaire = scored_questionnaire()
    questionnaire["version"] = "1.1.0"
    questionnaire["item"][2]["extension"] = [
        {
            "url": "https://recovery-proms.org/fhir/StructureDefinition/safety-flag",
            "extension": [
                {
                    "url": "condition",
                    "valueExpression": {
                        "language": "text/fhirpath",
                        "expression": "%resource.item.where(linkId = 'c').answer.value.weight() >= 3",
                    },
                },
                {"url": "message", "valueString": "Could not sleep at all"},
            ],
        }
    ]
    return questionnaire


def test_safety_items_raise_flags_that_a_clinician_reviews(fhir: Fhir) -> None:
    fhir.create(_flagged_questionnaire())
    flagged = scored_response(("never", "never", "always"))
    flagged["questionnaire"] = f"{URL}|1.1.0"
    stored = fhir.create(flagged)
    quiet = {**scored_response(("never", "never", "never")), "questionnaire": f"{URL}|1.1.0"}
    fhir.create(quiet)
    flags = fhir.get("Flag?patient=p1&status=active").get_json()
    assert flags["total"] == 1
    flag = flags["entry"][0]["resource"]
    assert flag["code"]["text"] == "Could not sleep at all"
    assert flag["extension"][0]["valueReference"] == {"reference": f"QuestionnaireResponse/{stored['id']}"}
    reviewed = fhir.put(f"Flag/{flag['id']}", {**flag, "status": "inactive"})
    assert reviewed.status_code == 200
    assert fhir.get("Flag?patient=p1&status=active").get_json()["total"] == 0
    tampered = fhir.put(f"Flag/{flag['id']}", {**flag, "status": "inactive", "code": {"text": "nothing"}})
    assert tampered.status_code == 422
    # Amending keeps the review; withdrawing the response withdraws the flag.
    fhir.put(f"QuestionnaireResponse/{stored['id']}", {**stored, "status": "amended"})
    assert fhir.get(f"Flag/{flag['id']}").get_json()["status"] == "inactive"
    fhir.put(f"QuestionnaireResponse/{stored['id']}", {**stored, "status": "entered-in-error"})
    assert fhir.get(f"Flag/{flag['id']}").get_json()["status"] == "entered-in-error"
    assert fhir.post("Flag", flag).status_code == 405
