"""Subscription notification Bundles and status Parameters (R4 form of the R5 backport), from plain data."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.fhir import jsonio
from service.fhir.bundle import Entry, bundle
from service.fhir.dates import instant_text

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
STATUS_PROFILE = f"{BACKPORT}/backport-subscription-status-r4"


@dataclass(frozen=True, slots=True)
class Focus:
    resource_type: str
    id: str
    version: int
    body: bytes | None = None  # the resource as it was at the event, for full-resource payloads


@dataclass(frozen=True, slots=True)
class Event:
    number: int
    timestamp: datetime
    focus: Focus | None  # None: the subscriber may not see what the event is about, only that it happened


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    id: str
    topic: str
    status: str
    events_since_start: int
    payload: str  # empty | id-only | full-resource
    error: str | None = None


def status_parameters(
    base_url: str, state: SubscriptionState, kind: str, events: Sequence[Event] = ()
) -> dict[str, Any]:
    """The SubscriptionStatus (as R4 Parameters) that opens every notification and answers $status."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base_url}/Subscription/{state.id}"}}
    ]
    if state.payload != "empty":
        parameters.append({"name": "topic", "valueCanonical": state.topic})
    parameters += [
        {"name": "status", "valueCode": state.status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(state.events_since_start)},
    ]
    for event in events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": instant_text(event.timestamp)},
        ]
        if event.focus is not None and state.payload != "empty":
            focus = event.focus
            parts.append({"name": "focus", "valueReference": {"reference": f"{focus.resource_type}/{focus.id}"}})
        parameters.append({"name": "notification-event", "part": parts})
    if state.error:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": state.error}})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def _status_entry(base_url: str, state: SubscriptionState, parameters: dict[str, Any]) -> Entry:
    return Entry(
        f"urn:uuid:{parameters['id']}",
        jsonio.dumps(parameters),
        request=("GET", f"{base_url}/Subscription/{state.id}/$status"),
        response_status="200",
    )


def notification_bundle(base_url: str, state: SubscriptionState, kind: str, events: Sequence[Event] = ()) -> bytes:
    """A history Bundle: the status first, then (unless the payload is empty) an entry per event's focus."""
    entries = [_status_entry(base_url, state, status_parameters(base_url, state, kind, events))]
    if state.payload != "empty":
        for event in events:
            focus = event.focus
            if focus is None:
                continue
            created = focus.version == 1
            entries.append(
                Entry(
                    f"{base_url}/{focus.resource_type}/{focus.id}",
                    focus.body if state.payload == "full-resource" else None,
                    request=("POST", focus.resource_type) if created else ("PUT", f"{focus.resource_type}/{focus.id}"),
                    response_status="201" if created else "200",
                )
            )
    return bundle("history", entries, total=None, links=[])


def status_bundle(base_url: str, states: Sequence[SubscriptionState]) -> bytes:
    """The answer to $status: a searchset of SubscriptionStatus Parameters, one per subscription."""
    entries = [
        Entry(
            f"urn:uuid:{parameters['id']}",
            jsonio.dumps(parameters),
            search_mode="match",
        )
        for parameters in (status_parameters(base_url, state, "query-status") for state in states)
    ]
    return bundle("searchset", entries, total=len(entries), links=[])
