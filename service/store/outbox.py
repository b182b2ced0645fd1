"""Outbox events and subscription delivery state: what waits to be matched, numbered, claimed and delivered."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store.models import OutboxEvent, SubscriptionDelivery, SubscriptionEvent, SubscriptionRow, WorkerLock

LIVE_STATUSES = ("requested", "active", "error")


# locks ------------------------------------------------------------------------------------------------------


def _ensure_lock_row(session: Session, name: str) -> None:
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(dialect_insert(WorkerLock).values(name=name).on_conflict_do_nothing(index_elements=["name"]))


def lock_for_transaction(session: Session, name: str) -> bool:
    """Hold a named lock until this transaction ends; False when another worker holds it now.

    On PostgreSQL this is a row lock taken with SKIP LOCKED; a SQLite write transaction is exclusive already.
    """
    _ensure_lock_row(session, name)
    query = select(WorkerLock.name).where(WorkerLock.name == name).with_for_update(skip_locked=True)
    return session.execute(query).first() is not None


def acquire_lease_lock(session: Session, name: str, owner: str, now: datetime, seconds: float) -> bool:
    """Take or renew a named lock that outlives transactions; it lapses if its owner stops renewing it."""
    _ensure_lock_row(session, name)
    result = session.execute(
        update(WorkerLock)
        .where(
            WorkerLock.name == name,
            or_(WorkerLock.owner.is_(None), WorkerLock.owner == owner, WorkerLock.expires_at < now),
        )
        .values(owner=owner, expires_at=now + timedelta(seconds=seconds))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_lease_lock(session: Session, name: str, owner: str) -> None:
    session.execute(
        update(WorkerLock).where(WorkerLock.name == name, WorkerLock.owner == owner).values(owner=None, expires_at=None)
    )


# delivery state ---------------------------------------------------------------------------------------------


def ensure_delivery(
    session: Session, subscription_pk: int, *, now: datetime, heartbeat_seconds: int | None, restart: bool
) -> None:
    """The delivery state a (re)configured subscription starts from; its event numbering carries on."""
    delivery = session.get(SubscriptionDelivery, subscription_pk)
    if delivery is None:
        delivery = SubscriptionDelivery(
            subscription_pk=subscription_pk,
            started_at=now,
            events_since_start=0,
            delivered_through=0,
            failures=0,
            next_attempt_at=now,
        )
        session.add(delivery)
    if restart:
        delivery.failures = 0
        delivery.next_attempt_at = now
        delivery.last_error = None
    delivery.heartbeat_seconds = heartbeat_seconds
    delivery.heartbeat_due_at = now + timedelta(seconds=heartbeat_seconds) if heartbeat_seconds else None
    session.flush()


def delivery_of(session: Session, subscription_pk: int) -> SubscriptionDelivery | None:
    return session.get(SubscriptionDelivery, subscription_pk)


# fan-out ----------------------------------------------------------------------------------------------------


def any_pending(session: Session) -> bool:
    return session.scalar(select(OutboxEvent.seq).where(OutboxEvent.dispatched.is_(False)).limit(1)) is not None


def pending_events(session: Session, limit: int) -> list[OutboxEvent]:
    """Events not yet matched to subscriptions, oldest first (one committed late is still picked up)."""
    query = select(OutboxEvent).where(OutboxEvent.dispatched.is_(False)).order_by(OutboxEvent.seq).limit(limit)
    return list(session.scalars(query))


def live_subscriptions(session: Session, topics: Iterable[str]) -> list[tuple[SubscriptionRow, SubscriptionDelivery]]:
    query = (
        select(SubscriptionRow, SubscriptionDelivery)
        .join(SubscriptionDelivery, SubscriptionDelivery.subscription_pk == SubscriptionRow.pk)
        .where(
            SubscriptionRow.deleted.is_(False),
            SubscriptionRow.status.in_(LIVE_STATUSES),
            SubscriptionRow.topic.in_(list(topics)),
        )
        .order_by(SubscriptionRow.pk)
    )
    return [(row, delivery) for row, delivery in session.execute(query)]


def number_event(session: Session, delivery: SubscriptionDelivery, event: OutboxEvent) -> int:
    """Give the event the subscription's next event number (consecutive: receivers detect gaps by it)."""
    delivery.events_since_start += 1
    session.add(
        SubscriptionEvent(
            subscription_pk=delivery.subscription_pk, event_number=delivery.events_since_start, outbox_seq=event.seq
        )
    )
    return delivery.events_since_start


# claiming and delivering ------------------------------------------------------------------------------------


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        SubscriptionRow.deleted.is_(False),
        SubscriptionRow.status.in_(LIVE_STATUSES),
        SubscriptionDelivery.next_attempt_at <= now,
        or_(SubscriptionDelivery.lease_until.is_(None), SubscriptionDelivery.lease_until < now),
        or_(
            SubscriptionRow.status.in_(("requested", "error")),
            SubscriptionDelivery.events_since_start > SubscriptionDelivery.delivered_through,
            SubscriptionDelivery.heartbeat_due_at <= now,
        ),
    ]


def any_due(session: Session, now: datetime) -> bool:
    query = (
        select(SubscriptionDelivery.subscription_pk)
        .join(SubscriptionRow, SubscriptionRow.pk == SubscriptionDelivery.subscription_pk)
        .where(*_due(now))
        .limit(1)
    )
    return session.scalar(query) is not None


def claim_due(session: Session, *, now: datetime, owner: str, lease_seconds: float) -> int | None:
    """Claim one subscription with work due (handshake, events, heartbeat, a retry); its pk, or None.

    The claim is a lease: a worker that dies holding it loses it when it lapses, and another worker resends
    what was not acknowledged (at-least-once). SKIP LOCKED lets concurrent workers pass each other by.
    """
    query = (
        select(SubscriptionDelivery.subscription_pk)
        .join(SubscriptionRow, SubscriptionRow.pk == SubscriptionDelivery.subscription_pk)
        .where(*_due(now))
        .order_by(SubscriptionDelivery.next_attempt_at)
        .limit(1)
        .with_for_update(of=SubscriptionDelivery, skip_locked=True)
    )
    pk = session.scalar(query)
    if pk is None:
        return None
    claimed = session.execute(
        update(SubscriptionDelivery)
        .where(
            SubscriptionDelivery.subscription_pk == pk,
            or_(SubscriptionDelivery.lease_until.is_(None), SubscriptionDelivery.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
    )
    return pk if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


def queued_events(
    session: Session, subscription_pk: int, *, after: int, until: int | None = None, limit: int
) -> list[tuple[int, OutboxEvent]]:
    """(event number, outbox event) of a subscription's events numbered after ``after``, in number order."""
    conditions = [SubscriptionEvent.subscription_pk == subscription_pk, SubscriptionEvent.event_number > after]
    if until is not None:
        conditions.append(SubscriptionEvent.event_number <= until)
    query = (
        select(SubscriptionEvent.event_number, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.seq == SubscriptionEvent.outbox_seq)
        .where(and_(*conditions))
        .order_by(SubscriptionEvent.event_number)
        .limit(limit)
    )
    return [(number, event) for number, event in session.execute(query)]


def add_events(session: Session, events: Sequence[Mapping[str, Any]]) -> None:
    """Record topic events in the caller's transaction (committed with what caused them, or not at all)."""
    if events:
        session.connection().execute(insert(cast(Table, OutboxEvent.__table__)), list(events))


# what waits (the worker's metrics) ----------------------------------------------------------------------------


def unmatched_backlog(session: Session) -> tuple[int, datetime | None]:
    """Events not yet matched to subscriptions: how many, and when the oldest occurred (the pending index)."""
    query = select(func.count(), func.min(OutboxEvent.occurred_at)).where(OutboxEvent.dispatched.is_(False))
    count, oldest = session.execute(query).one()
    return int(count), oldest


def undelivered_backlog(session: Session) -> tuple[int, datetime | None]:
    """Events numbered for a live subscription past what its endpoint acknowledged: how many, and the oldest.

    Each subscription's undelivered events are a range scan of its (subscription, event number) index."""
    query = (
        select(func.count(), func.min(OutboxEvent.occurred_at))
        .select_from(SubscriptionDelivery)
        .join(SubscriptionRow, SubscriptionRow.pk == SubscriptionDelivery.subscription_pk)
        .join(
            SubscriptionEvent,
            and_(
                SubscriptionEvent.subscription_pk == SubscriptionDelivery.subscription_pk,
                SubscriptionEvent.event_number > SubscriptionDelivery.delivered_through,
            ),
        )
        .join(OutboxEvent, OutboxEvent.seq == SubscriptionEvent.outbox_seq)
        .where(SubscriptionRow.deleted.is_(False), SubscriptionRow.status.in_(LIVE_STATUSES))
    )
    count, oldest = session.execute(query).one()
    return int(count), oldest


def subscriptions_in_error(session: Session) -> int:
    query = select(func.count()).where(SubscriptionRow.deleted.is_(False), SubscriptionRow.status == "error")
    return int(session.scalar(query) or 0)
