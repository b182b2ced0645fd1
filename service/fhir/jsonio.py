"""FHIR JSON bytes in and out (orjson: fast, and strict about what it accepts)."""

from __future__ import annotations

from typing import Any

import orjson

from service.fhir.errors import BadRequest
from service.fhir.issues import Issue


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


# Far beyond any real questionnaire response; small enough that no request can make the service work hard.
MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_STRING = 100_000


def check_limits(value: Any) -> None:
    """Refuse JSON that is too deep, too big in parts, or has over-long strings (before any real work)."""
    _walk(value, fhir=False)


def _walk(value: Any, *, fhir: bool) -> None:
    # Each entry: (value, depth, parent entry index, key) so that the path is built only for an error.
    stack: list[tuple[Any, int, int, str | int]] = [(value, 1, -1, "")]
    seen: list[tuple[int, str | int]] = []
    nodes = 0
    while stack:
        current, depth, parent, key = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise BadRequest(f"The resource has more than {MAX_NODES} elements", code="too-costly")
        if depth > MAX_DEPTH:
            raise BadRequest(f"The resource is nested more than {MAX_DEPTH} levels deep", code="too-costly")
        if isinstance(current, dict):
            if fhir:
                seen.append((parent, key))
                index = len(seen) - 1
                stack.extend((child, depth + 1, index, name) for name, child in current.items())
            else:
                stack.extend((child, depth + 1, -1, "") for child in current.values())
        elif isinstance(current, list):
            if fhir:
                seen.append((parent, key))
                index = len(seen) - 1
                if not current:
                    where = _path(seen, index, value)
                    raise BadRequest(
                        Issue(
                            "error",
                            "structure",
                            f"{where} is an empty array; FHIR JSON leaves out an element that has no values",
                            where,
                        )
                    )
                stack.extend((child, depth + 1, index, position) for position, child in enumerate(current))
            else:
                stack.extend((child, depth + 1, -1, "") for child in current)
        elif isinstance(current, str) and len(current) > MAX_STRING:
            raise BadRequest(f"A string in the resource is longer than {MAX_STRING} characters", code="too-costly")


def _path(seen: list[tuple[int, str | int]], index: int, root: Any) -> str:
    """FHIRPath-style location of an element, e.g. QuestionnaireResponse.item[0].answer."""
    parts: list[str | int] = []
    while index > 0:
        parent, key = seen[index]
        parts.append(key)
        index = parent
    path = str(root.get("resourceType") or "Resource") if isinstance(root, dict) else "Resource"
    for part in reversed(parts):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def loads_object(body: bytes) -> dict[str, Any]:
    """Parse JSON that must be one object: stored resources and other data the service wrote itself."""
    if not body.strip():
        raise BadRequest("The request body is empty; a FHIR JSON resource was expected", code="required")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}", code="structure") from None
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object (a FHIR resource)", code="structure")
    return value


def parse_body(body: bytes) -> dict[str, Any]:
    """Parse a FHIR JSON resource sent by a client: one object, within the size limits, and valid FHIR JSON in
    the ways a model check does not see (no empty arrays)."""
    value = loads_object(body)
    _walk(value, fhir=True)
    return value
