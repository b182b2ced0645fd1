"""Comparing Quantities: same unit directly, common UCUM units by conversion, otherwise 'cannot tell'."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

from service.validation.context import JSON, text_value
from service.validation.primitives import number

UCUM = "http://unitsofmeasure.org"

# (factor to the base unit, dimension). Only units seen on patient-reported forms: length, mass,
# volume, time and dimensionless counts; anything else compares only with an identical unit.
_ATOMS: dict[str, tuple[Decimal, str]] = {
    "m": (Decimal(1), "length"),
    "g": (Decimal(1), "mass"),
    "s": (Decimal(1), "time"),
    "l": (Decimal("0.001"), "volume"),
    "L": (Decimal("0.001"), "volume"),
}
_PREFIXES: dict[str, Decimal] = {
    "k": Decimal("1e3"),
    "h": Decimal("1e2"),
    "da": Decimal("1e1"),
    "d": Decimal("1e-1"),
    "c": Decimal("1e-2"),
    "m": Decimal("1e-3"),
    "u": Decimal("1e-6"),
    "n": Decimal("1e-9"),
}
_UNPREFIXED: dict[str, tuple[Decimal, str]] = {
    "min": (Decimal(60), "time"),
    "h": (Decimal(3600), "time"),
    "d": (Decimal(86400), "time"),
    "wk": (Decimal(604800), "time"),
    "mo": (Decimal("2629800"), "time"),
    "a": (Decimal("31557600"), "time"),
    "[in_i]": (Decimal("0.0254"), "length"),
    "[ft_i]": (Decimal("0.3048"), "length"),
    "[yd_i]": (Decimal("0.9144"), "length"),
    "[mi_i]": (Decimal("1609.344"), "length"),
    "[lb_av]": (Decimal("453.59237"), "mass"),
    "[oz_av]": (Decimal("28.349523125"), "mass"),
    "[stone_av]": (Decimal("6350.29318"), "mass"),
    "1": (Decimal(1), "count"),
    "%": (Decimal("0.01"), "count"),
}


class Relation(Enum):
    LESS = -1
    EQUAL = 0
    GREATER = 1
    INCOMPATIBLE = 2  # units of different kinds (miles against kilograms)
    UNKNOWN = 3  # units this module cannot convert, or no value


def canonical(code: str) -> tuple[Decimal, str] | None:
    """A UCUM code as (factor, dimension), for the simple units listed above."""
    if code in _UNPREFIXED:
        return _UNPREFIXED[code]
    if code.startswith("{") and code.endswith("}"):
        return Decimal(1), "count"  # an annotation alone ({score}) is the unity
    if code in _ATOMS:
        return _ATOMS[code]
    for prefix, factor in _PREFIXES.items():
        atom = code[len(prefix) :]
        if code.startswith(prefix) and atom in _ATOMS:
            base, dimension = _ATOMS[atom]
            return factor * base, dimension
    return None


def unit_label(quantity: JSON) -> str:
    unit = text_value(quantity.get("unit")) or text_value(quantity.get("code"))
    return unit or "(no unit)"


def describe_quantity(quantity: JSON) -> str:
    value = quantity.get("value")
    shown = str(number(value)) if number(value) is not None else "?"
    return f"{shown} {unit_label(quantity)}".strip()


def _same_unit(a: JSON, b: JSON) -> bool:
    """Same unit by code (and system when both give one), or by the unit text when neither has a code."""
    code_a, code_b = text_value(a.get("code")), text_value(b.get("code"))
    if code_a is not None and code_b is not None:
        system_a, system_b = text_value(a.get("system")), text_value(b.get("system"))
        if system_a is not None and system_b is not None and system_a != system_b:
            return False
        return code_a == code_b
    if code_a is None and code_b is None:
        return text_value(a.get("unit")) == text_value(b.get("unit"))
    return False


def compare(a: Any, b: Any) -> Relation:
    """How Quantity ``a`` relates to Quantity ``b``."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return Relation.UNKNOWN
    value_a, value_b = number(a.get("value")), number(b.get("value"))
    if value_a is None or value_b is None:
        return Relation.UNKNOWN
    if not _same_unit(a, b):
        unit_a, unit_b = _ucum(a), _ucum(b)
        if unit_a is None or unit_b is None:
            return Relation.UNKNOWN
        if unit_a[1] != unit_b[1]:
            return Relation.INCOMPATIBLE
        value_a, value_b = value_a * unit_a[0], value_b * unit_b[0]
    if value_a < value_b:
        return Relation.LESS
    return Relation.GREATER if value_a > value_b else Relation.EQUAL


def _ucum(quantity: JSON) -> tuple[Decimal, str] | None:
    code = text_value(quantity.get("code"))
    system = text_value(quantity.get("system"))
    if code is None or (system is not None and system != UCUM):
        return None
    return canonical(code)
