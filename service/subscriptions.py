"""Subscriptions as a FHIR resource: what a subscriber may set up, and the delivery state it starts from."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.access import Grant
from service.auth.delegated import Owner, read_grant
from service.auth.enforcement import check_row
from service.config import Settings
from service.fhir import jsonio
from service.fhir.errors import Forbidden, Unprocessable
from service.interactions import Prepared, ResourceInteractions, WriteResult
from service.notifications import Event, Focus, SubscriptionState, notification_bundle, status_bundle
from service.store import outbox
from service.store.db import Database
from service.store.kinds import FLAG, OBSERVATION, QUESTIONNAIRE_RESPONSE, ResourceKind
from service.store.models import OutboxEvent, ResourceRow, SubscriptionRow
from service.store.repository import ResourceRepository, StoredVersion, utcnow
from service.subscription_spec import SUBSCRIPTION_PROFILE, InvalidSubscription, SubscriptionSpec, read_subscription
from service.topics import EventFacts

# What, when changed, makes the server shake hands with the endpoint again.
CHANNEL_ELEMENTS = ("criteria", "_criteria", "channel")
MAX_EVENTS_PER_QUERY = 100


def _read(resource: dict[str, Any]) -> SubscriptionSpec:
    try:
        return read_subscription(resource)
    except InvalidSubscription as exc:
        raise Unprocessable(exc.issues) from None


def _profiled(resource: dict[str, Any], status: str) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    profiles = list(meta.get("profile") or [])
    if SUBSCRIPTION_PROFILE not in profiles:
        meta["profile"] = [*profiles, SUBSCRIPTION_PROFILE]
    return {**resource, "meta": meta, "status": status}


class SubscriptionRules:
    """Checks a Subscription can be served and that its owner may read what it would deliver."""

    def __init__(self, owner: Owner | None = None) -> None:
        self.owner = owner

    def _prepare(self, resource: dict[str, Any], status: str) -> Prepared:
        spec = _read(resource)
        owner = self.owner
        assert owner is not None, "writes go through SubscriptionInteractions, which knows the owner"
        if read_grant(owner, spec.topic.resource) is None:
            raise Forbidden(
                f"The token's scopes do not allow reading {spec.topic.resource}, which this topic's notifications "
                "are about"
            )
        columns = {"owner_client_id": owner.client_id, "owner_json": owner.to_json()}
        return Prepared(_profiled(resource, status), columns=columns, context=(spec, status == "requested"))

    def prepare_early(self, session: Session, resource: dict[str, Any]) -> Prepared | None:
        return None

    def prepare_create(self, session: Session, resource: dict[str, Any]) -> Prepared:
        return self._prepare(resource, "off" if resource.get("status") == "off" else "requested")

    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared:
        if resource.get("status") == "off":
            return self._prepare(resource, "off")
        previous = (current or {}).get("status")
        reconfigured = current is None or any(current.get(key) != resource.get(key) for key in CHANNEL_ELEMENTS)
        if reconfigured or previous in (None, "off") or resource.get("status") == "requested":
            return self._prepare(resource, "requested")
        return self._prepare(resource, str(previous))  # requested, active and error are the server's to set

    def check_delete(self, session: Session, row: ResourceRow) -> None:
        return None

    def after_write(self, session: Session, row: ResourceRow, stored: StoredVersion, prepared: Prepared) -> None:
        spec, restart = prepared.context
        outbox.ensure_delivery(session, row.pk, now=utcnow(), heartbeat_seconds=spec.heartbeat_seconds, restart=restart)

    def after_delete(self, session: Session, row: ResourceRow) -> None:
        return None

    def identity_query(self, resource: dict[str, Any]) -> str | None:
        return None


class SubscriptionInteractions(ResourceInteractions):
    """The REST interactions on Subscription; a write records whose grant the subscription acts with."""

    def __init__(self, db: Database, kind: ResourceKind, settings: Settings, *, allowed: frozenset[str]) -> None:
        super().__init__(db, kind, SubscriptionRules(), settings, allowed=allowed)

    def _owned_by(self, grant: Grant) -> ResourceInteractions:
        return ResourceInteractions(self.db, self.kind, SubscriptionRules(Owner.of(grant)), self.settings)

    def create(self, resource: dict[str, Any], *, grant: Grant, if_none_exist: str | None = None) -> WriteResult:
        return self._owned_by(grant).create(resource, grant=grant, if_none_exist=if_none_exist)

    def update(self, resource_id: str, resource: dict[str, Any], *, if_match: int | None, grant: Grant) -> WriteResult:
        return self._owned_by(grant).update(resource_id, resource, if_match=if_match, grant=grant)


# what a subscription's owner sees ---------------------------------------------------------------------------

FOCUS_KINDS: dict[str, ResourceKind] = {
    kind.resource_type: kind for kind in (QUESTIONNAIRE_RESPONSE, OBSERVATION, FLAG)
}


def facts_of(event: OutboxEvent) -> EventFacts:
    codes = frozenset((str(system), str(code)) for system, code in orjson.loads(event.codes or "[]"))
    return EventFacts(event.patient_id, event.questionnaire, codes)


def visible_focus(
    session: Session, owner: Owner, event: OutboxEvent, base_url: str, *, with_body: bool
) -> Focus | None:
    """The event's focus, if the subscription's owner may read it (checked now, against their stored scopes).

    The resource itself comes with it (``with_body``) only while the version the event is about is current.
    """
    kind = FOCUS_KINDS.get(event.focus_type)
    grant = read_grant(owner, event.focus_type) if kind is not None else None
    if kind is None or grant is None:
        return None
    repository = ResourceRepository(session, kind)
    row = repository.get_row(event.focus_id)
    if row is None:
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


class SubscriptionQueries:
    """$status and $events: a subscription's state and its past events, as its owner may see them."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def _row(self, session: Session, resource_id: str) -> SubscriptionRow:
        row = session.scalars(select(SubscriptionRow).where(SubscriptionRow.id == resource_id)).one()
        return row

    def status(self, resource_id: str) -> bytes:
        with self.db.read_session() as session:
            state, _ = subscription_state(session, self._row(session, resource_id))
        return status_bundle(self.settings.base_url, [state])

    def events(self, resource_id: str, *, since: int | None, until: int | None, content: str | None) -> bytes:
        """Events numbered from ``since`` to ``until`` (at most MAX_EVENTS_PER_QUERY), as a query-event Bundle."""
        with self.db.read_session() as session:
            row = self._row(session, resource_id)
            state, _ = subscription_state(session, row)
            if content is not None:
                # A hint, but never more than the subscription itself delivers.
                levels = ("empty", "id-only", "full-resource")
                content = min(content, state.payload, key=levels.index)
                state = replace(state, payload=content)
            first = max(since or 1, 1)
            last = until if until is not None else state.events_since_start
            owner = Owner.from_json(row.owner_json)
            queued = outbox.queued_events(session, row.pk, after=first - 1, until=last, limit=MAX_EVENTS_PER_QUERY)
            events = [
                Event(
                    number,
                    event.occurred_at,
                    visible_focus(session, owner, event, self.settings.base_url,
                                  with_body=state.payload == "full-resource"),
                )
                for number, event in queued
            ]  # fmt: skip
        return notification_bundle(self.settings.base_url, state, "query-event", events)
