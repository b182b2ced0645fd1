"""Which answered items each score is made from, and how many of them its missing-item rule needs.

A score's rule lives in its FHIRPath (e.g. ``iif(%weights.count() >= 7, ..., {})``); the number is declared
beside it in the ``score-minimum-answers`` extension, so that a response left without a score can be told
why in plain words. The items are found from the expression itself: the linkIds it names as string literals,
directly, through the variables it uses, or through other scores it reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.scoring import extensions as ext
from service.scoring.definition import ExpressionDef, ItemDef, QuestionnaireDefinition, definition_for

_STRING_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
_VARIABLE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)")
_NOT_ANSWERED_TYPES = ("group", "display")


@dataclass(frozen=True)
class ScoreInputs:
    items: tuple[str, ...]  # the linkIds of the answered items the score is made from, in Questionnaire order
    minimum: int | None  # how many of them must be answered for a score (None: not declared)


def _literals(text: str) -> set[str]:
    return {match.group(1).replace("\\'", "'") for match in _STRING_LITERAL.finditer(text)}


def _referenced_variables(text: str) -> set[str]:
    return {match.group(1) for match in _VARIABLE.finditer(text)}


def _minimum(item: ItemDef) -> int | None:
    for extension in item.source.get("extension", []):
        if extension.get("url") == ext.SCORE_MINIMUM_ANSWERS and isinstance(extension.get("valueInteger"), int):
            value: int = extension["valueInteger"]
            return value
    return None


def score_inputs(questionnaire: Mapping[str, Any]) -> Mapping[str, ScoreInputs]:
    """Each calculated item's inputs, by its linkId (computed once per Questionnaire)."""
    definition = definition_for(questionnaire)
    found = definition.readings.get("score inputs")
    if not isinstance(found, dict):
        found = definition.readings["score inputs"] = _score_inputs(definition)
    return found


def _score_inputs(definition: QuestionnaireDefinition) -> dict[str, ScoreInputs]:
    answered = [item.link_id for item in definition.walk() if item.type not in _NOT_ANSWERED_TYPES]
    calculated = {item.link_id: item for item in definition.calculated_items}
    variables: dict[str, ExpressionDef] = {}
    for expression in definition.expressions:
        if expression.kind == "variable" and expression.name:
            variables.setdefault(expression.name, expression)

    def inputs_of(text: str, seen: set[str]) -> set[str]:
        names = _literals(text)
        for name in _referenced_variables(text) - seen:
            seen.add(name)
            if name in variables:
                names |= inputs_of(variables[name].text, seen)
        for link_id in names & set(calculated) - seen:
            seen.add(link_id)
            other = calculated[link_id].calculated
            if other is not None:
                names |= inputs_of(other.text, seen)
        return names

    result: dict[str, ScoreInputs] = {}
    for link_id, item in calculated.items():
        assert item.calculated is not None
        names = inputs_of(item.calculated.text, {link_id})
        items = tuple(candidate for candidate in answered if candidate in names and candidate not in calculated)
        result[link_id] = ScoreInputs(items, _minimum(item))
    return result
