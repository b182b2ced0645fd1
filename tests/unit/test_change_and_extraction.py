"""Change since last time and extraction of Observations, over plain data (no database, no HTTP)."""

from __future__ import annotations

from typing import Any

from service.change import PreviousScore, compare_scores
from service.extraction import extract_observations, observation_value, provenance
from service.scoring import Band, Score


def score(
    value: float | None,
    *,
    threshold: float | None = 5,
    direction: str | None = "higher-is-better",
    link_id: str = "total",
    item_type: str = "integer",
    band: Band | None = None,
) -> Score:
    return Score(
        link_id,
        "Total",
        ({"system": "http://loinc.org", "code": "X-1"},),
        item_type,
        value,
        band,
        direction,
        threshold,
        None,
    )


def test_change_needs_a_threshold_to_be_called_reliable() -> None:
    previous = {"total": PreviousScore(20, "qr-1", "2024-01-01")}
    changes = compare_scores([score(26), score(26, threshold=None, link_id="other")], previous)
    assert changes["total"].result == "improved"
    assert changes["total"].difference == 6
    assert "other" not in changes  # no previous value for it
    unknown = compare_scores([score(26, threshold=None)], previous)
    assert unknown["total"].result == "unknown"
    no_direction = compare_scores([score(40, direction=None)], previous)
    assert no_direction["total"].result == "unknown"
    assert no_direction["total"].difference == 20


def test_direction_decides_improved_or_deteriorated() -> None:
    previous = {"total": PreviousScore(20, "qr-1", None)}
    assert compare_scores([score(14, direction="lower-is-better")], previous)["total"].result == "improved"
    assert compare_scores([score(14)], previous)["total"].result == "deteriorated"
    assert compare_scores([score(17)], previous)["total"].result == "no-reliable-change"
    assert compare_scores([score(None)], previous) == {}


RESPONSE: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "subject": {"reference": "Patient/p"},
    "authored": "2024-05-01T09:00:00Z",
    "item": [{"linkId": "mood", "answer": [{"valueDecimal": 7.5}]}],
}
QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "name": "Mood",
    "title": "Mood",
    "item": [
        {
            "linkId": "mood",
            "type": "decimal",
            "code": [{"system": "http://example.org", "code": "mood"}],
            "extension": [
                {
                    "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract",
                    "valueBoolean": True,
                }
            ],
        }
    ],
}


def _extract(scores: list[Score], response: dict[str, Any] = RESPONSE) -> list[Any]:
    return extract_observations(
        QUESTIONNAIRE,
        response,
        scores,
        {},
        response_reference="QuestionnaireResponse/r",
        issued="2024-05-01T09:00:01Z",
        ids=lambda key: f"id-{key}",
        reference=lambda oid: f"Observation/{oid}",
    )


def test_scores_and_marked_items_become_a_panel_with_members() -> None:
    band = Band("high", "High", "http://example.org/bands", "warning")
    extracted = _extract([score(12.5, item_type="decimal", band=band), score(None, link_id="unscored")])
    assert [e.key for e in extracted] == ["panel", "total", "mood"]
    panel, total, mood = (e.resource for e in extracted)
    assert panel["hasMember"] == [{"reference": "Observation/id-total"}, {"reference": "Observation/id-mood"}]
    assert panel["code"]["coding"] == [
        {"system": "https://recovery-proms.org/fhir/CodeSystem/instrument", "code": "Mood"}
    ]
    assert total["valueQuantity"] == {
        "value": 12.5,
        "unit": "{score}",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }
    assert total["interpretation"][0]["coding"][0]["code"] == "high"
    assert mood["valueQuantity"] == {"value": 7.5}
    assert mood["effectiveDateTime"] == "2024-05-01T09:00:00Z"
    assert all(e.resource["status"] == "final" for e in extracted)


def test_amended_responses_give_amended_observations_and_nothing_scored_gives_nothing() -> None:
    amended = {**RESPONSE, "status": "amended"}
    assert {e.resource["status"] for e in _extract([score(3)], amended)} == {"amended"}
    assert _extract([], {**RESPONSE, "item": []}) == []


def test_answer_values_map_as_sdc_says() -> None:
    coding = {"system": "s", "code": "c"}
    assert observation_value({"valueCoding": coding}) == {"valueCodeableConcept": {"coding": [coding]}}
    assert observation_value({"valueDate": "2024-01-01"}) == {"valueDateTime": "2024-01-01"}
    assert observation_value({"valueBoolean": False}) == {"valueBoolean": False}
    assert observation_value({"item": []}) == {}


def test_provenance_names_the_submitter_and_the_questionnaire_version() -> None:
    record = provenance(
        targets=["QuestionnaireResponse/r/_history/1"],
        response={"author": {"reference": "Practitioner/x"}},
        questionnaire_reference="Questionnaire/q/_history/2",
        questionnaire_canonical="http://q|1.0.0",
        recorded="2024-05-01T09:00:01Z",
        software="recovery-proms 1",
        activity="CREATE",
    )
    assert record["agent"][0]["who"] == {"reference": "Practitioner/x"}
    assert record["entity"][0]["what"]["display"] == "http://q|1.0.0"
    anonymous = provenance(
        targets=[],
        response={},
        questionnaire_reference="",
        questionnaire_canonical="",
        recorded="",
        software="",
        activity="UPDATE",
    )
    assert anonymous["agent"][0]["who"]["display"] == "unidentified submitter"
