"""score_response: recompute a response's calculated items, then read off scores, bands and safety flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.scoring import extensions as ext
from service.scoring.answers import answer_number, json_number
from service.scoring.calculate import HOLDS_CALCULATION, Calculation
from service.scoring.definition import ItemDef, QuestionnaireDefinition, definition_for
from service.scoring.fhirpath import compile_expression, evaluate, plain
from service.scoring.functions import FhirPathError
from service.scoring.interpret import band_for, bands_of, decimal_extension, direction_of, raised_flags
from service.scoring.results import BandRange, Score, ScoringResult
from service.scoring.scope import Scope
from service.scoring.weights import AnswerWeights, Terminology


def score_response(
    questionnaire: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    terminology: Sequence[Mapping[str, Any]] = (),
) -> ScoringResult:
    """Score ``response`` against ``questionnaire`` (both FHIR JSON as dicts); never raises for bad content.

    ``terminology``: ValueSets and CodeSystems the caller has resolved (e.g. from the store) that
    ``answerValueSet`` or a Coding's system refers to, for weights found only there. Everything else
    is read from the two resources; nothing is fetched.
    """
    definition = definition_for(questionnaire)
    copy: dict[str, Any] = ext.json_copy(response)
    weights = AnswerWeights(
        copy, definition.q_items, definition.contained, Terminology(terminology), options=definition.options
    )
    calculation = Calculation(definition, copy, weights)
    issues = calculation.run()
    calculation.errors = []
    flags = raised_flags(calculation.scope)
    issues.extend(issue for issue in calculation.errors if issue not in issues)
    return ScoringResult(
        response=copy,
        scores=tuple(_scores(calculation)),
        safety_flags=tuple(flags),
        issues=tuple(issues),
    )


@dataclass(frozen=True)
class _Reading:
    """What a score item's extensions say about its scores (read once per Questionnaire)."""

    bands: tuple[BandRange, ...]
    direction: str | None
    reliable_change_threshold: float | None
    minimal_important_difference: float | None


def _reading(definition: QuestionnaireDefinition, item_def: ItemDef) -> _Reading:
    key = f"score {item_def.path}"
    found = definition.readings.get(key)
    if not isinstance(found, _Reading):
        source = item_def.source
        found = definition.readings[key] = _Reading(
            bands=bands_of(source),
            direction=direction_of(source),
            reliable_change_threshold=decimal_extension(source, ext.RELIABLE_CHANGE),
            minimal_important_difference=decimal_extension(source, ext.MINIMAL_IMPORTANT_DIFFERENCE),
        )
    return found


def _score(item_def: ItemDef, reading: _Reading, answers: Any) -> Score:
    number = None
    if isinstance(answers, list) and answers and isinstance(answers[0], Mapping):
        found = answer_number(answers[0])
        number = None if found is None else json_number(found)
    return Score(
        link_id=item_def.link_id,
        text=item_def.text,
        codes=tuple(dict(code) for code in item_def.codes),
        item_type=item_def.type,
        value=number,
        band=band_for(number, reading.bands),
        direction=reading.direction,
        reliable_change_threshold=reading.reliable_change_threshold,
        minimal_important_difference=reading.minimal_important_difference,
        bands=reading.bands,
    )


def _scores(calculation: Calculation) -> list[Score]:
    instances: dict[str, list[Any]] = {}
    for visit in calculation.scope.walk(variables=False, within=HOLDS_CALCULATION):
        if visit.item is not None and visit.item_def is not None and visit.item_def.calculated is not None:
            instances.setdefault(visit.item_def.link_id, []).append(visit.item.get("answer"))
    scores = []
    for item_def in calculation.definition.calculated():
        reading = _reading(calculation.definition, item_def)
        for answers in instances.get(item_def.link_id) or [None]:
            scores.append(_score(item_def, reading, answers))
    return scores


def evaluate_expression(
    questionnaire: Mapping[str, Any],
    response: Mapping[str, Any],
    expression: str,
    *,
    terminology: Sequence[Mapping[str, Any]] = (),
) -> list[Any]:
    """Evaluate one FHIRPath expression over ``response`` as the Questionnaire root would: with
    ``%resource``, ``%questionnaire`` and the Questionnaire-level variables. Raises FhirPathError.

    For tools and tests (e.g. "what does weight() give for these answers?"); scoring does not use it.
    """
    definition = definition_for(questionnaire)
    copy: dict[str, Any] = ext.json_copy(response)
    weights = AnswerWeights(
        copy, definition.q_items, definition.contained, Terminology(terminology), options=definition.options
    )
    failures: list[str] = []
    scope = Scope(definition, copy, weights, lambda e, reason, item: failures.append(f"%{e.name}: {reason}"))
    root = next(scope.walk())
    if failures:
        raise FhirPathError("; ".join(failures))
    return plain(evaluate(compile_expression(expression), copy, root.env, weights))
