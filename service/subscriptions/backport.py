"""Reading an R4 Subscription with the backport profile into what delivery needs, refusing what it cannot do."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from service.fhir.issues import Issue
from service.subscriptions.topics import TOPICS, Condition, FilterError, Topic, filter_patient, parse_filters

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
FILTER_CRITERIA = f"{BACKPORT}/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT}/backport-payload-content"
HEARTBEAT_PERIOD = f"{BACKPORT}/backport-heartbeat-period"
TIMEOUT = f"{BACKPORT}/backport-timeout"
MAX_COUNT = f"{BACKPORT}/backport-max-count"
SUBSCRIPTION_PROFILE = f"{BACKPORT}/backport-subscription"

PAYLOAD_CONTENTS = ("empty", "id-only", "full-resource")
PAYLOAD_TYPES = ("application/fhir+json", "application/json")
MAX_TIMEOUT_SECONDS = 60
MAX_EVENTS_PER_NOTIFICATION = 100
LOOPBACK_NAMES = ("localhost",)
# Headers a subscriber may not set: they describe the request itself, which the service composes.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection"})
_HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)$")


class InvalidSubscription(ValueError):
    """The Subscription cannot be served; ``issues`` say why, each pointing into the resource."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(issue.text for issue in issues))
        self.issues = issues


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    topic: Topic
    conditions: tuple[Condition, ...]
    endpoint: str
    payload: str  # empty | id-only | full-resource
    headers: tuple[tuple[str, str], ...]
    heartbeat_seconds: int | None
    timeout_seconds: float | None
    max_count: int


def _extension(element: Mapping[str, Any] | None, url: str) -> list[Mapping[str, Any]]:
    if not isinstance(element, Mapping):
        return []
    return [ext for ext in element.get("extension", []) if isinstance(ext, Mapping) and ext.get("url") == url]


def endpoint_problem(endpoint: str) -> str | None:
    """Why the service will not send notifications to this URL (None: it will): https, or http on loopback."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return f"{endpoint!r} is not a valid URL"
    if parts.username or parts.password:
        return "the endpoint must not carry credentials; send them in channel.header"
    if not host:
        return f"{endpoint!r} has no host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host in LOOPBACK_NAMES
        if loopback:
            return None
        return "notifications are only sent over https (plain http only to a loopback address, for testing)"
    return f"the endpoint must be an https URL, got scheme {parts.scheme!r}"


def read_subscription(resource: Mapping[str, Any]) -> SubscriptionSpec:
    """The subscription's topic, filters, endpoint and channel options; raises InvalidSubscription."""
    issues: list[Issue] = []

    def problem(text: str, where: str, code: str = "value") -> None:
        issues.append(Issue("error", code, text, f"Subscription.{where}"))

    criteria = str(resource.get("criteria") or "")
    topic = TOPICS.get(criteria.split("|")[0])
    if topic is None:
        known = ", ".join(TOPICS)
        problem(f"criteria must be the canonical URL of a topic this server publishes ({known})", "criteria")
    conditions: tuple[Condition, ...] = ()
    if topic is not None:
        try:
            conditions = parse_filters(topic, _filter_texts(resource))
        except FilterError as exc:
            problem(f"Filter criteria: {exc}", "criteria.extension")
    channel = resource.get("channel") if isinstance(resource.get("channel"), Mapping) else {}
    assert isinstance(channel, Mapping)
    if channel.get("type") != "rest-hook":
        problem("Only the rest-hook channel is supported", "channel.type", "not-supported")
    endpoint = str(channel.get("endpoint") or "")
    trouble = endpoint_problem(endpoint) if endpoint else "channel.endpoint is required for rest-hook"
    if trouble:
        problem(f"Endpoint refused: {trouble}", "channel.endpoint")
    payload = "empty"
    if channel.get("payload") is not None:
        if channel["payload"] not in PAYLOAD_TYPES:
            problem(f"channel.payload must be one of {', '.join(PAYLOAD_TYPES)}", "channel.payload")
        contents = [ext.get("valueCode") for ext in _extension(channel.get("_payload"), PAYLOAD_CONTENT)]
        payload = str(contents[0]) if contents else "id-only"
        if payload not in PAYLOAD_CONTENTS:
            problem(f"payload content must be one of {', '.join(PAYLOAD_CONTENTS)}", "channel.payload.extension")
    headers: list[tuple[str, str]] = []
    for index, header in enumerate(channel.get("header", []) or []):
        match = _HEADER.match(str(header))
        if match is None or match.group(1).lower() in RESERVED_HEADERS:
            problem("A header must read 'Name: value' and must not set the request's own headers",
                    f"channel.header[{index}]")  # fmt: skip
        else:
            headers.append((match.group(1), match.group(2)))
    heartbeat = _number(channel, HEARTBEAT_PERIOD, "valueUnsignedInt")
    if heartbeat is not None and heartbeat < 1:
        problem("The heartbeat period must be at least 1 second", "channel.extension")
    timeout = _number(channel, TIMEOUT, "valueUnsignedInt")
    if timeout is not None and not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
        problem(f"The timeout must be between 1 and {MAX_TIMEOUT_SECONDS} seconds", "channel.extension")
    max_count = _number(channel, MAX_COUNT, "valuePositiveInt")
    if max_count is not None and not 1 <= max_count <= MAX_EVENTS_PER_NOTIFICATION:
        problem(f"max-count must be between 1 and {MAX_EVENTS_PER_NOTIFICATION}", "channel.extension")
    if issues:
        raise InvalidSubscription(issues)
    assert topic is not None
    return SubscriptionSpec(
        topic=topic,
        conditions=conditions,
        endpoint=endpoint,
        payload=payload,
        headers=tuple(headers),
        heartbeat_seconds=heartbeat,
        timeout_seconds=float(timeout) if timeout is not None else None,
        max_count=max_count or 1,
    )


def _number(channel: Mapping[str, Any], url: str, element: str) -> int | None:
    for ext in _extension(channel, url):
        value = ext.get(element)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _filter_texts(resource: Mapping[str, Any]) -> list[str]:
    return [str(ext.get("valueString", "")) for ext in _extension(resource.get("_criteria"), FILTER_CRITERIA)]


def subscription_patient(resource: Mapping[str, Any]) -> str | None:
    """The one patient a Subscription's filters confine it to (None: several, none, or unreadable filters)."""
    topic = TOPICS.get(str(resource.get("criteria") or "").split("|")[0])
    if topic is None:
        return None
    try:
        return filter_patient(parse_filters(topic, _filter_texts(resource)))
    except FilterError:
        return None
