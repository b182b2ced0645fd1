"""Turns a FHIRPath result into a QuestionnaireResponse answer of the item's type, and answers back into numbers."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fhirpathpy.engine.nodes import FP_Quantity, FP_TimeBase

from service.scoring.extensions import to_number
from service.scoring.functions import shown

UCUM = "http://unitsofmeasure.org"
_NUMERIC = ("valueInteger", "valueDecimal")
_DATE_TYPES = {"date": "valueDate", "dateTime": "valueDateTime", "time": "valueTime"}
_STRING_TYPES = {"string": "valueString", "text": "valueString", "url": "valueUri"}
_CODING_KEYS = ("system", "version", "code", "display")


class AnswerTypeError(ValueError):
    """A calculated value that does not fit the item's type."""


def json_number(number: int | Decimal) -> int | float:
    """A number as it goes into FHIR JSON: whole numbers as int, others as float."""
    if isinstance(number, int):
        return number
    return int(number) if number == number.to_integral_value() else float(number)


def _as_number(value: Any) -> int | Decimal | None:
    if isinstance(value, FP_Quantity):
        return to_number(value.value)
    return to_number(value)


def _quantity(value: Any, unit: Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, FP_Quantity):
        number = to_number(value.value)
        code = str(value.unit or "").strip("'")
        if number is None:
            raise AnswerTypeError(f"the quantity {value.value} has no numeric value")
        quantity: dict[str, Any] = {"value": json_number(number)}
        if code:
            quantity.update(unit=code, system=UCUM, code=code)
        return quantity
    number = to_number(value)
    if number is None:
        raise AnswerTypeError(f"{shown(value)} is not a number")
    quantity = {"value": json_number(number)}
    if unit:
        # questionnaire-unit is a Coding; a Quantity names it by display (or code), system and code.
        label = unit.get("display") or unit.get("code")
        if label:
            quantity["unit"] = label
        for key in ("system", "code"):
            if unit.get(key):
                quantity[key] = unit[key]
    return quantity


def answer_for(item_type: str, value: Any, unit: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The answer holding ``value`` for an item of ``item_type``; raises AnswerTypeError if it cannot."""
    if item_type == "integer":
        number = _as_number(value)
        if number is None or isinstance(value, bool):
            raise AnswerTypeError(f"{shown(value)} is not a number")
        if isinstance(number, Decimal):  # to_number gives whole numbers as int
            raise AnswerTypeError(f"{number} is not a whole number (round it in the expression)")
        return {"valueInteger": int(number)}
    if item_type == "decimal":
        number = _as_number(value)
        if number is None or isinstance(value, bool):
            raise AnswerTypeError(f"{shown(value)} is not a number")
        return {"valueDecimal": json_number(number)}
    if item_type == "quantity":
        return {"valueQuantity": _quantity(value, unit)}
    if item_type == "boolean":
        if not isinstance(value, bool):
            raise AnswerTypeError(f"{shown(value)} is not a boolean")
        return {"valueBoolean": value}
    if item_type in _STRING_TYPES:
        if isinstance(value, bool) or isinstance(value, Mapping):
            raise AnswerTypeError(f"{shown(value)} is not a string")
        number = to_number(value)
        return {_STRING_TYPES[item_type]: str(value) if number is None else str(json_number(number))}
    if item_type in _DATE_TYPES:
        if not isinstance(value, str | FP_TimeBase):
            raise AnswerTypeError(f"{shown(value)} is not a {item_type}")
        return {_DATE_TYPES[item_type]: str(value)}
    if item_type in ("choice", "open-choice", "coding"):
        if isinstance(value, Mapping) and value.get("code"):
            return {"valueCoding": {key: value[key] for key in _CODING_KEYS if key in value}}
        if item_type == "open-choice" and isinstance(value, str):
            return {"valueString": value}
        raise AnswerTypeError(f"{shown(value)} is not a Coding")
    raise AnswerTypeError(f"items of type {item_type!r} cannot hold a calculated value")


def answer_number(answer: Mapping[str, Any]) -> int | Decimal | None:
    """The number an answer holds (integer, decimal or quantity value), if any."""
    for key in _NUMERIC:
        if key in answer:
            return to_number(answer[key])
    quantity = answer.get("valueQuantity")
    if isinstance(quantity, Mapping):
        return to_number(quantity.get("value"))
    return None


def answer_value(answer: Mapping[str, Any]) -> Any:
    """What an answer says, for comparing a submitted value with a computed one (numbers compare by value)."""
    number = answer_number(answer)
    if number is not None:
        return Decimal(number)
    for key, value in answer.items():
        if key.startswith("value"):
            if isinstance(value, Mapping) and "code" in value:
                return (value.get("system"), value.get("code"))
            return value
    return None


def describe_answers(answers: list[Any] | None) -> str:
    if not answers:
        return "no value"
    described = []
    for answer in answers:
        if not isinstance(answer, Mapping):
            continue
        value = answer_value(answer)
        described.append(str(json_number(value)) if isinstance(value, Decimal) else repr(value))
    return ", ".join(described)
