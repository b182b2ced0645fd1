"""The FHIRPath functions this service adds to fhirpathpy (SDC's weight(), ordinal(), answers()) or
replaces in it (aggregates, round, where, select, repeat, union, distinct, children, descendants, the
regular-expression and string-building functions), and the error the engine raises.

Each function receives the engine's own items (``ResourceNode``: value, FHIR type and location), not
bare values as fhirpathpy's user-function hook would pass, so that weight() can tell which answer of
which item it is looking at. Those that build collections or strings check the evaluation's budget
(``budget.py``) as they build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Protocol

import orjson
from fhirpathpy.engine.invocations.navigation import create_reduce_children
from fhirpathpy.engine.invocations.strings import ensure_string_singleton, join, replace
from fhirpathpy.engine.nodes import FP_Time, FP_TimeBase, FP_Type, ResourceNode

from service.scoring.patterns import PatternError, compile_pattern

SDC_KEY = "proms.sdc"  # where the evaluation context carries the SdcFunctions of this evaluation
BUDGET_KEY = "proms.budget"  # where it carries the budget the evaluation spends (budget.py)


class FhirPathError(Exception):
    """An expression that cannot be parsed or evaluated; the message says why."""


class Spending(Protocol):
    """What the functions here ask of the evaluation's budget (``budget.Budget``)."""

    max_items: int

    def tick(self) -> None: ...

    def too_many(self) -> None: ...

    def check(self, collection: Any) -> None: ...

    def check_length(self, length: int) -> None: ...


@dataclass(frozen=True)
class NodeView:
    """What an SDC function sees of one input: the value, its FHIR type and where it sits.

    ``location`` is the element's path from the root of its resource, e.g.
    ``QuestionnaireResponse.item[0].answer[1].value`` (None for values computed by the expression).
    """

    data: Any
    type_name: str | None
    location: str | None


class SdcFunctions(Protocol):
    """The response-aware side of the SDC functions (implemented over one Questionnaire and response)."""

    def weights(self, inputs: Sequence[NodeView]) -> list[int | Decimal]: ...

    def answers(self, inputs: Sequence[NodeView]) -> list[tuple[Mapping[str, Any], str | None]]: ...


def data_of(value: Any) -> Any:
    """The value an engine item holds."""
    return value.data if isinstance(value, ResourceNode) else value


def is_primitive_extension(value: Any) -> bool:
    # fhirpathpy yields a primitive's ``_value`` sibling ({"extension": [...]}) as a separate item.
    return isinstance(value, Mapping) and list(value.keys()) == ["extension"]


def shown(value: Any) -> str:
    """A value as messages show it: FHIRPath's own types as FHIRPath writes them, not as Python objects."""
    if isinstance(value, FP_Time):
        return f"@T{value}"
    if isinstance(value, FP_TimeBase):
        return f"@{value}"
    return str(value) if isinstance(value, FP_Type) else repr(value)


def _number(value: Any) -> int | Decimal:
    data = data_of(value)
    if isinstance(data, bool) or not isinstance(data, int | float | Decimal):
        raise FhirPathError(f"expected a number, got {shown(data)}")
    if isinstance(data, float):
        return Decimal(repr(data))
    return data


def _numbers(inputs: Sequence[Any]) -> list[int | Decimal]:
    numbers: list[int | Decimal] = []
    for value in inputs:
        kind = type(value)
        if kind is int or kind is Decimal:  # computed numbers (weights, counts), as _number would give them
            numbers.append(value)
        elif not is_primitive_extension(data_of(value)):
            numbers.append(_number(value))
    return numbers


def make_node(data: Any, type_path: str, location: str | None) -> Any:
    return ResourceNode.create_node(data, type_path, propName=location)  # type: ignore[no-untyped-call]


def _views(inputs: Sequence[Any]) -> list[NodeView]:
    views = []
    for value in inputs:
        if isinstance(value, ResourceNode):
            views.append(NodeView(value.data, value.path, value.propName))
        else:
            views.append(NodeView(value, None, None))
    return views


def _weight(ctx: dict[str, Any], inputs: list[Any]) -> list[int | Decimal]:
    sdc: SdcFunctions = ctx[SDC_KEY]
    return sdc.weights(_views(inputs))


def _answers(ctx: dict[str, Any], inputs: list[Any]) -> list[Any]:
    sdc: SdcFunctions = ctx[SDC_KEY]
    return [
        make_node(answer, "QuestionnaireResponse.item.answer", location)
        for answer, location in sdc.answers(_views(inputs))
    ]


def _key(value: Any) -> tuple[Any, ...]:
    """Equality key of one item for union/distinct/repeat: by value, as fhirpath.js compares."""
    data = data_of(value)
    if isinstance(data, bool):
        return ("boolean", data)
    if isinstance(data, int | float | Decimal):
        return ("number", (Decimal(repr(data)) if isinstance(data, float) else Decimal(data)).normalize())
    if isinstance(data, str):
        return ("string", data)
    if isinstance(data, Mapping | list):
        try:
            return ("json", orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str))
        except TypeError:  # integers beyond 64 bits, which JSON allows and orjson cannot write
            return ("json", json.dumps(data, sort_keys=True, default=str).encode())
    return (type(data).__name__, str(data))


# fhirpathpy's union/distinct rebuild the engine's nodes without their type and location (so weight()
# could no longer find an answer's item) and serialise every element with json.dumps; these keep the
# original items and compare by a cheaper key.
def _distinct(ctx: dict[str, Any], inputs: list[Any]) -> list[Any]:
    budget: Spending = ctx[BUDGET_KEY]
    seen: set[tuple[Any, ...]] = set()
    result = []
    for index, item in enumerate(inputs):
        if not index & 31:
            budget.tick()  # a key serialises the item, which may be a whole resource
        key = _key(item)
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result


def _union(ctx: dict[str, Any], first: list[Any], second: list[Any]) -> list[Any]:
    return _distinct(ctx, list(first) + list(second))


def _where(ctx: dict[str, Any], inputs: list[Any], criteria: Callable[[Any], list[Any]]) -> list[Any]:
    # fhirpathpy evaluates the criteria twice for every element that passes; nested where()s multiply.
    budget: Spending = ctx[BUDGET_KEY]
    result = []
    for index, item in enumerate(inputs):
        if not index & 31:
            budget.tick()
        ctx["$index"] = index
        found = criteria(item)
        if found and found[0]:
            result.append(item)
    return result


def _select(ctx: dict[str, Any], inputs: list[Any], projection: Callable[[Any], Any]) -> list[Any]:
    # As fhirpathpy's, but the result is checked as it grows (a cross product stops at the limit, not after
    # it is built) and built in linear time (fhirpathpy copies the whole result for every element).
    if not isinstance(inputs, list):
        return []
    budget: Spending = ctx[BUDGET_KEY]
    result: list[Any] = []
    for index, item in enumerate(inputs):
        if not index & 31:
            budget.tick()
        ctx["$index"] = index
        found = projection(item)
        if isinstance(found, list):
            result.extend(found)
        else:
            result.append(found)
        if len(result) > budget.max_items:
            budget.too_many()
    return result


def _repeat(ctx: dict[str, Any], inputs: list[Any], projection: Callable[[Any], list[Any]]) -> list[Any]:
    # As fhirpathpy's, but keyed by orjson instead of json.dumps (repeat(item) keys every item subtree).
    budget: Spending = ctx[BUDGET_KEY]
    seen: set[tuple[Any, ...]] = set()
    result: list[Any] = []
    pending = list(inputs)
    position = 0
    while position < len(pending):
        for item in projection(pending[position]):
            key = (getattr(item, "path", None), *_key(item))
            if key not in seen:
                seen.add(key)
                result.append(item)
                pending.append(item)
        budget.check(result)
        position += 1
    return result


# fhirpathpy's children() and descendants(), element by element so that the budget is checked as they go
# (one element's children are one element's: the resource's items, at most), with the same results.
def _children(ctx: dict[str, Any], inputs: list[Any]) -> list[Any]:
    return _children_of(ctx, inputs, exclude_primitive_extensions=True)


def _children_of(ctx: dict[str, Any], inputs: list[Any], *, exclude_primitive_extensions: bool) -> list[Any]:
    budget: Spending = ctx[BUDGET_KEY]
    step = create_reduce_children(ctx, exclude_primitive_extensions)  # type: ignore[no-untyped-call]
    result: list[Any] = []
    for item in inputs:
        result.extend(step([], item))
        budget.check(result)
    return result


def _descendants(ctx: dict[str, Any], inputs: list[Any]) -> list[Any]:
    budget: Spending = ctx[BUDGET_KEY]
    result: list[Any] = []
    level = _children_of(ctx, inputs, exclude_primitive_extensions=False)
    while level:
        result.extend(level)
        budget.check(result)
        level = _children_of(ctx, level, exclude_primitive_extensions=False)
    return result


# ---- strings: regular expressions by RE2, and no string built beyond the budget --------------------------


def _pattern(text: str, *, dot_all: bool = False) -> Any:
    try:
        return compile_pattern(text, dot_all=dot_all)
    except PatternError as exc:
        raise FhirPathError(str(exc)) from None


def _matches(ctx: dict[str, Any], inputs: list[Any], regex: Any) -> Any:
    # fhirpathpy's matches(): a search with "." matching newlines too.
    if not regex or not inputs:
        return []
    text = ensure_string_singleton(inputs)  # type: ignore[no-untyped-call]
    return _pattern(regex, dot_all=True).search(text) is not None


_GROUP_REFERENCE = re.compile(r"\$(\d+)")


def _replace_matches(ctx: dict[str, Any], inputs: list[Any], regex: Any, substitution: Any) -> Any:
    # fhirpathpy's replaceMatches(): $1, $2 ... name the groups.
    text = ensure_string_singleton(inputs)  # type: ignore[no-untyped-call]
    if isinstance(regex, list) or isinstance(substitution, list):
        return []
    template = _GROUP_REFERENCE.sub(r"\\\1", substitution)
    pattern = _pattern(regex)
    budget: Spending = ctx[BUDGET_KEY]
    # Each match is replaced by the template, its group references by at most the whole text.
    grows_by = len(template) + (len(text) * template.count("\\"))
    if grows_by:
        count = 0
        for _ in pattern.finditer(text):
            count += 1
            budget.check_length(len(text) + count * grows_by)
    return pattern.sub(template, text)


def _replace(ctx: dict[str, Any], inputs: list[Any], pattern: Any, substitution: Any) -> Any:
    if isinstance(pattern, str) and isinstance(substitution, str) and inputs:
        text = ensure_string_singleton(inputs)  # type: ignore[no-untyped-call]
        budget: Spending = ctx[BUDGET_KEY]
        if pattern == "":
            budget.check_length(len(text) + (len(text) + 1) * len(substitution))
        elif len(substitution) > len(pattern):
            budget.check_length(len(text) + text.count(pattern) * (len(substitution) - len(pattern)))
    return replace(ctx, inputs, pattern, substitution)  # type: ignore[no-untyped-call]


def _join(ctx: dict[str, Any], inputs: list[Any], separator: Any = "") -> Any:
    budget: Spending = ctx[BUDGET_KEY]
    length = len(separator) * len(inputs) if isinstance(separator, str) else 0
    length += sum(len(value) for value in map(data_of, inputs) if isinstance(value, str))
    budget.check_length(length)
    return join(ctx, inputs, separator)  # type: ignore[no-untyped-call]


# fhirpathpy's sum/avg/min/max add the engine's node objects instead of their values and fail on any
# element read from a resource; these unwrap first. An empty input gives an empty result (as in
# fhirpath.js), so "no answers" never turns into a score of 0.
def _sum(ctx: dict[str, Any], inputs: list[Any]) -> list[int | Decimal]:
    numbers = _numbers(inputs)
    return [sum(numbers[1:], numbers[0])] if numbers else []


def _avg(ctx: dict[str, Any], inputs: list[Any]) -> list[Decimal]:
    numbers = _numbers(inputs)
    return [Decimal(sum(numbers[1:], numbers[0])) / len(numbers)] if numbers else []


def _min(ctx: dict[str, Any], inputs: list[Any]) -> list[int | Decimal]:
    numbers = _numbers(inputs)
    return [min(numbers)] if numbers else []


def _max(ctx: dict[str, Any], inputs: list[Any]) -> list[int | Decimal]:
    numbers = _numbers(inputs)
    return [max(numbers)] if numbers else []


def _round(ctx: dict[str, Any], inputs: list[Any], precision: Any = None) -> list[Decimal]:
    # fhirpathpy rounds half to even (2.5 -> 2); FHIRPath asks for a traditional round and fhirpath.js
    # rounds halves up (2.5 -> 3, -2.5 -> -2). This does the latter, exactly, in decimal arithmetic.
    numbers = _numbers(inputs)
    if not numbers:
        return []
    if len(numbers) > 1:
        raise FhirPathError("round() needs a single number")
    places = 0 if precision is None or precision == [] else int(_number(precision))
    if places < 0:
        raise FhirPathError("round() precision must not be negative")
    try:
        half = Decimal(5).scaleb(-places - 1)
        return [(Decimal(numbers[0]) + half).quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)]
    except InvalidOperation as exc:
        raise FhirPathError(f"cannot round {numbers[0]}") from exc


FUNCTIONS: Mapping[str, Mapping[str, Any]] = {
    "weight": {"fn": _weight},
    "ordinal": {"fn": _weight},  # the SDC 3 name of weight()
    "answers": {"fn": _answers},  # SDC 3: every answer in the response, nested ones included
    "sum": {"fn": _sum},
    "avg": {"fn": _avg},
    "min": {"fn": _min},
    "max": {"fn": _max},
    "round": {"fn": _round, "arity": {0: [], 1: ["Integer"]}},
    "where": {"fn": _where, "arity": {1: ["Expr"]}},
    "select": {"fn": _select, "arity": {1: ["Expr"]}},
    "repeat": {"fn": _repeat, "arity": {1: ["Expr"]}},
    "distinct": {"fn": _distinct},
    "union": {"fn": _union, "arity": {1: ["AnyAtRoot"]}},
    "|": {"fn": _union, "arity": {2: ["Any", "Any"]}},
    "children": {"fn": _children},
    "descendants": {"fn": _descendants},
    "matches": {"fn": _matches, "arity": {1: ["String"]}, "nullable_input": True},
    "replaceMatches": {"fn": _replace_matches, "arity": {2: ["String", "String"]}, "nullable_input": True},
    "replace": {"fn": _replace, "arity": {2: ["String", "String"]}, "nullable_input": True},
    "join": {"fn": _join, "arity": {0: [], 1: ["String"]}},
}
