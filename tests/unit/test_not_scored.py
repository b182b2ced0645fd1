"""A response stored without a score says why, in the instrument's terms: which score, how many of its items were
answered, and how many its missing-item rule needs. The counts below are worked out by hand from the instruments'
fact sheets (PHQ-9: 7 of 9 items; K10: 9 of 10; K6 of the K10: all six of items 2, 4, 5, 8, 9, 10; CORE-10: 9 of
10; DIALOG: every item of each mean), not from the code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.config import PROJECT_ROOT
from service.responses.checks import check_response, score_name, validation_outcome


def library(slug: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((PROJECT_ROOT / "questionnaires" / slug / "questionnaire.json").read_text())
    return value


def weighted_items(questionnaire: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        item
        for item in questionnaire["item"]
        if item["type"] == "choice"
        and any("itemWeight" in e["url"] for o in item.get("answerOption", []) for e in o.get("extension", []))
    ]


def answering_first(slug: str, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    questionnaire = library(slug)
    items = weighted_items(questionnaire)[:count]
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": questionnaire["url"],
        "item": [
            {"linkId": i["linkId"], "text": i["text"], "answer": [{"valueCoding": i["answerOption"][1]["valueCoding"]}]}
            for i in items
        ],
    }
    return questionnaire, response


@pytest.mark.parametrize(
    ("slug", "answered", "expected"),
    [
        ("phq-9", 1, ["PHQ-9 total score not scored: 1 of 9 items answered, at least 7 needed"]),
        ("phq-9", 6, ["PHQ-9 total score not scored: 6 of 9 items answered, at least 7 needed"]),
        ("phq-9", 7, []),
        ("core-10", 8, ["CORE-10 clinical score not scored: 8 of 10 items answered, at least 9 needed"]),
        ("core-10", 9, []),
        (
            "k10",
            8,  # items 1-8: of the K6 items (2, 4, 5, 8, 9, 10) four are answered
            [
                "K10 total score, Australian scoring not scored: 8 of 10 items answered, at least 9 needed",
                "K10 total score, 0-4 scoring not scored: 8 of 10 items answered, at least 9 needed",
                "K6 total score from the six K6 items of the K10 not scored: 4 of 6 items answered, at least 6 needed",
            ],
        ),
        (
            "dialog",
            8,  # the eight life domains: the quality-of-life mean is made, the treatment mean is not
            ["DIALOG treatment satisfaction not scored: 0 of 3 items answered, at least 3 needed"],
        ),
    ],
)
def test_the_warning_names_the_score_and_the_rule(slug: str, answered: int, expected: list[str]) -> None:
    questionnaire, response = answering_first(slug, answered)
    warnings = check_response(questionnaire, response).warnings
    assert [w.text for w in warnings if w.code == "incomplete"] == expected
    assert all(w.severity == "warning" for w in warnings)
    assert [i.text for i in validation_outcome(questionnaire, response) if i.code == "incomplete"] == expected


def test_no_warning_for_a_response_that_is_not_complete() -> None:
    questionnaire, response = answering_first("phq-9", 1)
    response["status"] = "in-progress"
    assert [w for w in check_response(questionnaire, response).warnings if w.code == "incomplete"] == []


@pytest.mark.parametrize(
    ("label", "text", "name"),
    [
        ("PHQ-9", "PHQ-9 total score (0–27)", "PHQ-9 total score"),
        ("DIALOG", "Subjective quality of life: mean of items 1-8 (1–7)", "DIALOG subjective quality of life"),
        ("GBO", "Goal 1 score (0–10)", "GBO goal 1 score"),
        (
            "K10",
            "K6 total score from the six K6 items of the K10: each item 0-4",
            "K6 total score from the six K6 items of the K10",
        ),
        ("QPR-22", "QPR-22 intrapersonal subscale (17 items, 0–68)", "QPR-22 intrapersonal subscale"),
    ],
)
def test_a_score_s_name_in_a_sentence(label: str, text: str, name: str) -> None:
    assert score_name(label, text) == name
