"""Answers restricted to a list: answerOption (Coding, integer, date, time, string, Reference) or an
answerValueSet, with their displays; open-choice items also take free text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.validation.context import (
    JSON,
    Context,
    text_value,
    value_keys,
)
from service.validation.enable_when import codings_equal
from service.validation.items import ItemFacts
from service.validation.value_sets import (
    Concept,
    Expansion,
    ValueSets,
    concept_of_coding,
    display_matches,
    report_not_in,
)


def _shown(key: str, value: Any) -> str:
    if key == "valueCoding" and isinstance(value, Mapping):
        system, code = text_value(value.get("system")), text_value(value.get("code"))
        return f"{system}#{code}" if system else repr(code)
    if key == "valueReference" and isinstance(value, Mapping):
        return repr(value.get("reference"))
    return repr(value)


def _option_matches(option: JSON, key: str, value: Any) -> bool:
    keys = value_keys(option)
    if keys != [key]:
        return False
    offered = option[key]
    if key == "valueCoding":
        return isinstance(offered, Mapping) and isinstance(value, Mapping) and codings_equal(offered, value)
    if key == "valueReference":
        return (
            isinstance(offered, Mapping)
            and isinstance(value, Mapping)
            and offered.get("reference") is not None
            and offered.get("reference") == value.get("reference")
        )
    return bool(offered == value and type(offered) is type(value))


def check(
    context: Context,
    value_sets: ValueSets,
    q_item: JSON,
    facts: ItemFacts,
    key: str,
    value: Any,
    path: str,
    label: str,
    link_id: str | None,
) -> bool:
    """Check one answer against the item's answer list; True when it chose an exclusive option."""
    kind = facts.kind
    if key == "valueCoding" and isinstance(value, Mapping):
        if text_value(value.get("code")) is None:
            if kind == "open-choice" and text_value(value.get("display")) is not None:
                return False  # a display-only Coding is how some fillers send free text
            context.add("error", "value", f"Coded answer to item {label} has no code", path, link_id)
            return False
    choices = facts.options
    if choices:
        if key == "valueCoding" and isinstance(value, Mapping):
            # Only options with the same code can match (codings_equal): look them up rather than scan.
            candidates = facts.coding_options.get(text_value(value.get("code")) or "", [])
        else:
            candidates = choices
        matched = [option for option in candidates if _option_matches(option, key, value)]
        if not matched:
            if kind == "open-choice" and key == "valueString":
                return False
            context.add(
                "error",
                "code-invalid",
                f"Answer {_shown(key, value)} to item {label} is not one of its answer options",
                path,
                link_id,
            )
            return False
        if key == "valueCoding":
            offered = [concept for option in matched if (concept := _option_concept(option)) is not None]
            _check_display(context, value, offered, path, label, link_id)
        return any(id(option) in facts.exclusive_options for option in matched)
    reference = text_value(q_item.get("answerValueSet"))
    if reference is None or (kind == "open-choice" and key == "valueString"):
        return False
    if key not in ("valueCoding", "valueString"):
        return False
    expansion = value_sets.expansion(reference)
    if isinstance(expansion, str):
        context.once(
            "warning",
            "not-supported",
            f"Answers to item {label} could not be checked against its answer value set: {expansion}",
            path,
            link_id,
        )
        return False
    if key == "valueCoding":
        _check_coding(context, expansion, reference, value, path, label, link_id)
    else:
        _check_text_in(context, expansion, reference, value, path, label, link_id)
    return False


def _option_concept(option: JSON) -> Concept | None:
    coding = option.get("valueCoding")
    return concept_of_coding(coding) if isinstance(coding, Mapping) else None


def _check_display(
    context: Context, value: JSON, concepts: list[Concept], path: str, label: str, link_id: str | None
) -> None:
    display = text_value(value.get("display"))
    known = [concept for concept in concepts if concept.display]
    if display is None or not known or any(display_matches(display, concept) for concept in concepts):
        return
    context.add(
        "error",
        "code-invalid",
        f"Answer {_shown('valueCoding', value)} to item {label} has the display '{display}'; "
        f"the code's display is '{known[0].display}'",
        path,
        link_id,
    )


def _check_coding(
    context: Context,
    expansion: Expansion,
    reference: str,
    value: JSON,
    path: str,
    label: str,
    link_id: str | None,
) -> None:
    code = text_value(value.get("code")) or ""
    matches = expansion.matching(text_value(value.get("system")), code)
    if matches:
        _check_display(context, value, matches, path, label, link_id)
        return
    answer = f"Answer {_shown('valueCoding', value)} to item {label}"
    absent = f"{answer} is not in its answer value set {reference}"
    report_not_in(context, expansion, reference, absent, answer, path, link_id)


def _check_text_in(
    context: Context,
    expansion: Expansion,
    reference: str,
    value: str,
    path: str,
    label: str,
    link_id: str | None,
) -> None:
    """A text answer to an item with a value set must be one of the value set's displays."""
    if expansion.with_display(value):
        return
    answer = f"Answer {value!r} to item {label}"
    absent = f"{answer} is not the display of any code in its answer value set {reference}"
    report_not_in(context, expansion, reference, absent, answer, path, link_id)
