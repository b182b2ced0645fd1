"""SQL conditions for each FHIR search parameter type, over indexed columns only (never over JSON)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, not_, or_
from sqlalchemy.orm import InstrumentedAttribute

from service.fhir.search import (
    CanonicalValue,
    Criterion,
    DateValue,
    ReferenceValue,
    SearchValue,
    TokenValue,
)

Filter = Callable[[Criterion], ColumnElement[bool]]
Column = InstrumentedAttribute[Any]


def _any(conditions: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return or_(*conditions) if conditions else false()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def date_condition(value: DateValue, low: Column, high: Column) -> ColumnElement[bool]:
    """FHIR date comparison between the search range [value.low, value.high] and the stored range [low, high]."""
    equal = and_(low >= value.low, high <= value.high)
    match value.prefix:
        case "eq":
            return equal
        case "ne":
            return not_(equal)
        case "gt":
            return high > value.high
        case "lt":
            return low < value.low
        case "ge":
            return or_(high > value.high, equal)
        case "le":
            return or_(low < value.low, equal)
        case "sa":
            return low > value.high
        case "eb":
            return high < value.low
    raise ValueError(value.prefix)


def date_filter(low: Column, high: Column) -> Filter:
    def build(criterion: Criterion) -> ColumnElement[bool]:
        return _any([date_condition(v, low, high) for v in criterion.values if isinstance(v, DateValue)])

    return build


def token_filter(code: Column, system: Column | None = None) -> Filter:
    """A token on one coded column; with ``system`` given, ``system|code`` matches both columns."""

    def one(value: SearchValue) -> ColumnElement[bool]:
        assert isinstance(value, TokenValue)
        conditions: list[ColumnElement[bool]] = []
        if value.code is not None:
            conditions.append(code == value.code)
        if value.system is not None:
            if system is None:
                # A column without a system only matches the "no system" and "any system" forms.
                return code == value.code if value.system == "" and value.code is not None else false()
            conditions.append(system.is_(None) if value.system == "" else system == value.system)
        return and_(*conditions) if conditions else code.is_not(None)

    def build(criterion: Criterion) -> ColumnElement[bool]:
        condition = _any([one(value) for value in criterion.values])
        return not_(condition) if criterion.modifier == "not" else condition

    return build


def reference_filter(type_column: Column, id_column: Column) -> Filter:
    def one(value: SearchValue) -> ColumnElement[bool]:
        assert isinstance(value, ReferenceValue)
        if value.resource_type is None:
            return id_column == value.id
        return and_(id_column == value.id, type_column == value.resource_type)

    def build(criterion: Criterion) -> ColumnElement[bool]:
        return _any([one(value) for value in criterion.values])

    return build


def canonical_filter(url: Column, version: Column) -> Filter:
    def one(value: SearchValue) -> ColumnElement[bool]:
        assert isinstance(value, CanonicalValue)
        if value.version is None:
            return url == value.url
        return and_(url == value.url, version == value.version)

    def build(criterion: Criterion) -> ColumnElement[bool]:
        return _any([one(value) for value in criterion.values])

    return build


def string_filter(exact: Column, folded: Column) -> Filter:
    """FHIR string search: case-insensitive starts-with by default, ``:exact`` and ``:contains``."""

    def one(modifier: str | None, value: SearchValue) -> ColumnElement[bool]:
        text = str(value)
        if modifier == "exact":
            return exact == text
        pattern = _escape_like(text.casefold())
        if modifier == "contains":
            return folded.like(f"%{pattern}%", escape="\\")
        return folded.like(f"{pattern}%", escape="\\")

    def build(criterion: Criterion) -> ColumnElement[bool]:
        return _any([one(criterion.modifier, value) for value in criterion.values])

    return build


def uri_filter(column: Column) -> Filter:
    def build(criterion: Criterion) -> ColumnElement[bool]:
        return column.in_([str(value) for value in criterion.values])

    return build


def fold(text: str | None) -> str | None:
    return text.casefold() if text is not None else None


def typed_reference_filter(id_column: Column, resource_type: str) -> Filter:
    """A reference that can only point at one resource type, so only its id is stored."""

    def build(criterion: Criterion) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        for value in criterion.values:
            assert isinstance(value, ReferenceValue)
            if value.resource_type not in (None, resource_type):
                conditions.append(false())
            else:
                conditions.append(id_column == value.id)
        return _any(conditions)

    return build
