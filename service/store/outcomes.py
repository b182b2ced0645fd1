"""What outcome Measures read: each person's first and last score, and how many, per score code within a period.

One query per score over the Observation table's indexed columns: its code (``code_key``, the first coding), subject,
effective date and status, and its numeric value column. The index on (code_key, subject_id, effective_key, pk, and
the columns filtered on) hands the rows over person by person in date order without reading the table, so the
database numbers them without sorting and returns one row per person, streamed: memory stays flat however many
people and responses there are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, FunctionElement, Over, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from service.store.models import GroupMember, ObservationRow
from service.store.summary import LIVE_OBSERVATION_STATUSES

STREAM_ROWS = 2000


@dataclass(frozen=True, slots=True)
class SeriesRow:
    system: str
    code: str
    subject: str
    count: int
    first: float
    last: float


@dataclass(frozen=True, slots=True)
class Population:
    """Whose scores count: everyone (within the grant's conditions), a Group's Patient members, or one Patient."""

    group_pk: int | None = None
    patient: str | None = None


def score_series(
    session: Session,
    codes: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
    population: Population,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> Iterator[SeriesRow]:
    """Per score code (system, code) and person: how many scores have an effective date in [start, end], the first and
    the last (by effective date, then as stored). ``conditions``: more on ObservationRow (the caller's grant)."""
    o = ObservationRow
    effective: ColumnElement[datetime] = o.effective_key.expression
    if session.get_bind().dialect.name == "sqlite":
        # SQLite's planner would rather range over ix_observation_effective and sort. A unary "+" is SQLite's way of
        # keeping a term from choosing an index: it walks the code index, already in each person's date order.
        effective = UnaryExpression(effective, operator=operators.custom_op("+"), type_=effective.type)
    where = [
        o.deleted.is_(False),
        o.status.in_(LIVE_OBSERVATION_STATUSES),
        o.subject_type == "Patient",
        o.subject_id.is_not(None),
        effective >= start,
        effective <= end,
        o.value_number.is_not(None),
        *conditions,
    ]
    if population.group_pk is not None:
        members = select(GroupMember.member_id).where(
            GroupMember.group_pk == population.group_pk, GroupMember.member_type == "Patient"
        )
        where.append(o.subject_id.in_(members))
    if population.patient is not None:
        where.append(o.subject_id == population.patient)
    for system, code in codes:
        ranked = (
            select(
                o.subject_id,
                _per_person(func.row_number()).label("position"),
                _per_person(func.count()).label("scores"),
                _per_person(func.first_value(o.value_number)).label("first"),
                _per_person(func.last_value(o.value_number)).label("last"),
            )
            .where(o.code_key == f"{system}|{code}", *where)
            .subquery()
        )
        query = (
            select(ranked.c.subject_id, ranked.c.scores, ranked.c.first, ranked.c.last)
            .where(ranked.c.position == 1)
            .execution_options(yield_per=STREAM_ROWS)
        )
        for row in session.execute(query):
            yield SeriesRow(system, code, row.subject_id, int(row.scores), float(row.first), float(row.last))


def _per_person(function: FunctionElement[Any]) -> Over[Any]:
    """Over one window for every function (a person's scores in date order, the whole partition as the frame), so
    that the database walks each person's rows once, in the index's order."""
    o = ObservationRow
    return function.over(partition_by=o.subject_id, order_by=(o.effective_key, o.pk), rows=(None, None))
