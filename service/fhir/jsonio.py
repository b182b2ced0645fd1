"""FHIR JSON bytes in and out (orjson: fast, and strict about what it accepts)."""

from __future__ import annotations

from typing import Any

import orjson

from service.fhir.errors import BadRequest


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


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
    return value
