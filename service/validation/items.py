"""What the checks need to know of each Questionnaire item, worked out once per Questionnaire: its type and
label, its children by linkId, the answer types it permits and its answer options by code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.validation.context import (
    EXT_CONSTRAINT,
    EXT_ENABLE_WHEN_EXPRESSION,
    EXT_MAX_OCCURS,
    EXT_MIN_OCCURS,
    EXT_OPTION_EXCLUSIVE,
    JSON,
    describe,
    extension_int,
    extension_value,
    extensions,
    objects,
    text_value,
    value_keys,
)

PERMITTED: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",),
    "decimal": ("valueDecimal",),
    "integer": ("valueInteger",),
    "date": ("valueDate",),
    "dateTime": ("valueDateTime",),
    "time": ("valueTime",),
    "string": ("valueString",),
    "text": ("valueString",),
    "url": ("valueUri",),
    "choice": ("valueCoding",),
    "open-choice": ("valueCoding", "valueString"),
    "attachment": ("valueAttachment",),
    "reference": ("valueReference",),
    "quantity": ("valueQuantity",),
}
# answerOption values R4 allows besides Coding; an item offering them accepts them as answers.
_OPTION_KEYS = ("valueInteger", "valueDate", "valueTime", "valueString", "valueReference")


def permitted_keys(q_item: JSON, kind: str) -> tuple[str, ...]:
    """The answer value[x] names an item of this type accepts (its answerOption value types included)."""
    keys = PERMITTED[kind]
    if kind in ("choice", "open-choice"):
        offered = {key for _, option in objects(q_item.get("answerOption")) for key in value_keys(option)}
        keys = keys + tuple(key for key in _OPTION_KEYS if key in offered and key not in keys)
    return keys


def children_of(item: JSON) -> list[JSON]:
    return [child for _, child in objects(item.get("item"))]


def item_type(item: JSON | None) -> str | None:
    if item is None:
        return None
    value = item.get("type")
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What the checks need to know of one Questionnaire item (or of the Questionnaire, for its top level),
    worked out once per Questionnaire rather than for every answer."""

    link_id: str | None
    kind: str | None
    label: str  # how issue texts name the item
    children: list[JSON]  # its child items
    by_link_id: dict[str | None, JSON]  # its child items by linkId (the last one, for a duplicated linkId)
    positions: dict[int, int]  # each child item's position, by identity
    permitted: tuple[str, ...]  # the answer value[x] names it accepts (empty: not a question of a known type)
    options: list[JSON]  # its answerOptions
    coding_options: dict[str, list[JSON]]  # its answerOptions that are only a Coding, by code, in order
    exclusive_options: frozenset[int]  # the answerOptions (by identity) that exclude all others (optionExclusive)
    enable_when_expression: tuple[str, Any] | None  # its SDC enableWhenExpression, as (value[x] name, value)
    has_enable_when: bool
    min_occurs: int | None
    max_occurs: int | None
    constraints: list[JSON]  # its questionnaire-constraint extensions


def item_facts(item: JSON, children: list[JSON]) -> ItemFacts:
    link_id = text_value(item.get("linkId"))
    kind = item_type(item)
    options = [option for _, option in objects(item.get("answerOption"))]
    coding_options: dict[str, list[JSON]] = {}
    for option in options:
        coding = option.get("valueCoding")
        if value_keys(option) == ["valueCoding"] and isinstance(coding, dict):
            code = text_value(coding.get("code"))
            if code is not None:
                coding_options.setdefault(code, []).append(option)
    return ItemFacts(
        link_id=link_id,
        kind=kind,
        label=describe(item, link_id),
        children=children,
        by_link_id={text_value(child.get("linkId")): child for child in children},
        positions={id(child): position for position, child in enumerate(children)},
        permitted=permitted_keys(item, kind) if kind in PERMITTED else (),
        options=options,
        coding_options=coding_options,
        exclusive_options=frozenset(
            id(option) for option in options if extension_value(option, EXT_OPTION_EXCLUSIVE) == ("valueBoolean", True)
        ),
        enable_when_expression=extension_value(item, EXT_ENABLE_WHEN_EXPRESSION),
        has_enable_when=bool(item.get("enableWhen")),
        min_occurs=extension_int(item, EXT_MIN_OCCURS),
        max_occurs=extension_int(item, EXT_MAX_OCCURS),
        constraints=extensions(item, EXT_CONSTRAINT),
    )
