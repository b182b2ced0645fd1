"""Bundles (searchset and history) assembled from stored JSON without re-parsing it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from service.fhir.dates import instant_text


@dataclass(frozen=True, slots=True)
class Entry:
    full_url: str
    body: bytes | None  # the resource JSON as stored; None for a deleted version in history
    search_mode: str | None = None  # match | include | outcome
    request: tuple[str, str] | None = None  # history: (method, url)
    response_status: str | None = None
    response_etag: str | None = None
    response_last_modified: str | None = None


def _entry_json(entry: Entry) -> bytes:
    parts = [b'{"fullUrl":' + orjson.dumps(entry.full_url)]
    if entry.body is not None:
        parts.append(b'"resource":' + entry.body)
    if entry.search_mode is not None:
        parts.append(b'"search":' + orjson.dumps({"mode": entry.search_mode}))
    if entry.request is not None:
        parts.append(b'"request":' + orjson.dumps({"method": entry.request[0], "url": entry.request[1]}))
    if entry.response_status is not None:
        response: dict[str, Any] = {"status": entry.response_status}
        if entry.response_etag:
            response["etag"] = entry.response_etag
        if entry.response_last_modified:
            response["lastModified"] = entry.response_last_modified
        parts.append(b'"response":' + orjson.dumps(response))
    return b",".join(parts) + b"}"


def bundle(
    bundle_type: str,
    entries: Sequence[Entry],
    *,
    total: int | None,
    links: Sequence[tuple[str, str]],
) -> bytes:
    """Serialise a Bundle; stored resources are spliced in as bytes (they are valid JSON already)."""
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant_text(datetime.now(UTC).replace(tzinfo=None))},
        "type": bundle_type,
    }
    if total is not None:
        head["total"] = total
    if links:
        head["link"] = [{"relation": relation, "url": url} for relation, url in links]
    encoded = orjson.dumps(head)
    if not entries:
        return encoded
    return encoded[:-1] + b',"entry":[' + b",".join(_entry_json(e) for e in entries) + b"]}"
