"""minValue / maxValue (and the SDC minQuantity / maxQuantity) against integer, decimal, date, dateTime,
time and Quantity answers; a partial date is out of range only when all of it is."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from service.validation.context import (
    EXT_MAX_QUANTITY,
    EXT_MAX_VALUE,
    EXT_MIN_QUANTITY,
    EXT_MIN_VALUE,
    JSON,
    Context,
    extension_value,
)
from service.validation.primitives import date_range, number, time_seconds
from service.validation.units import Relation, compare, describe_quantity


def _bound_list(q_item: JSON, key: str) -> list[tuple[str, str, Any]]:
    bounds = []
    for url, side in ((EXT_MIN_VALUE, "minimum"), (EXT_MAX_VALUE, "maximum")):
        found = extension_value(q_item, url)
        if found is not None:
            bounds.append((side, found[0], found[1]))
    if key == "valueQuantity":
        for url, side in ((EXT_MIN_QUANTITY, "minimum"), (EXT_MAX_QUANTITY, "maximum")):
            found = extension_value(q_item, url)
            if found is not None:
                bounds.append((side, found[0], found[1]))
    return bounds


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return describe_quantity(value)
    return repr(value) if isinstance(value, str) else str(value)


def check(context: Context, q_item: JSON, key: str, value: Any, path: str, label: str, link_id: str | None) -> None:
    for side, bound_key, bound in _bound_list(q_item, key):
        relation = _relate(key, value, bound_key, bound)
        shown_bound = _shown(bound) if isinstance(bound, Mapping) else str(bound)
        shown = _shown(value)
        if relation is Relation.UNKNOWN:
            context.add(
                "warning",
                "processing",
                f"Answer {shown} to item {label} could not be compared with the {side} {shown_bound}",
                path,
                link_id,
            )
        elif relation is Relation.INCOMPATIBLE:
            context.add(
                "error",
                "value",
                f"Answer {shown} to item {label} cannot meet the {side} {shown_bound}: the units measure "
                "different things",
                path,
                link_id,
            )
        elif side == "minimum" and relation is Relation.LESS:
            context.add(
                "error",
                "value",
                f"Answer {shown} to item {label} is below the minimum {shown_bound}",
                path,
                link_id,
            )
        elif side == "maximum" and relation is Relation.GREATER:
            context.add(
                "error",
                "value",
                f"Answer {shown} to item {label} is above the maximum {shown_bound}",
                path,
                link_id,
            )


def _sign(a: Decimal, b: Decimal) -> Relation:
    return Relation.LESS if a < b else Relation.GREATER if a > b else Relation.EQUAL


def _relate(key: str, value: Any, bound_key: str, bound: Any) -> Relation:
    """How an answer relates to a bound; a partial date is below a bound only if all of it is."""
    if key == "valueQuantity":
        if bound_key == "valueQuantity":
            return compare(value, bound)
        amount = number(value.get("value")) if isinstance(value, Mapping) else None
        limit = number(bound)
        return Relation.UNKNOWN if amount is None or limit is None else _sign(amount, limit)
    if key in ("valueInteger", "valueDecimal"):
        amount, limit = number(value), number(bound)
        return Relation.UNKNOWN if amount is None or limit is None else _sign(amount, limit)
    if key in ("valueDate", "valueDateTime") and bound_key in ("valueDate", "valueDateTime", "valueInstant"):
        answered, limit_range = date_range(value, with_time=True), date_range(bound, with_time=True)
        if answered is None or limit_range is None:
            return Relation.UNKNOWN
        if answered[1] < limit_range[0]:
            return Relation.LESS
        return Relation.GREATER if answered[0] > limit_range[1] else Relation.EQUAL
    if key == "valueTime" and bound_key == "valueTime":
        moment, limit_time = time_seconds(value), time_seconds(bound)
        return Relation.UNKNOWN if moment is None or limit_time is None else _sign(moment, limit_time)
    return Relation.UNKNOWN
