"""Scoring test helpers: fixture files, and responses built from {linkId: answer} so tests read as data."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

Json = dict[str, Any]
Answers = Mapping[str, Any]


def load(relative: str) -> Json:
    value = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def _answer(q_item: Mapping[str, Any], given: Any) -> Json:
    """An answer for ``q_item``: an option code picks that option; a dict is a ready answer; else a value."""
    if isinstance(given, dict):
        return given
    for option in q_item.get("answerOption") or ():
        coding = option.get("valueCoding")
        if coding is not None and coding.get("code") == given:
            return {"valueCoding": dict(coding)}
    item_type = q_item.get("type")
    if item_type == "integer":
        return {"valueInteger": given}
    if item_type == "decimal":
        return {"valueDecimal": given}
    if item_type == "quantity":
        return {"valueQuantity": {"value": given}}
    if item_type in ("string", "text"):
        return {"valueString": given}
    raise AssertionError(f"no option {given!r} on item {q_item.get('linkId')}")


def build_response(questionnaire: Mapping[str, Any], answers: Answers) -> Json:
    """A completed response with the given answers, nested as the Questionnaire nests its items."""

    def items(q_items: Any) -> list[Json]:
        built = []
        for q_item in q_items or ():
            if q_item.get("type") == "group":
                children = items(q_item.get("item"))
                if children:
                    built.append({"linkId": q_item["linkId"], "item": children})
            elif q_item["linkId"] in answers:
                given = answers[q_item["linkId"]]
                values = given if isinstance(given, list) else [given]
                built.append({"linkId": q_item["linkId"], "answer": [_answer(q_item, v) for v in values]})
        return built

    return {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items(questionnaire.get("item"))}


@pytest.fixture
def respond() -> Callable[[Mapping[str, Any], Answers], Json]:
    return build_response


@pytest.fixture
def fixture() -> Callable[[str], Json]:
    """Loads a file under tests/fixtures (a fresh object on every call)."""
    return load
