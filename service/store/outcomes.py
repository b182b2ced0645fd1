"""What outcome Measures read: each person's first and last score, and how many, per score code within a period.

One query over the Observation table's indexed columns (the code token, subject, effective date, status) and its
numeric value column: the database groups the scores by score and person and hands back one row per person and
score, streamed, so memory stays flat however many people and responses there are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from service.store.models import GroupMember, ObservationRow, ObservationToken
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
    """Per score code and person: how many scores have an effective date in [start, end], the first and the last
    (by effective date, then as stored). ``conditions``: further ones on ObservationRow (the caller's grant)."""
    if not codes:
        return
    # The code token under its own name: the grant's conditions may hold EXISTS queries on the token table (a scope
    # filtered by code or category), which must correlate with the Observation, not with this token.
    o, t = ObservationRow, aliased(ObservationToken)
    partition = (t.system, t.code, o.subject_id)
    order = (o.effective_key, o.pk)
    where = [
        t.param == "code",
        or_(*(and_(t.code == code, t.system == system) for system, code in codes)),
        o.deleted.is_(False),
        o.status.in_(LIVE_OBSERVATION_STATUSES),
        o.subject_type == "Patient",
        o.subject_id.is_not(None),
        o.effective_key >= start,
        o.effective_key <= end,
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
    ranked = (
        select(
            t.system,
            t.code,
            o.subject_id,
            func.row_number().over(partition_by=partition, order_by=order).label("position"),
            func.count().over(partition_by=partition).label("scores"),
            func.first_value(o.value_number).over(partition_by=partition, order_by=order).label("first"),
            func.last_value(o.value_number)
            .over(partition_by=partition, order_by=order, rows=(None, None))
            .label("last"),
        )
        .join(o, o.pk == t.observation_pk)
        .where(*where)
        .subquery()
    )
    query = (
        select(ranked.c.system, ranked.c.code, ranked.c.subject_id, ranked.c.scores, ranked.c.first, ranked.c.last)
        .where(ranked.c.position == 1)
        .order_by(ranked.c.system, ranked.c.code, ranked.c.subject_id)
        .execution_options(yield_per=STREAM_ROWS)
    )
    for row in session.execute(query):
        yield SeriesRow(row.system, row.code, row.subject_id, int(row.scores), float(row.first), float(row.last))
