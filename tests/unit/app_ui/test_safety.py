"""Which item raised a safety Flag and how it was answered, from the Questionnaire and the response."""

from __future__ import annotations

from typing import Any

from service.app_ui.safety import flagged_answer, safety_items
from service.extraction import safety_flag
from service.scoring import score_response
from tests.unit.app_ui.builders import answered, choice_ids, questionnaire
from tests.unit.app_ui.conftest import phq9_weights


def test_the_flag_names_its_item_and_the_answer_given(phq9: dict[str, Any]) -> None:
    response = answered(phq9, phq9_weights(20, item9=2), authored="2026-03-01T09:00:00Z", response_id="r")
    (raised,) = score_response(phq9, response).safety_flags
    flag = safety_flag(raised.message, response, "QuestionnaireResponse/r")
    found = flagged_answer(phq9, response, flag["code"]["text"])
    assert found is not None
    assert (found.link_id, found.number, found.item, found.answer) == (
        "/44260-8", "9", "item 9", "More than half the days",
    )  # fmt: skip
    assert found.text == "Thoughts that you would be better off dead or of hurting yourself in some way"


def test_a_reworded_message_still_finds_an_instruments_only_safety_item(phq9: dict[str, Any]) -> None:
    response = answered(phq9, phq9_weights(4, item9=1), authored="2026-03-01T09:00:00Z", response_id="r")
    found = flagged_answer(phq9, response, "An older wording of the message")
    assert found is not None and (found.item, found.answer) == ("item 9", "Several days")


def test_the_answer_is_not_guessed_without_the_response_or_the_item(phq9: dict[str, Any]) -> None:
    found = flagged_answer(phq9, None, "anything")
    assert found is not None and found.answer is None  # the item is known, the answer is not
    assert flagged_answer(None, None, "anything") is None
    qpr = questionnaire("qpr-15")
    assert safety_items(qpr) == []
    response = answered(qpr, dict.fromkeys(choice_ids(qpr), 1.0), authored="2026-03-01", response_id="q")
    assert flagged_answer(qpr, response, "anything") is None


def test_with_several_safety_items_only_the_message_decides() -> None:
    item = {
        "type": "choice",
        "answerOption": [{"valueCoding": {"code": "y", "display": "Yes"}}],
    }

    def flagged(link_id: str, message: str) -> dict[str, Any]:
        return {
            **item,
            "linkId": link_id,
            "text": f"Question {link_id}",
            "extension": [
                {
                    "url": "https://recovery-proms.org/fhir/StructureDefinition/safety-flag",
                    "extension": [{"url": "message", "valueString": message}],
                }
            ],
        }

    q = {"item": [flagged("a", "A raised"), flagged("b", "B raised")]}
    response = {"item": [{"linkId": "b", "answer": [{"valueCoding": {"code": "y", "display": "Yes"}}]}]}
    found = flagged_answer(q, response, "B raised")
    assert found is not None and (found.link_id, found.item, found.answer) == ("b", "“Question b”", "Yes")
    assert flagged_answer(q, response, "Unknown message") is None
