"""A response that says it is complete must say something: empty arrays are invalid FHIR JSON (400), a completed
response that answers nothing is refused (422), and a score the instrument's missing-item rule leaves unmade is
said plainly, naming the score and the rule. Nothing refused is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.config import PROJECT_ROOT
from tests.conftest import Fhir

PHQ9 = json.loads((PROJECT_ROOT / "questionnaires" / "phq-9" / "questionnaire.json").read_text())
PHQ9_CANONICAL = f"{PHQ9['url']}|{PHQ9['version']}"
PHQ9_ITEMS = [item for item in PHQ9["item"] if item["type"] == "choice" and item["linkId"] != "/69722-7"]


def phq9(weights: list[int], *, status: str = "completed") -> dict[str, Any]:
    """A PHQ-9 response answering the first len(weights) of the nine scored items."""
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": PHQ9_CANONICAL,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "authored": "2026-11-20T10:00:00Z",
        "item": [
            {
                "linkId": item["linkId"],
                "text": item["text"],
                "answer": [{"valueCoding": item["answerOption"][w]["valueCoding"]}],
            }
            for item, w in zip(PHQ9_ITEMS, weights, strict=False)
        ],
    }


@pytest.fixture
def loaded(fhir: Fhir) -> None:
    fhir.create(PHQ9)


def stored_responses(fhir: Fhir) -> int:
    total: int = fhir.get("QuestionnaireResponse?_summary=count").get_json()["total"]
    return total


def test_an_empty_array_anywhere_is_400_naming_where(fhir: Fhir, loaded: None) -> None:
    body = {**phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]), "item": []}
    result = fhir.post("QuestionnaireResponse", body)
    assert result.status_code == 400
    issue = result.get_json()["issue"][0]
    assert issue["code"] == "structure"
    assert issue["expression"] == ["QuestionnaireResponse.item"]
    assert "empty array" in issue["details"]["text"]
    nested = phq9([1, 1, 1, 1, 1, 1, 1, 1, 1])
    nested["item"][2]["answer"] = []
    result = fhir.post("QuestionnaireResponse", nested)
    assert result.status_code == 400
    assert result.get_json()["issue"][0]["expression"] == ["QuestionnaireResponse.item[2].answer"]
    assert stored_responses(fhir) == 0


@pytest.mark.parametrize("status", ["completed", "amended"])
def test_a_complete_response_that_answers_nothing_is_422(fhir: Fhir, loaded: None, status: str) -> None:
    for body in (
        {k: v for k, v in phq9([], status=status).items() if k != "item"},  # no items at all
        {**phq9([], status=status), "item": [{"linkId": PHQ9_ITEMS[0]["linkId"], "text": PHQ9_ITEMS[0]["text"]}]},
    ):
        result = fhir.post("QuestionnaireResponse", body)
        assert result.status_code == 422, result.get_json()
        issue = result.get_json()["issue"][0]
        assert issue["code"] == "required"
        assert "must answer at least one question" in issue["details"]["text"]
    assert stored_responses(fhir) == 0


def test_an_in_progress_response_with_no_answers_is_kept(fhir: Fhir, loaded: None) -> None:
    body = {k: v for k, v in phq9([], status="in-progress").items() if k != "item"}
    assert fhir.post("QuestionnaireResponse", body).status_code == 201


def test_a_score_left_unmade_is_said_with_its_rule(fhir: Fhir, loaded: None) -> None:
    expected = "PHQ-9 total score not scored: 1 of 9 items answered, at least 7 needed"
    result = fhir.post("QuestionnaireResponse", phq9([2]), {"Prefer": "return=OperationOutcome"})
    assert result.status_code == 201
    issues = result.get_json()["issue"]
    assert [(i["severity"], i["code"], i["details"]["text"]) for i in issues] == [("warning", "incomplete", expected)]
    assert issues[0]["diagnostics"] == "linkId: /44261-6"
    # $validate says the same, and no Observation carries a score that was never made.
    outcome = fhir.post("QuestionnaireResponse/$validate", phq9([2])).get_json()
    assert [i["details"]["text"] for i in outcome["issue"]] == [expected]
    location = result.headers["Location"].split("/_history")[0].rsplit("/", 1)[-1]
    codes = [
        coding["code"]
        for entry in fhir.get(f"Observation?derived-from=QuestionnaireResponse/{location}").get_json().get("entry", [])
        for coding in entry["resource"]["code"]["coding"]
    ]
    assert "44261-6" not in codes


def test_seven_of_nine_answered_is_scored_without_a_warning(fhir: Fhir, loaded: None) -> None:
    result = fhir.post("QuestionnaireResponse", phq9([1, 2, 3, 0, 1, 2, 3]), {"Prefer": "return=OperationOutcome"})
    assert result.status_code == 201
    assert [issue["details"]["text"] for issue in result.get_json()["issue"]] == ["All OK"]


# internal failures are the server's ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["service.responses.checks.validate_response", "service.responses.checks.score_response"]
)
def test_a_crash_inside_validation_or_scoring_is_a_logged_500(
    fhir: Fhir, loaded: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, target: str
) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a defect in the service")

    monkeypatch.setattr(target, crash)
    result = fhir.post("QuestionnaireResponse", phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]))
    assert result.status_code == 500
    assert result.get_json()["issue"][0]["code"] == "exception"
    assert any("a defect in the service" in (record.exc_text or "") for record in caplog.records)
    assert stored_responses(fhir) == 0


def test_a_response_left_without_a_score_does_not_hide_the_change_since_the_last_score(
    fhir: Fhir, loaded: None
) -> None:
    """Change is measured against the last response that has a score: one saved without (too few answers) in
    between must not turn a reliable improvement into "nothing to compare with"."""
    fhir.create({**phq9([3, 3, 3, 3, 3, 3, 0, 0, 0]), "authored": "2026-10-01T10:00:00Z"})  # 18
    fhir.create({**phq9([1, 1]), "authored": "2026-10-15T10:00:00Z"})  # not scored
    latest = fhir.create({**phq9([1, 1, 1, 1, 1, 1, 1, 1, 1]), "authored": "2026-11-01T10:00:00Z"})  # 9
    (total,) = [
        entry["resource"]
        for entry in fhir.get(f"Observation?derived-from=QuestionnaireResponse/{latest['id']}").get_json()["entry"]
        if entry["resource"]["code"]["coding"][0]["code"] == "44261-6"
    ]
    change = next(e for e in total["extension"] if e["url"].endswith("reliable-change-result"))
    parts = {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in change["extension"]}
    assert (parts["result"], parts["difference"]) == ("improved", -9)
