"""Each answer against its item: the value[x] type the item type permits, a well-formed value, and the
item's value constraints (maxLength, minLength, regex, minValue/maxValue, maxDecimalPlaces)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.scoring.patterns import PatternError, compile_pattern
from service.validation import bounds, complex_answers, options
from service.validation.context import (
    EXT_MAX_DECIMALS,
    EXT_MIN_LENGTH,
    EXT_REGEX,
    JSON,
    Context,
    extension_int,
    extension_value,
    text_value,
    value_keys,
)
from service.validation.items import ItemFacts
from service.validation.primitives import date_range, decimal_places, is_integer, number, time_seconds
from service.validation.references import uri_problem
from service.validation.tree import Node
from service.validation.units import describe_quantity
from service.validation.value_sets import ValueSets


def check_answers(context: Context, value_sets: ValueSets, node: Node, facts: ItemFacts, label: str) -> None:
    """``facts``: the item's; ``label``: how issue texts name it."""
    q_item = node.q
    if q_item is None or not node.answers:
        return
    kind = facts.kind
    if kind is None or not facts.permitted:
        problem = (
            "has no type"
            if kind is None
            else "has the abstract type 'question', which cannot be answered"
            if kind == "question"
            else f"has the unknown type {kind!r}"
        )
        context.add(
            "error",
            "not-supported",
            f"Item {label} {problem}; its answers cannot be checked",
            node.path,
            node.link_id,
        )
        return
    allowed = facts.permitted
    exclusive = False
    for index, answer in node.answers:
        path = f"{node.path}.answer[{index}]"
        keys = value_keys(answer)
        if not keys:
            if answer:
                # R4 allows an answer without value[x] (only extensions or nested items); it answers nothing.
                context.add("warning", "structure", f"answer[{index}] of item {label} has no value", path, node.link_id)
            else:
                context.add(
                    "error",
                    "structure",
                    f"answer[{index}] of item {label} is empty (ele-1: All FHIR elements must have a @value or "
                    "children)",
                    path,
                    node.link_id,
                )
            continue
        if len(keys) > 1:
            context.add(
                "error",
                "structure",
                f"answer[{index}] of item {label} has several values ({', '.join(keys)})",
                path,
                node.link_id,
            )
            continue
        key = keys[0]
        value = answer[key]
        value_path = f"{path}.{key}"
        if key not in allowed:
            expected = " or ".join(allowed)
            context.add(
                "error",
                "structure",
                f"Answer to item {label} must be {expected} for an item of type '{kind}', not {key}",
                value_path,
                node.link_id,
            )
            continue
        if not _well_formed(context, key, value, value_path, label, node.link_id):
            continue
        _check_value(context, value_sets, q_item, kind, key, value, value_path, label, node.link_id)
        exclusive = (
            options.check(context, value_sets, q_item, facts, key, value, value_path, label, node.link_id) or exclusive
        )
    if exclusive and len(node.answers) > 1:
        context.add(
            "error",
            "business-rule",
            f"Item {label} has an answer that excludes all others (optionExclusive) together with other answers",
            node.path,
            node.link_id,
        )


def _well_formed(context: Context, key: str, value: Any, path: str, label: str, link_id: str | None) -> bool:
    problem: str | None = None
    if key == "valueBoolean" and not isinstance(value, bool):
        problem = "is not true or false"
    elif key == "valueInteger" and not is_integer(value):
        problem = "is not an integer in the 32-bit range FHIR allows"
    elif key == "valueDecimal" and number(value) is None:
        problem = "is not a finite number"
    elif key == "valueDate" and date_range(value, with_time=False) is None:
        problem = "is not a valid date (YYYY, YYYY-MM or YYYY-MM-DD)"
    elif key == "valueDateTime" and date_range(value, with_time=True) is None:
        problem = "is not a valid dateTime (a date, or YYYY-MM-DDThh:mm:ss with a time zone)"
    elif key == "valueTime" and time_seconds(value) is None:
        problem = "is not a valid time (hh:mm:ss)"
    elif key in ("valueString", "valueUri") and (not isinstance(value, str) or value == ""):
        problem = "is not a non-empty string"
    elif key == "valueUri" and isinstance(value, str) and (reason := uri_problem(value)) is not None:
        problem = reason
    elif key in ("valueCoding", "valueQuantity", "valueReference", "valueAttachment") and not isinstance(
        value, Mapping
    ):
        problem = "is not an object"
    if problem is None:
        return True
    context.add("error", "value", f"Answer {_show(key, value)} to item {label} {problem}", path, link_id)
    return False


def _show(key: str, value: Any) -> str:
    if key == "valueCoding" and isinstance(value, Mapping):
        code = text_value(value.get("code"))
        system = text_value(value.get("system"))
        return f"{system}#{code}" if system and code else repr(code or text_value(value.get("display")))
    if key == "valueQuantity" and isinstance(value, Mapping):
        return describe_quantity(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, Mapping):
        return key[5:]
    return repr(value)


def _check_value(
    context: Context,
    value_sets: ValueSets,
    q_item: JSON,
    kind: str,
    key: str,
    value: Any,
    path: str,
    label: str,
    link_id: str | None,
) -> None:
    if key in ("valueString", "valueUri"):
        _check_text(context, q_item, kind, key, value, path, label, link_id)
    elif key == "valueAttachment":
        complex_answers.check_attachment(context, q_item, value, path, label, link_id)
    elif key == "valueReference":
        complex_answers.check_reference(context, q_item, value, path, label, link_id)
    elif key == "valueQuantity":
        complex_answers.check_quantity_units(context, value_sets, q_item, value, path, label, link_id)
    if key in ("valueDecimal", "valueQuantity"):
        _check_decimal_places(context, q_item, key, value, path, label, link_id)
    if key in ("valueInteger", "valueDecimal", "valueDate", "valueDateTime", "valueTime", "valueQuantity"):
        bounds.check(context, q_item, key, value, path, label, link_id)


def _check_text(
    context: Context,
    q_item: JSON,
    kind: str,
    key: str,
    value: str,
    path: str,
    label: str,
    link_id: str | None,
) -> None:
    shown = _show(key, value)
    if kind == "string" and ("\n" in value or "\r" in value):
        context.add(
            "error",
            "value",
            f"Answer {shown} to item {label} has a line break; item type 'string' is a single line "
            "(multi-line answers need type 'text')",
            path,
            link_id,
        )
    max_length = q_item.get("maxLength")
    if isinstance(max_length, int) and is_integer(max_length) and len(value) > max_length:
        context.add(
            "error",
            "value",
            f"Answer {shown} to item {label} is {len(value)} characters long; the maximum is {max_length}",
            path,
            link_id,
        )
    min_length = extension_int(q_item, EXT_MIN_LENGTH)
    if min_length is not None and len(value) < min_length:
        context.add(
            "error",
            "value",
            f"Answer {shown} to item {label} is {len(value)} characters long; the minimum is {min_length}",
            path,
            link_id,
        )
    found = extension_value(q_item, EXT_REGEX)
    if found is not None and isinstance(found[1], str):
        _check_regex(context, found[1], value, shown, path, label, link_id)


def _check_regex(
    context: Context, pattern: str, value: str, shown: str, path: str, label: str, link_id: str | None
) -> None:
    # The pattern comes from the Questionnaire's author: RE2 runs it in time linear in the answer's length,
    # and one it cannot run leaves the answer unchecked, which is an error, not a pass.
    try:
        compiled = compile_pattern(pattern)
    except PatternError as exc:
        context.once(
            "error",
            "processing",
            f"The regex extension of item {label} cannot be applied: {exc}; its answers cannot be checked",
            path,
            link_id,
        )
        return
    if compiled.fullmatch(value) is None:
        context.add(
            "error",
            "value",
            f"Answer {shown} to item {label} does not match the required pattern {pattern}",
            path,
            link_id,
        )


def _check_decimal_places(
    context: Context, q_item: JSON, key: str, value: Any, path: str, label: str, link_id: str | None
) -> None:
    limit = extension_int(q_item, EXT_MAX_DECIMALS)
    if limit is None:
        return
    amount = number(value.get("value")) if key == "valueQuantity" and isinstance(value, Mapping) else number(value)
    if amount is not None and decimal_places(amount) > limit:
        context.add(
            "error",
            "value",
            f"Answer {amount} to item {label} has {decimal_places(amount)} decimal places; at most {limit} are allowed",
            path,
            link_id,
        )
