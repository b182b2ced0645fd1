"""Checking a Questionnaire's expressions, scoring extensions and answer patterns before it is used (for
`questionnaires check` and before a Questionnaire is stored)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from service.fhir.issues import Issue
from service.scoring import extensions as ext
from service.scoring.definition import FHIRPATH, ExpressionDef, ItemDef, definition_for
from service.scoring.fhirpath import SDC_ENVIRONMENT, constant_names, function_names, known_functions
from service.scoring.interpret import DIRECTIONS, BandError, read_band
from service.scoring.patterns import PatternError, compile_pattern
from service.scoring.results import BandRange

# The expressions scoring evaluates; the others (population, enableWhen ...) are listed but not run here.
SCORING_KINDS = ("variable", "calculatedExpression", "safety-flag")
_NO_VALUE_TYPES = ("group", "display")


@dataclass(frozen=True)
class ExpressionLocation:
    """One Expression in a Questionnaire: where it is and what it says."""

    kind: str  # variable | calculatedExpression | safety-flag | initialExpression | enableWhenExpression ...
    name: str | None
    language: str | None
    expression: str
    link_id: str | None
    path: str  # FHIRPath to its extension, e.g. Questionnaire.item[9].extension[1]


def questionnaire_expressions(questionnaire: Mapping[str, Any]) -> list[ExpressionLocation]:
    """Every Expression the Questionnaire contains, in document order."""
    return [
        ExpressionLocation(e.kind, e.name, e.language, e.text, e.link_id, e.path)
        for e in definition_for(questionnaire).expressions
    ]


def _where(expression: ExpressionDef) -> str:
    what = f"variable %{expression.name}" if expression.kind == "variable" and expression.name else expression.kind
    where = f"item {expression.link_id!r}" if expression.link_id else "the Questionnaire"
    return f"The {what} on {where}"


def _check_expression(expression: ExpressionDef, visible: set[str]) -> list[Issue]:
    def issue(severity: str, text: str) -> Issue:
        return Issue(
            "error" if severity == "error" else "warning" if severity == "warning" else "information",
            "invalid" if severity == "error" else "informational",
            f"{_where(expression)} {text}. Expression: {expression.text}",
            expression.path,
            expression.link_id,
        )

    if expression.kind == "variable" and not expression.name:
        return [issue("error", "has no name")]
    if expression.language != FHIRPATH:
        if expression.kind in ("calculatedExpression", "safety-flag"):
            return [issue("error", f"is in {expression.language!r}; only {FHIRPATH} is evaluated")]
        return [issue("information", f"is in {expression.language!r} and is not evaluated by this service")]
    if expression.compiled is None:
        return [issue("error", f"does not compile: {expression.error}")]
    issues = []
    unknown_functions = sorted(function_names(expression.compiled) - known_functions())
    if unknown_functions:
        issues.append(issue("error", f"calls functions this engine does not have: {', '.join(unknown_functions)}"))
    unknown = sorted(
        name for name in constant_names(expression.compiled) - visible if not name.startswith(("vs-", "ext-"))
    )
    if unknown and expression.kind in SCORING_KINDS:
        issues.append(issue("error", f"reads variables not defined before it: {', '.join('%' + n for n in unknown)}"))
    return issues


def _check_element(
    expressions: Iterable[ExpressionDef], variables: Iterable[ExpressionDef], inherited: set[str], qitem: bool
) -> tuple[list[Issue], set[str]]:
    visible = set(inherited) | ({"qitem"} if qitem else set())
    issues = []
    for variable in variables:
        issues.extend(_check_expression(variable, visible))
        if variable.name in visible and variable.name in SDC_ENVIRONMENT:
            issues.append(Issue("error", "invalid", f"{_where(variable)} reuses a reserved name", variable.path))
        if variable.name:
            visible.add(variable.name)
    for expression in expressions:
        if expression.kind != "variable":
            issues.extend(_check_expression(expression, visible))
    return issues, visible


def _check_item_extensions(item: ItemDef) -> list[Issue]:
    issues = []
    if item.calculated is not None and item.type in _NO_VALUE_TYPES:
        issues.append(
            Issue(
                "error",
                "invalid",
                f"Item {item.link_id!r} of type {item.type} cannot have a calculatedExpression",
                item.path,
                item.link_id,
            )
        )
    for extension in ext.extensions(item.source, ext.SCORE_BAND):
        try:
            read_band(extension)
        except BandError as exc:
            issues.append(Issue("error", "invalid", f"Item {item.link_id!r}: {exc}", item.path, item.link_id))
    direction = ext.first_extension(item.source, ext.SCORE_DIRECTION)
    if ext.first_extension(item.source, ext.RELIABLE_CHANGE) is not None and direction is None:
        issues.append(
            Issue(
                "error",
                "invalid",
                f"Item {item.link_id!r} has a reliable-change threshold but no score-direction: "
                "a reliable change could not be called an improvement or a deterioration",
                item.path,
                item.link_id,
            )
        )
    cutoff = ext.first_extension(item.source, ext.CLINICAL_CUTOFF)
    if cutoff is not None and (direction is None or ext.to_number(cutoff.get("valueDecimal")) is None):
        issues.append(
            Issue(
                "error",
                "invalid",
                f"Item {item.link_id!r}: a clinical-cutoff needs a valueDecimal and a score-direction (the side of "
                "the cut-off that is the clinical range is the worse side)",
                item.path,
                item.link_id,
            )
        )
    direction = ext.first_extension(item.source, ext.SCORE_DIRECTION)
    if direction is not None and direction.get("valueCode") not in DIRECTIONS:
        issues.append(
            Issue(
                "error",
                "invalid",
                f"Item {item.link_id!r}: score-direction must be one of {', '.join(DIRECTIONS)}",
                item.path,
                item.link_id,
            )
        )
    for extension in ext.extensions(item.source, ext.REGEX):
        pattern = extension.get("valueString")
        if not isinstance(pattern, str):
            continue
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            # Validation could not check the item's answers: every response would be refused.
            issues.append(Issue("error", "invalid", f"Item {item.link_id!r}: {exc}", item.path, item.link_id))
    for flag in item.flags:
        if flag.message is None:
            issues.append(
                Issue(
                    "error", "invalid", f"Item {item.link_id!r}: a safety-flag has no message", item.path, item.link_id
                )
            )
    return issues


def declared_bound(item: Mapping[str, Any], url: str) -> Decimal | None:
    """A score item's ``minValue`` or ``maxValue`` (integer or decimal), if it declares one."""
    extension = ext.first_extension(item, url)
    if extension is None:
        return None
    number = ext.to_number(extension.get("valueInteger", extension.get("valueDecimal")))
    return None if number is None else Decimal(number)


def _step(item: Mapping[str, Any], bands: list[BandRange]) -> Decimal:
    """The smallest difference between two scores as the item gives them: 1 for an integer score; for a decimal one,
    a unit of its ``maxDecimalPlaces``, or else of the finest bound its bands are written with (3.99 -> 0.01)."""
    if item.get("type") == "integer":
        return Decimal(1)
    places = ext.first_extension(item, ext.MAX_DECIMAL_PLACES)
    if places is not None and isinstance(places.get("valueInteger"), int) and places["valueInteger"] >= 0:
        return Decimal(1).scaleb(-places["valueInteger"])
    exponent = min([0, *(int(b.as_tuple().exponent) for band in bands for b in (band.low, band.high))])
    return Decimal(1).scaleb(exponent)


def _span(band: BandRange) -> str:
    return f"{band.band.code!r} ({band.low:f} to {band.high:f})"


def band_problems(
    item: Mapping[str, Any], bands: list[BandRange], *, low: Decimal | None, high: Decimal | None
) -> list[str]:
    """Bands that overlap, or leave scores in no band: for an integer score, a reachable integer between two bands
    (or outside all of them, between the lowest and highest score ``low`` and ``high`` when known); for a decimal
    score, bounds that are not contiguous at the score's precision (10.9 then 11 with one decimal place is
    contiguous; 3.9 then 4.1 is not)."""
    if not bands:
        return []
    ordered = sorted(bands, key=lambda band: (band.low, band.high))
    step = _step(item, ordered)
    integer = item.get("type") == "integer"
    problems = []
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.low <= before.high:
            problems.append(f"the score bands {_span(before)} and {_span(after)} overlap")
        elif integer:
            first, last = math.floor(before.high) + 1, math.ceil(after.low) - 1
            if first <= last:
                scores = f"{first}" if first == last else f"{first} to {last}"
                problems.append(f"no score band holds {scores} (between {_span(before)} and {_span(after)})")
        elif after.low - before.high > step:
            problems.append(
                f"the score bands {_span(before)} and {_span(after)} are not contiguous: scores between "
                f"{before.high:f} and {after.low:f} fall in no band (the score's precision is {step:f})"
            )
    if low is not None and ordered[0].low > low:
        problems.append(f"no score band holds the lowest scores, from the minValue {low:f} up to {_span(ordered[0])}")
    if high is not None and max(band.high for band in ordered) < high:
        problems.append(
            f"no score band holds the highest scores, above {_span(ordered[-1])} up to the maxValue {high:f}"
        )
    return problems


def compile_questionnaire(questionnaire: Mapping[str, Any]) -> list[Issue]:
    """Every problem scoring would meet in this Questionnaire: expressions that do not compile (or are too
    long or too deep), call functions this engine lacks or read undefined variables, malformed scoring
    extensions; and regex extensions validation could not run."""
    definition = definition_for(questionnaire)
    base = {name for name in SDC_ENVIRONMENT if name != "qitem"}
    issues, visible = _check_element(
        [e for e in definition.expressions if e.link_id is None], definition.variables, base, qitem=False
    )
    by_item: dict[str, list[ExpressionDef]] = {}
    for expression in definition.expressions:
        if expression.link_id is not None:
            by_item.setdefault(expression.link_id, []).append(expression)

    def visit(items: tuple[ItemDef, ...], inherited: set[str]) -> None:
        for item in items:
            found, names = _check_element(by_item.get(item.link_id, []), item.variables, inherited, qitem=True)
            issues.extend(found)
            issues.extend(_check_item_extensions(item))
            visit(item.children, names - {"qitem"})

    visit(definition.items, visible)
    return issues
