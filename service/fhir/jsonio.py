"""FHIR JSON bytes in and out (orjson: fast, and strict about what it accepts)."""

from __future__ import annotations

from typing import Any

import orjson

from service.fhir.errors import BadRequest


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# Far beyond any real questionnaire response; small enough that no request can make the service work hard.
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_STRING = 100_000


def check_limits(value: Any) -> None:
    """Refuse JSON that is too deep, too big in parts, or has over-long strings (before any real work)."""
    stack = [(value, 1)]
    nodes = 0
    while stack:
        current, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise BadRequest(f"The resource has more than {MAX_NODES} elements", code="too-costly")
        if depth > MAX_DEPTH:
            raise BadRequest(f"The resource is nested more than {MAX_DEPTH} levels deep", code="too-costly")
        if isinstance(current, dict):
            stack.extend((child, depth + 1) for child in current.values())
        elif isinstance(current, list):
            stack.extend((child, depth + 1) for child in current)
        elif isinstance(current, str) and len(current) > MAX_STRING:
            raise BadRequest(f"A string in the resource is longer than {MAX_STRING} characters", code="too-costly")


def loads_object(body: bytes) -> dict[str, Any]:
    """Parse a request body that must be one JSON object."""
    if not body.strip():
        raise BadRequest("The request body is empty; a FHIR JSON resource was expected", code="required")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}", code="structure") from None
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object (a FHIR resource)", code="structure")
    check_limits(value)
    return value
