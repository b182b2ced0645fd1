"""A stored response as the clinician reads it, what a form is missing before it is stored, and a safety item's page
(pure parts). Scores come from what was stored; why one is missing, from the instrument's own rule."""

from __future__ import annotations

from typing import Any

from service.app_ui.dashboard import results_of_response
from service.app_ui.forms import form_items, missing_answers, read_form
from service.app_ui.history import instrument_histories
from service.app_ui.response_view import answer_text, response_view, shortfall_texts
from service.app_ui.safety import flag_view
from service.scoring import score_response
from tests.unit.app_ui.builders import answered, derived, questionnaire
from tests.unit.app_ui.conftest import PHQ9_ITEMS, phq9_weights


def stored(q: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The response as the service stores it: with the scores it worked out filled in."""
    return score_response(q, response).response


def test_every_question_is_listed_with_its_answer_or_as_unanswered(phq9: dict[str, Any]) -> None:
    weights = {link_id: 1.0 for link_id in PHQ9_ITEMS[:5]}
    response = stored(phq9, answered(phq9, weights, authored="2026-03-01T09:00:00Z", response_id="r"))
    view = response_view(phq9, response, [], [])
    assert [line.number for line in view.lines] == [str(n) for n in range(1, 11)]  # no total, no instructions
    assert [line.answers for line in view.lines[:5]] == [("Several days",)] * 5
    assert [line.answers for line in view.lines[5:]] == [()] * 5
    item9 = view.lines[8]
    assert item9.safety and item9.text.startswith("Thoughts that you would be better off dead")
    assert not any(line.safety for line in view.lines if line is not item9)


def test_a_score_below_the_minimum_is_not_scored_and_says_the_rule(phq9: dict[str, Any]) -> None:
    weights = {link_id: 2.0 for link_id in PHQ9_ITEMS[:6]}
    response = stored(phq9, answered(phq9, weights, authored="2026-03-01T09:00:00Z", response_id="r"))
    view = response_view(phq9, response, [], [])
    (score,) = view.scores
    assert (score.value, score.band) == (None, None)
    assert score.reason == "PHQ-9 total score needs at least 7 of its 9 items answered; 6 were answered"
    assert not view.scored and view.unscored == [score]
    # The same words the confirmation page uses before the response is stored.
    assert shortfall_texts(phq9, response, ["/44261-6"]) == [score.reason]


def test_a_scored_response_reads_its_value_band_direction_and_change(
    phq9: dict[str, Any], phq9_history: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    responses, observations, flags = phq9_history
    (history,) = instrument_histories({phq9["url"]: phq9}, responses, observations)
    latest = stored(phq9, responses[-1])
    view = response_view(phq9, latest, results_of_response(history, "r3"), flags)
    (score,) = view.scores
    assert view.scored and (score.value, score.band and score.band.display) == ("19", "Moderately severe")
    assert score.direction_words == "Lower scores are better"
    assert score.change == "deteriorated"
    assert score.change_text == "Up 8 points since 1 Feb 2026: a reliable deterioration"
    (flag,) = view.flags
    assert (flag.flag_id, flag.status, flag.ended) == ("r3-flag-0", "active", None)
    assert response_view(phq9, stored(phq9, responses[0]), [], flags).flags == []  # raised by r3 only


def test_a_response_that_is_not_completed_is_not_said_to_be_scored(phq9: dict[str, Any]) -> None:
    response = {**answered(phq9, phq9_weights(9), authored="2026-03-01T09:00:00Z", response_id="r")}
    response["status"] = "in-progress"
    (score,) = response_view(phq9, response, [], []).scores
    assert score.value is None and score.reason == (
        "Not scored: only completed responses are scored, and this one is in progress (not finished)"
    )


def test_who_answered(phq9: dict[str, Any]) -> None:
    response = answered(phq9, phq9_weights(3), authored="2026-03-01T09:00:00Z", response_id="r")
    self_reported = response_view(phq9, {**response, "author": {"reference": "Patient/p1"}}, [], [])
    assert (self_reported.answered_by, self_reported.recorded_by) == ("the person themselves", "the person themselves")
    entered = {**response, "author": {"reference": "Practitioner/dr-1"}, "source": {"reference": "Patient/p1"}}
    view = response_view(phq9, entered, [], [])
    assert (view.answered_by, view.recorded_by) == ("the person themselves", "Practitioner/dr-1")
    assert response_view(phq9, response, [], []).answered_by is None  # not recorded: not guessed


def test_answers_read_as_the_person_gave_them() -> None:
    assert answer_text({"valueBoolean": False}) == "No"
    assert answer_text({"valueQuantity": {"value": 72.5, "unit": "kg"}}) == "72.5 kg"
    assert answer_text({"valueCoding": {"code": "x", "display": "Several days"}}) == "Several days"
    assert answer_text({"valueInteger": 0}) == "0"


def test_the_questions_a_clinician_is_asked_about_before_storing(phq9: dict[str, Any]) -> None:
    fields = {f"i-{index}": ["1"] for index in range(1, 6)}  # items 1-5 answered, 6-10 not
    missing = missing_answers(phq9, read_form(phq9, fields))
    # Items 6-9 count towards the total; item 10 (how difficult) does not, and is not required.
    assert [item.label.split(".")[0] for item in missing] == ["6", "7", "8", "9"]
    assert all(item.missing for item in missing) and [item.safety for item in missing] == [False] * 3 + [True]
    qpr = questionnaire("qpr-15")
    assert len(missing_answers(qpr, read_form(qpr, {}))) == 15  # required (and scored) items
    assert missing_answers(phq9, read_form(phq9, {f"i-{i}": ["0"] for i in range(1, 11)})) == []
    assert not any(item.missing for item in form_items(phq9))


def test_a_safety_items_page_shows_the_answer_and_the_earlier_answers_to_it(
    phq9: dict[str, Any], phq9_history: tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    responses, _, flags = phq9_history
    (flag,) = flags
    view = flag_view(flag, responses[-1], phq9, list(reversed(responses)))
    assert view.answered is not None and (view.answered.item, view.answered.answer) == ("item 9", "Several days")
    assert view.status == "active" and not view.reviewed and view.response_id == "r3"
    assert [(e.response_id, e.answer) for e in view.earlier] == [("r2", "Not at all"), ("r1", "Not at all")]
    reviewed = flag_view({**flag, "status": "inactive", "period": {**flag["period"], "end": "2026-03-02T10:00:00Z"}},
                         responses[-1], phq9, responses)  # fmt: skip
    assert reviewed.reviewed and reviewed.ended is not None and reviewed.ended.day == 2


def test_flags_of_other_responses_are_not_this_responses(phq9: dict[str, Any]) -> None:
    first = answered(phq9, phq9_weights(5, item9=1), authored="2026-03-01T09:00:00Z", response_id="a")
    second = answered(phq9, phq9_weights(6, item9=2), authored="2026-03-08T09:00:00Z", response_id="b")
    _, flags = derived(phq9, [first, second])
    assert [f.flag_id for f in response_view(phq9, stored(phq9, second), [], flags).flags] == ["b-flag-0"]
