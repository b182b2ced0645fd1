"""Subscription notifications: outbox events matched and numbered per subscription, then posted to endpoints.

Delivery is at-least-once and in order per subscription: events are numbered consecutively when matched,
a subscription is worked on by one worker at a time (a lease), and an event number is marked delivered only
after the endpoint answered 2xx; a worker that dies mid-delivery loses its lease and the next one resends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from sqlalchemy.orm import Session

from service.audit import AuditContext, audit_event
from service.auth.access import Grant, Interaction
from service.auth.delegated import Owner
from service.fhir import jsonio
from service.fhir.dates import utcnow
from service.observability import WorkerMetrics
from service.services import Services
from service.store import outbox
from service.store.kinds import AUDIT_EVENT, SUBSCRIPTION
from service.store.models import SubscriptionDelivery, SubscriptionRow
from service.store.repository import ResourceRepository, VersionConflict
from service.subscriptions.backport import InvalidSubscription, SubscriptionSpec, read_subscription
from service.subscriptions.endpoints import EndpointPolicy, notification_session
from service.subscriptions.manage import facts_of, visible_focus
from service.subscriptions.notifications import Event, SubscriptionState, notification_bundle
from service.subscriptions.topics import matches

log = logging.getLogger("proms.delivery")

FAN_OUT_BATCH = 500
UNREACHABLE = "the endpoint could not be reached, or did not answer in time"


def backoff_seconds(failures: int, base: float, ceiling: float) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped."""
    return float(min(ceiling, base * (2 ** max(0, failures - 1))))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One notification about to be sent, and what to record once the endpoint has answered."""

    subscription_pk: int
    subscription_id: str
    version_id: int
    status: str
    kind: str  # handshake | heartbeat | event-notification
    spec: SubscriptionSpec
    owner: Owner
    events: tuple[Event, ...]
    body: bytes


class Deliverer:
    """One worker's notification delivery: ``fan_out`` then ``deliver_next``, round after round."""

    def __init__(
        self,
        services: Services,
        worker_id: str,
        http: requests.Session | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.db = services.db
        self.settings = services.settings
        self.worker_id = worker_id
        self.metrics = metrics or WorkerMetrics()
        # Guarded connections (subscriptions/endpoints.py); no proxies or .netrc credentials from the environment.
        self.http = http or notification_session(EndpointPolicy.of(services.settings))

    # matching ---------------------------------------------------------------------------------------------

    def fan_out(self) -> int:
        """Match pending outbox events to the live subscriptions and number them; how many events were handled."""
        with self.db.read_session() as session:
            if not outbox.any_pending(session):
                return 0  # idle workers only read
        with self.db.transaction() as session:
            if not outbox.lock_for_transaction(session, "fan-out"):
                return 0  # another worker is doing it
            events = outbox.pending_events(session, FAN_OUT_BATCH)
            if not events:
                return 0
            subscriptions = []
            for row, delivery in outbox.live_subscriptions(session, {event.topic for event in events}):
                try:
                    spec = read_subscription(jsonio.loads_object((row.resource_json or "{}").encode()))
                except InvalidSubscription:
                    continue
                subscriptions.append((row, delivery, spec))
            for event in events:
                facts = facts_of(event)
                for row, delivery, spec in subscriptions:
                    if (
                        row.topic == event.topic
                        and event.occurred_at >= delivery.started_at
                        and matches(spec.conditions, facts)
                    ):
                        outbox.number_event(session, delivery, event)
                event.dispatched = True
            return len(events)

    # delivering -------------------------------------------------------------------------------------------

    def deliver_next(self) -> bool:
        """Claim one subscription with work due and do it; False when there was nothing to do."""
        now = utcnow()
        with self.db.read_session() as session:
            if not outbox.any_due(session, now):
                return False
        with self.db.transaction() as session:
            pk = outbox.claim_due(
                session, now=now, owner=self.worker_id, lease_seconds=self.settings.worker_lease_seconds
            )
        if pk is None:
            return False
        attempt = self._prepare(pk, now)
        if attempt is None:
            return True
        error = self._post(attempt)
        (self.metrics.notifications_sent if error is None else self.metrics.notifications_failed).labels(
            attempt.kind
        ).inc()
        self._record(attempt, error)
        return True

    def _prepare(self, pk: int, now: datetime) -> Attempt | None:
        """What to send to this subscription now (None: nothing after all, and the claim is released)."""
        with self.db.read_session() as session:
            row = session.get(SubscriptionRow, pk)
            delivery = session.get(SubscriptionDelivery, pk)
            assert row is not None and delivery is not None
            try:
                spec: SubscriptionSpec | None = read_subscription(
                    jsonio.loads_object((row.resource_json or "{}").encode())
                )
            except InvalidSubscription as exc:
                spec, problem = None, str(exc)
            attempt = None
            if spec is not None:
                attempt = self._attempt(session, row, delivery, spec, now)
        if spec is None:
            self._release(pk, problem=problem)
        elif attempt is None:
            self._release(pk)
        return attempt

    def _attempt(
        self,
        session: Session,
        row: SubscriptionRow,
        delivery: SubscriptionDelivery,
        spec: SubscriptionSpec,
        now: datetime,
    ) -> Attempt | None:
        owner = Owner.from_json(row.owner_json)
        events: tuple[Event, ...] = ()
        if row.status == "requested":
            kind = "handshake"
        else:
            queued = outbox.queued_events(session, row.pk, after=delivery.delivered_through, limit=spec.max_count)
            heartbeat_due = delivery.heartbeat_due_at is not None and delivery.heartbeat_due_at <= now
            if queued:
                kind = "event-notification"
                with_body = spec.payload == "full-resource"
                events = tuple(
                    Event(
                        number,
                        event.occurred_at,
                        visible_focus(session, (owner,), event, self.settings.base_url, with_body=with_body),
                    )
                    for number, event in queued
                )
            elif row.status == "error" or heartbeat_due:
                kind = "heartbeat"  # an errored subscription is probed with one, to see if its endpoint is back
            else:
                return None
        # As it was when the last event in it was generated: receivers compare it with the numbers they hold.
        count = events[-1].number if events else delivery.events_since_start
        state = SubscriptionState(row.id, spec.topic.url, row.status, count, spec.payload)
        body = notification_bundle(self.settings.base_url, state, kind, events)
        return Attempt(row.pk, row.id, row.version_id, row.status, kind, spec, owner, events, body)

    def _post(self, attempt: Attempt) -> str | None:
        """Send the notification; None on a 2xx answer, otherwise what went wrong."""
        headers = {"Content-Type": "application/fhir+json; charset=utf-8", **dict(attempt.spec.headers)}
        timeout = min(
            attempt.spec.timeout_seconds or self.settings.worker_http_timeout_seconds,
            self.settings.worker_http_timeout_seconds,
        )
        try:
            response = self.http.post(
                attempt.spec.endpoint, data=attempt.body, headers=headers, timeout=timeout, allow_redirects=False
            )
            response.close()
        except requests.RequestException as exc:
            # What went wrong stays in the log: the subscriber sees one sentence, so that $status cannot be used to
            # probe which hosts and ports answer.
            log.warning(
                "notification could not be posted",
                extra={"subscription": attempt.subscription_id, "error": type(exc).__name__, "detail": str(exc)},
            )
            return UNREACHABLE
        if 200 <= response.status_code < 300:
            return None
        return f"the endpoint answered HTTP {response.status_code}"

    def _record(self, attempt: Attempt, error: str | None) -> None:
        settings = self.settings
        now = utcnow()
        with self.db.transaction() as session:
            delivery = session.get(SubscriptionDelivery, attempt.subscription_pk)
            if delivery is None or delivery.lease_owner != self.worker_id:
                return  # the lease lapsed and another worker took over: it will resend, ours is a duplicate
            if error is None:
                if attempt.events:
                    delivery.delivered_through = max(delivery.delivered_through, attempt.events[-1].number)
                    self._audit(session, attempt)
                delivery.failures = 0
                delivery.last_error = None
                delivery.next_attempt_at = now
                if delivery.heartbeat_seconds:
                    delivery.heartbeat_due_at = now + timedelta(seconds=delivery.heartbeat_seconds)
                if attempt.status in ("requested", "error"):
                    self._set_status(session, attempt, "active")
                log.info(
                    "notification delivered",
                    extra={
                        "subscription": attempt.subscription_id,
                        "type": attempt.kind,
                        "events": len(attempt.events),
                    },
                )
            else:
                delivery.failures += 1
                delivery.last_error = error
                failing = attempt.status == "requested" or delivery.failures >= settings.worker_max_failures
                if attempt.status == "error" or failing:
                    # Errored subscriptions are retried at a slow rate, so that they recover when the endpoint does.
                    delivery.next_attempt_at = now + timedelta(seconds=settings.worker_error_retry_seconds)
                    if attempt.status != "error":
                        self._set_status(session, attempt, "error")
                else:
                    delay = backoff_seconds(
                        delivery.failures, settings.worker_retry_base_seconds, settings.worker_retry_max_seconds
                    )
                    delivery.next_attempt_at = now + timedelta(seconds=delay)
                log.warning(
                    "notification failed",
                    extra={"subscription": attempt.subscription_id, "type": attempt.kind, "error": error},
                )
            delivery.lease_owner = None
            delivery.lease_until = None

    def _set_status(self, session: Session, attempt: Attempt, status: str) -> None:
        """Move the Subscription resource to a new status (a new version), unless its owner changed it meanwhile."""
        repository = ResourceRepository(session, SUBSCRIPTION)
        row = repository.get_row(attempt.subscription_id)
        if row is None or row.deleted or row.version_id != attempt.version_id or row.resource_json is None:
            return
        resource = jsonio.loads_object(row.resource_json.encode())
        try:
            repository.update(row, {**resource, "status": status})
        except VersionConflict:
            return

    def _audit(self, session: Session, attempt: Attempt) -> None:
        """A notification that names or carries health data is a disclosure: it is audited like a read."""
        shown = [event.focus for event in attempt.events if event.focus is not None]
        if not shown:
            return
        owner = attempt.owner
        context = AuditContext(
            Interaction("notify", "Subscription", attempt.subscription_id),
            address=None,
            query=None,
            grant=Grant(unrestricted=False, client_id=owner.client_id, user=owner.user),
        )
        context.entities.append(f"Subscription/{attempt.subscription_id}")
        for focus in shown:
            reference = f"{focus.resource_type}/{focus.id}"
            if reference not in context.entities:
                context.entities.append(reference)
        ResourceRepository(session, AUDIT_EVENT).append(audit_event(context, 200))

    def _release(self, pk: int, *, problem: str | None = None) -> None:
        with self.db.transaction() as session:
            delivery = session.get(SubscriptionDelivery, pk)
            if delivery is None or delivery.lease_owner != self.worker_id:
                return
            if problem is not None:
                # A stored subscription the service can no longer serve waits, at the slow rate, to be fixed.
                delivery.last_error = problem
                delivery.next_attempt_at = utcnow() + timedelta(seconds=self.settings.worker_error_retry_seconds)
            delivery.lease_owner = None
            delivery.lease_until = None
