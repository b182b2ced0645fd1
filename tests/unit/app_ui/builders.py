"""Responses to library instruments by answer weight, and the Observations the service would derive from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.change import PreviousScore, compare_scores
from service.extraction import extract_observations, safety_flag
from service.scoring import score_response
from tests.unit.instruments.library import ITEM_WEIGHT, questionnaire

__all__ = ["answered", "derived", "questionnaire"]


def _option_for(item: Mapping[str, Any], weight: float) -> dict[str, Any]:
    for option in item["answerOption"]:
        for extension in option.get("extension", []):
            if extension["url"] == ITEM_WEIGHT and extension["valueDecimal"] == weight:
                return {key: value for key, value in option.items() if key.startswith("value")}
    raise AssertionError(f"{item['linkId']} has no option weighing {weight}")


def answered(
    q: Mapping[str, Any],
    weights: Mapping[str, float],
    *,
    authored: str,
    response_id: str,
    subject: str = "p1",
) -> dict[str, Any]:
    """A completed response choosing, for each linkId given, the option with that weight."""
    items = []
    for item in q["item"]:
        if item["linkId"] in weights:
            items.append({"linkId": item["linkId"], "answer": [_option_for(item, weights[item["linkId"]])]})
    return {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "questionnaire": f"{q['url']}|{q['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/{subject}"},
        "authored": authored,
        "item": items,
    }


def choice_ids(q: Mapping[str, Any]) -> list[str]:
    return [item["linkId"] for item in q["item"] if item["type"] == "choice"]


def derived(
    q: Mapping[str, Any], responses: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Observations and Flags the submission path derives from responses given oldest first (pure steps only)."""
    observations: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    previous: dict[str, PreviousScore] = {}
    for response in responses:
        result = score_response(q, response)
        changes = compare_scores(result.scores, previous)
        extracted = extract_observations(
            q,
            result.response,
            result.scores,
            changes,
            response_reference=f"QuestionnaireResponse/{response['id']}",
            issued=response["authored"],
            ids=lambda key, rid=response["id"]: f"{rid}-{key}".replace("/", ""),
            reference=lambda oid: f"Observation/{oid}",
        )
        observations.extend(item.resource for item in extracted)
        for index, flag in enumerate(result.safety_flags):
            flags.append(
                {
                    "id": f"{response['id']}-flag-{index}",
                    **safety_flag(flag.message, response, f"QuestionnaireResponse/{response['id']}"),
                }
            )
        previous = {
            score.link_id: PreviousScore(float(score.value), response["id"], response["authored"])
            for score in result.scores
            if score.value is not None
        }
    return observations, flags
