"""Search queries with totals and keyset paging (stable while other requests insert)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, func, null, select
from sqlalchemy.orm import Session

from service.fhir.errors import BadRequest
from service.fhir.search import SearchRequest
from service.store.kinds import ResourceKind
from service.store.repository import keyset_after


@dataclass(frozen=True, slots=True)
class SearchPage:
    matches: list[tuple[str, bytes]]  # (id, stored JSON)
    total: int
    next_page: str | None
    previous_page: str | None
    patients: frozenset[str] = frozenset()  # whose data the matches are (for the audit)


def _encode_page(values: list[Any], forward: bool) -> str:
    encoded = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = orjson.dumps({"k": encoded, "f": forward})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_BIGINT = 2**63  # the store's integer keys are 64-bit


def _key_value(value: Any, kind: type) -> Any:
    """One decoded sort-key value, if it is one a column of ``kind`` could hold (else ValueError).

    The token comes back from the client: anything but what ``_encode_page`` writes (a list or an object,
    a boolean for a number, an integer past 64 bits, a NUL in a string) would reach the database.
    """
    if kind is datetime and type(value) is str:
        found = datetime.fromisoformat(value)
        if found.tzinfo is None:
            return found
    elif kind is int and type(value) is int and -_BIGINT <= value < _BIGINT:
        return value
    elif kind is str and type(value) is str and "\x00" not in value:
        return value
    raise ValueError(f"not a {kind.__name__} key")


def _decode_page(token: str, kinds: list[type]) -> tuple[list[Any], bool]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        values, forward = data["k"], data["f"]
        if type(values) is not list or type(forward) is not bool or len(values) != len(kinds):
            raise ValueError("not a page token")
        return [_key_value(value, kind) for value, kind in zip(values, kinds, strict=True)], forward
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise BadRequest(
            "The _page token is not valid for this search; start again from the first page", code="value"
        ) from None


def conditions_for(
    kind: ResourceKind, request: SearchRequest, *, include_deleted: bool = False
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [] if include_deleted else [kind.model.deleted.is_(False)]
    for criterion in request.criteria:
        conditions.append(kind.filters[criterion.param.name](criterion))
    return conditions


def count(session: Session, kind: ResourceKind, request: SearchRequest) -> int:
    query = select(func.count()).select_from(kind.model).where(*conditions_for(kind, request))
    return session.scalar(query) or 0


def search(session: Session, kind: ResourceKind, request: SearchRequest) -> SearchPage:
    model = kind.model
    conditions = conditions_for(kind, request)
    total = session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0
    sort = request.sort or [("_lastUpdated", False)]
    columns: list[tuple[Any, bool]] = [(kind.sort_columns[name], descending) for name, descending in sort]
    # The surrogate key breaks ties, in the direction of the last sort key, so the order is total.
    columns.append((model.pk, sort[-1][1]))
    kinds: list[type] = [col.type.python_type for col, _ in columns]

    forward = True
    patient = kind.patient_column if kind.patient_column is not None else null()
    query: Select[Any] = select(model.id, model.resource_json, patient, *[col for col, _ in columns]).where(*conditions)
    if request.page:
        values, forward = _decode_page(request.page, kinds)
        query = query.where(keyset_after(columns, values, forward=forward))
    ordering = [(col.desc() if descending == forward else col.asc()) for col, descending in columns]
    rows = list(session.execute(query.order_by(*ordering).limit(request.count + 1)))
    more = len(rows) > request.count
    rows = rows[: request.count]
    if not forward:
        rows.reverse()
    keys = [list(row[3:]) for row in rows]
    next_page = previous_page = None
    if rows:
        if (forward and more) or not forward:
            next_page = _encode_page(keys[-1], True)
        if (not forward and more) or (forward and request.page):
            previous_page = _encode_page(keys[0], False)
    patients = frozenset(row[2] for row in rows if row[2] is not None)
    return SearchPage([(row[0], row[1].encode()) for row in rows], total, next_page, previous_page, patients)
