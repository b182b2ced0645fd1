"""Strengths and possible priorities: items placed on their own scale, direction honoured, midpoint neither."""

from __future__ import annotations

from typing import Any

from service.app_ui.profile import domain_summaries, instrument_direction, rate_items, strengths_and_priorities
from tests.unit.app_ui.builders import answered, choice_ids, questionnaire
from tests.unit.app_ui.conftest import phq9_weights

SD = "https://recovery-proms.org/fhir/StructureDefinition"


def test_qpr_strengths_are_the_highest_rated_items_and_priorities_the_lowest() -> None:
    qpr = questionnaire("qpr-15")
    items = choice_ids(qpr)
    weights = dict.fromkeys(items, 2.0)  # "neither agree nor disagree": neither a strength nor a priority
    weights.update(
        {"qpr-4": 4.0, "qpr-9": 3.0, "qpr-12": 4.0, "qpr-19": 3.0, "qpr-6": 0.0, "qpr-1": 1.0, "qpr-22": 0.0}
    )
    ratings = rate_items(qpr, answered(qpr, weights, authored="2026-01-01", response_id="r"))
    assert len(ratings) == 15 and all(r.profile for r in ratings)
    strengths, priorities = strengths_and_priorities(ratings)
    # Ties keep the Questionnaire's order; at most three of each.
    assert [r.link_id for r in strengths] == ["qpr-4", "qpr-12", "qpr-9"]
    assert [r.link_id for r in priorities] == ["qpr-6", "qpr-22", "qpr-1"]
    assert strengths[0].answer == "Agree strongly" and priorities[0].answer == "Disagree strongly"
    assert (strengths[0].relative, priorities[2].relative) == (1.0, 0.25)
    assert strengths[0].domain == "Connectedness"


def test_all_middle_answers_give_no_strengths_and_no_priorities() -> None:
    qpr = questionnaire("qpr-15")
    ratings = rate_items(
        qpr, answered(qpr, dict.fromkeys(choice_ids(qpr), 2.0), authored="2026-01-01", response_id="r")
    )
    assert strengths_and_priorities(ratings) == ([], [])


def test_dialog_items_are_rated_on_their_one_to_seven_scale() -> None:
    dialog = questionnaire("dialog")
    weights = {"dialog-1": 7.0, "dialog-2": 1.0, "dialog-3": 4.0, "dialog-9": 6.0}
    ratings = rate_items(dialog, answered(dialog, weights, authored="2026-01-01", response_id="r"))
    assert [(r.link_id, round(r.relative, 3)) for r in ratings] == [
        ("dialog-1", 1.0), ("dialog-2", 0.0), ("dialog-3", 0.5), ("dialog-9", 0.833),
    ]  # fmt: skip
    strengths, priorities = strengths_and_priorities(ratings, count=5)
    assert [r.link_id for r in strengths] == ["dialog-1", "dialog-9"]
    assert [r.link_id for r in priorities] == ["dialog-2"]


def test_items_of_a_lower_is_better_instrument_are_turned_round(phq9: dict[str, Any]) -> None:
    assert instrument_direction(phq9) == "lower-is-better"
    response = answered(phq9, phq9_weights(4), authored="2026-01-01", response_id="r")
    assert rate_items(phq9, response) == []  # PHQ-9 marks no profile items
    ratings = rate_items(phq9, response, profile_only=False)
    assert [(r.answer, r.relative) for r in ratings[:3]] == [
        ("Nearly every day", 0.0),
        ("Several days", 1 - 1 / 3),
        ("Not at all", 1.0),
    ]
    assert strengths_and_priorities(ratings) == ([], [])  # only profile items are conversation starters


def _item(link_id: str, weights: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "linkId": link_id,
        "text": link_id,
        "type": "choice",
        "extension": [{"url": f"{SD}/profile-item", "valueBoolean": True}],
        "answerOption": [
            {
                "valueCoding": {"system": "s", "code": str(w), "display": f"option {w}"},
                **(
                    {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/itemWeight", "valueDecimal": w}]}
                    if w >= 0
                    else {}
                ),
            }
            for w in weights
        ],
        **extra,
    }


def _response(**codes: str) -> dict[str, Any]:
    return {"item": [{"linkId": k, "answer": [{"valueCoding": {"system": "s", "code": v}}]} for k, v in codes.items()]}


def test_an_items_own_direction_wins_over_the_instruments() -> None:
    reversed_item = _item("worry", [0, 1, 2, 3])
    reversed_item["extension"].append({"url": f"{SD}/score-direction", "valueCode": "lower-is-better"})
    q = {"item": [_item("hope", [0, 1, 2, 3]), reversed_item]}
    ratings = rate_items(q, _response(hope="3", worry="3"))
    assert [(r.link_id, r.relative) for r in ratings] == [("hope", 1.0), ("worry", 0.0)]


def test_unweighted_options_are_placed_by_their_order_and_integer_items_by_min_and_max() -> None:
    q = {
        "item": [
            _item("plain", [-1, -1, -1]),
            {
                "linkId": "rating",
                "text": "Rating",
                "type": "integer",
                "extension": [
                    {"url": f"{SD}/profile-item", "valueBoolean": True},
                    {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
                    {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10},
                ],
            },
            {
                "linkId": "free",
                "text": "Free",
                "type": "string",
                "extension": [{"url": f"{SD}/profile-item", "valueBoolean": True}],
            },
        ]
    }
    response = {
        "item": [
            {"linkId": "plain", "answer": [{"valueCoding": {"system": "s", "code": "-1"}}]},
            {"linkId": "rating", "answer": [{"valueInteger": 8}]},
            {"linkId": "free", "answer": [{"valueString": "hello"}]},
        ]
    }
    ratings = rate_items(q, response)
    assert [(r.link_id, r.relative) for r in ratings] == [("plain", 0.0), ("rating", 0.8)]


def test_domain_summaries_average_each_recovery_domain() -> None:
    qpr = questionnaire("qpr-15")
    weights = dict.fromkeys(choice_ids(qpr), 4.0)
    weights["qpr-1"] = 0.0
    summaries = domain_summaries(rate_items(qpr, answered(qpr, weights, authored="2026-01-01", response_id="r")))
    by_domain = {s.domain: (round(s.mean, 3), s.items) for s in summaries}
    identity = by_domain["Identity"]
    assert identity[0] < 1.0 and sum(items for _, items in by_domain.values()) == 15


def test_an_answers_distance_from_the_best_answer_honours_reverse_scored_items() -> None:
    """CORE-10 item 2 is worded positively: "Not at all" weighs 4 there, so it is the worst answer, not the best."""
    core10 = questionnaire("core-10")
    weights = dict.fromkeys(choice_ids(core10), 0.0) | {"core-10-1": 3.0, "core-10-2": 4.0}
    ratings = rate_items(core10, answered(core10, weights, authored="2026-01-01", response_id="r"), profile_only=False)
    by_id = {r.link_id: r for r in ratings}
    tense, support, plans = by_id["core-10-1"], by_id["core-10-2"], by_id["core-10-6"]
    assert (tense.answer, tense.points_from_best, tense.span, tense.distance) == ("Often", 3.0, 4.0, 0.75)
    assert (support.answer, support.points_from_best, support.distance) == ("Not at all", 4.0, 1.0)
    assert (by_id["core-10-3"].answer, by_id["core-10-3"].distance) == ("Most or all of the time", 0.0)
    assert plans.safety and plans.prefix == "6" and plans.distance == 0.0
    assert [r.link_id for r in ratings if r.safety] == ["core-10-6"]


def test_on_a_higher_is_better_scale_the_highest_answer_is_the_best() -> None:
    dialog = questionnaire("dialog")
    ratings = rate_items(
        dialog, answered(dialog, {"dialog-1": 7.0, "dialog-2": 1.0}, authored="2026-01-01", response_id="r")
    )
    assert [(r.link_id, r.points_from_best, r.span, r.distance) for r in ratings] == [
        ("dialog-1", 0.0, 6.0, 0.0),
        ("dialog-2", 6.0, 6.0, 1.0),
    ]
