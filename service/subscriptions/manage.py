"""Subscriptions as a FHIR resource: setting one up, changing it, and what its owner may see of its events.

A subscription acts later on its owner's behalf: the owner's grant is recorded with it, and every event is
shown (in notifications, $events) only as far as that grant allows at the time it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace as with_changes
from typing import Any

import orjson
from sqlalchemy.orm import Session

from service.auth.access import Grant
from service.auth.delegated import Owner, read_grant
from service.fhir import jsonio
from service.fhir.dates import utcnow
from service.fhir.errors import Forbidden, Gone, Unprocessable
from service.fhir.issues import Issue
from service.fhir.versions import StoredVersion
from service.resources import load_row
from service.services import Services
from service.store import outbox
from service.store.access import check_body, check_row
from service.store.kinds import FLAG, OBSERVATION, QUESTIONNAIRE_RESPONSE, SUBSCRIPTION, TASK, ResourceKind
from service.store.models import OutboxEvent, SubscriptionRow
from service.store.repository import ResourceRepository
from service.subscriptions.backport import (
    SUBSCRIPTION_PROFILE,
    InvalidSubscription,
    SubscriptionSpec,
    read_subscription,
    subscription_patient,
)
from service.subscriptions.endpoints import EndpointPolicy, refused_address
from service.subscriptions.notifications import Event, Focus, SubscriptionState, notification_bundle, status_bundle
from service.subscriptions.topics import EventFacts
from service.writes import (
    WriteResult,
    check_update_id,
    current_resource,
    delete_resource,
    find_existing,
    insert,
    match,
    refusing_conflicts,
    replace,
    row_to_update,
)

# What, when changed, makes the server shake hands with the endpoint again.
CHANNEL_ELEMENTS = ("criteria", "_criteria", "channel")
MAX_EVENTS_PER_QUERY = 100


def _read(resource: dict[str, Any]) -> SubscriptionSpec:
    try:
        return read_subscription(resource)
    except InvalidSubscription as exc:
        raise Unprocessable(exc.issues) from None


def _checked(
    services: Services, resource: dict[str, Any], grant: Grant, status: str
) -> tuple[SubscriptionSpec, dict[str, Any], dict[str, Any]]:
    """The subscription as it will be stored (profiled, with the server's status) and the owner columns: refused
    unless the owner may read what the topic's notifications are about."""
    spec = _read(resource)
    if refused_address(spec.endpoint, EndpointPolicy.of(services.settings)):
        raise Unprocessable(
            Issue(
                "error",
                "value",
                "Notifications are not sent to this endpoint: its address is private, loopback, link-local or "
                "otherwise not public (an operator can allow their own networks: PROMS_SUBSCRIPTION_ALLOWED_NETWORKS)",
                "Subscription.channel.endpoint",
            )
        )
    owner = Owner.of(grant)
    if read_grant(owner, spec.topic.resource) is None:
        raise Forbidden(
            f"The token's scopes do not allow reading {spec.topic.resource}, which this topic's notifications are about"
        )
    meta = dict(resource.get("meta") or {})
    profiles = list(meta.get("profile") or [])
    if SUBSCRIPTION_PROFILE not in profiles:
        meta["profile"] = [*profiles, SUBSCRIPTION_PROFILE]
    columns = {
        "owner_client_id": owner.client_id,
        "owner_json": owner.to_json(),
        "patient_id": subscription_patient(resource),
    }
    return spec, {**resource, "meta": meta, "status": status}, columns


def create_subscription(
    services: Services, resource: dict[str, Any], grant: Grant, *, if_none_exist: str | None = None
) -> WriteResult:
    """POST Subscription: stored as ``requested`` (the worker shakes hands with the endpoint) or ``off``."""
    status = "off" if resource.get("status") == "off" else "requested"
    spec, stored_form, columns = _checked(services, resource, grant, status)
    check_body(SUBSCRIPTION, grant, columns["patient_id"])
    query = if_none_exist
    if query is not None and (found := find_existing(services, SUBSCRIPTION, query, grant)) is not None:
        return WriteResult(found, created=False, existing=True)
    with refusing_conflicts(SUBSCRIPTION), services.db.transaction() as session:
        if query is not None and (found := match(session, services, SUBSCRIPTION, query, grant)) is not None:
            return WriteResult(found, created=False, existing=True)
        row, stored = insert(session, services, SUBSCRIPTION, stored_form, grant, columns=columns)
        _ensure_delivery(session, row.pk, spec, restart=status == "requested")
    return WriteResult(stored, created=True)


def update_subscription(
    services: Services, subscription_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
) -> WriteResult:
    """PUT Subscription/{id}: a changed channel or filter shakes hands again; requested, active and error are the
    server's to set."""
    check_update_id(SUBSCRIPTION, subscription_id, resource)
    check_body(SUBSCRIPTION, grant, subscription_patient(resource))
    with refusing_conflicts(SUBSCRIPTION), services.db.transaction() as session:
        row = row_to_update(session, services, SUBSCRIPTION, subscription_id, grant, if_match=if_match)
        current = current_resource(row) if row is not None else None
        status = _next_status(current, resource)
        spec, stored_form, columns = _checked(services, resource, grant, status)
        if row is None:
            new, stored = insert(
                session, services, SUBSCRIPTION, stored_form, grant, resource_id=subscription_id, columns=columns
            )
            _ensure_delivery(session, new.pk, spec, restart=status == "requested")
            return WriteResult(stored, created=True)
        stored = replace(session, services, SUBSCRIPTION, row, stored_form, grant, columns=columns)
        _ensure_delivery(session, row.pk, spec, restart=status == "requested")
    return WriteResult(stored, created=False)


def _next_status(current: dict[str, Any] | None, proposed: dict[str, Any]) -> str:
    if proposed.get("status") == "off":
        return "off"
    previous = (current or {}).get("status")
    reconfigured = current is None or any(current.get(key) != proposed.get(key) for key in CHANNEL_ELEMENTS)
    if reconfigured or previous in (None, "off") or proposed.get("status") == "requested":
        return "requested"
    return str(previous)


def _ensure_delivery(session: Session, subscription_pk: int, spec: SubscriptionSpec, *, restart: bool) -> None:
    """The subscription's delivery state, in the same transaction: a handshake is due when ``restart``."""
    outbox.ensure_delivery(
        session, subscription_pk, now=utcnow(), heartbeat_seconds=spec.heartbeat_seconds, restart=restart
    )


def delete_subscription(services: Services, subscription_id: str, grant: Grant) -> StoredVersion | None:
    """DELETE Subscription/{id}: no more notifications."""
    return delete_resource(services, SUBSCRIPTION, subscription_id, grant)


# what a subscription's owner sees ---------------------------------------------------------------------------

FOCUS_KINDS: dict[str, ResourceKind] = {
    kind.resource_type: kind for kind in (QUESTIONNAIRE_RESPONSE, OBSERVATION, FLAG, TASK)
}


def facts_of(event: OutboxEvent) -> EventFacts:
    codes = frozenset((str(system), str(code)) for system, code in orjson.loads(event.codes or "[]"))
    return EventFacts(event.patient_id, event.questionnaire, codes)


def visible_focus(
    session: Session, readers: Sequence[Owner], event: OutboxEvent, base_url: str, *, with_body: bool
) -> Focus | None:
    """The event's focus, if every one of ``readers`` may read it, checked now against their scopes: the
    subscription's owner (what it delivers) and, for $events, the caller (what they may see).

    The resource itself comes with it (``with_body``) only while the version the event is about is current.
    """
    kind = FOCUS_KINDS.get(event.focus_type)
    if kind is None:
        return None
    repository = ResourceRepository(session, kind)
    row = repository.get_row(event.focus_id)
    if row is None:
        return None
    for reader in readers:
        grant = read_grant(reader, event.focus_type)
        if grant is None:
            return None
        try:
            check_row(session, kind, grant, row, base_url)
        except Forbidden:
            return None
    body = None
    # The access check can only be made on the current version: an older one goes by reference only.
    if with_body and row.version_id == event.focus_version and not row.deleted and row.resource_json is not None:
        body = row.resource_json.encode()
    return Focus(event.focus_type, event.focus_id, event.focus_version, body)


def subscription_state(session: Session, row: SubscriptionRow) -> tuple[SubscriptionState, SubscriptionSpec | None]:
    """The subscription's status as $status and notifications report it."""
    delivery = outbox.delivery_of(session, row.pk)
    try:
        spec: SubscriptionSpec | None = read_subscription(jsonio.loads_object((row.resource_json or "{}").encode()))
    except InvalidSubscription:
        spec = None
    state = SubscriptionState(
        row.id,
        row.topic,
        row.status,
        delivery.events_since_start if delivery else 0,
        spec.payload if spec else "empty",
        delivery.last_error if delivery else None,
    )
    return state, spec


def _subscription_row(session: Session, services: Services, subscription_id: str, grant: Grant) -> SubscriptionRow:
    """The subscription, as a read finds it (404, 410 and the compartment check), for $status and $events."""
    row = load_row(session, services, SUBSCRIPTION, subscription_id, grant)
    if row.deleted:
        raise Gone(f"Subscription/{subscription_id} was deleted")
    assert isinstance(row, SubscriptionRow)
    return row


def subscription_status(services: Services, subscription_id: str, grant: Grant) -> bytes:
    """Subscription/{id}/$status."""
    with services.db.read_session() as session:
        state, _ = subscription_state(session, _subscription_row(session, services, subscription_id, grant))
    return status_bundle(services.settings.base_url, [state])


def subscription_events(
    services: Services,
    subscription_id: str,
    grant: Grant,
    *,
    since: int | None,
    until: int | None,
    content: str | None,
) -> bytes:
    """Subscription/{id}/$events: events numbered from ``since`` to ``until`` (at most MAX_EVENTS_PER_QUERY), as a
    query-event Bundle."""
    base_url = services.settings.base_url
    with services.db.read_session() as session:
        row = _subscription_row(session, services, subscription_id, grant)
        state, _ = subscription_state(session, row)
        if content is not None:
            # A hint, but never more than the subscription itself delivers.
            levels = ("empty", "id-only", "full-resource")
            content = min(content, state.payload, key=levels.index)
            state = with_changes(state, payload=content)
        first = max(since or 1, 1)
        last = until if until is not None else state.events_since_start
        # What the subscription would deliver, and only what the caller (who may be another client) may read.
        readers = (Owner.from_json(row.owner_json), Owner.of(grant))
        queued = outbox.queued_events(session, row.pk, after=first - 1, until=last, limit=MAX_EVENTS_PER_QUERY)
        events = [
            Event(number, event.occurred_at,
                  visible_focus(session, readers, event, base_url, with_body=state.payload == "full-resource"))
            for number, event in queued
        ]  # fmt: skip
    return notification_bundle(base_url, state, "query-event", events)
