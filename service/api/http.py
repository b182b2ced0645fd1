"""FHIR over HTTP: content negotiation, Prefer/If-Match headers, responses, and the interaction seam."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from service.api.web import web
from service.audit import AuditContext, current_audit
from service.auth.access import Grant, Interaction
from service.fhir import jsonio
from service.fhir.dates import http_date
from service.fhir.errors import (
    BadRequest,
    FhirError,
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    TooManyRequests,
    UnsupportedMediaType,
)
from service.fhir.versions import StoredVersion
from service.resources import READ_WRITE, SERVED

FHIR_JSON = "application/fhir+json"
JSON_TYPES = (FHIR_JSON, "application/json", "application/json+fhir")
FORMAT_ALIASES = ("json", *JSON_TYPES)

F = TypeVar("F", bound=Callable[..., Response])


def check_acceptable() -> None:
    """406 unless the client accepts FHIR JSON (``_format`` overrides ``Accept``)."""
    requested = request.args.get("_format")
    if requested is not None:
        if requested.split(";")[0].strip() not in FORMAT_ALIASES:
            raise NotAcceptable(f"_format={requested} is not supported; this server speaks FHIR JSON only")
        return
    if not request.headers.get("Accept"):
        return
    if request.accept_mimetypes.best_match(JSON_TYPES) is None:
        raise NotAcceptable(
            f"Cannot produce {request.headers['Accept']!r}; this server speaks {FHIR_JSON} (or application/json)"
        )


def request_body() -> dict[str, Any]:
    if request.mimetype not in JSON_TYPES:
        shown = request.headers.get("Content-Type") or "none"
        raise UnsupportedMediaType(f"Content-Type {shown!r} is not supported; send {FHIR_JSON} (or application/json)")
    return jsonio.parse_body(request.get_data(cache=False))


def prefer(name: str) -> str | None:
    """A token from the Prefer header, e.g. prefer('return') -> 'minimal'."""
    for part in request.headers.get("Prefer", "").split(","):
        for token in part.split(";"):
            key, _, value = token.strip().partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"')
    return None


def strict_handling() -> bool:
    return prefer("handling") == "strict"


def if_match_version() -> int | None:
    header = request.headers.get("If-Match")
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise BadRequest(f'If-Match must be an ETag such as W/"3", got {header!r}', code="value")
    return int(text)


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


def fhir_response(
    body: bytes | Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    data = body if isinstance(body, bytes) else jsonio.dumps(body)
    response = Response(data, status=status, content_type=f"{FHIR_JSON}; charset=utf-8")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def version_headers(stored: StoredVersion, base_url: str) -> dict[str, str]:
    return {
        "ETag": etag(stored.version_id),
        "Last-Modified": http_date(stored.last_updated),
        "Content-Location": f"{base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}",
    }


def _supported(interaction: Interaction) -> bool:
    served = SERVED.get(interaction.resource_type) if interaction.resource_type else None
    return served is None or interaction.name not in READ_WRITE or interaction.name in served.interactions


def _not_allowed(interaction: Interaction) -> MethodNotAllowed:
    served = SERVED[str(interaction.resource_type)]
    return MethodNotAllowed(
        f"{interaction.resource_type} does not support {interaction.name}: {served.written_by}; they can be "
        "read and searched",
        headers={"Allow": "GET"},
    )


def grant() -> Grant:
    """The caller's grant for the current request (set by the interaction seam)."""
    current: Grant = g.grant
    return current


@dataclass
class AuditOutcome:
    status: int = 200


@contextmanager
def audited(context: AuditContext) -> Iterator[AuditOutcome]:
    """Record what the block does as one AuditEvent: its failure if it raises, else the status it sets.

    Health data is not handed out unless its access was recorded: a failure to audit fails the request.
    """
    auditor = web().services.auditor
    throttle = web().throttle
    address = context.address or "unknown"
    if throttle.blocked(address):
        if throttle.first_in_window(address):  # recorded once per window, not once per attempt
            context.query = f"throttled: more than {throttle.limit} refused authentications from this address"
            auditor.record(context, 429, failed=True)
        raise TooManyRequests(
            "Too many requests with refused credentials from this address; wait a minute before trying again",
            headers={"Retry-After": "60"},
        )
    token = current_audit.set(context)
    outcome = AuditOutcome()
    try:
        yield outcome
    except FhirError as exc:
        if exc.status == 401:
            throttle.refused(address)
        auditor.record(context, exc.status, failed=True)
        raise
    except HTTPException as exc:
        auditor.record(context, exc.code or 500, failed=True)
        raise
    except Exception:
        auditor.record(context, 500, failed=True)
        raise
    finally:
        current_audit.reset(token)
    auditor.record(context, outcome.status, failed=False)


def fhir_interaction(
    name: str, resource_type: str | None = None, *, negotiate: Callable[[], None] = check_acceptable
) -> Callable[[F], F]:
    """Run a view through the access check and the audit seam; one place for both, every route.

    ``negotiate`` checks the client accepts what the view produces (FHIR JSON unless the view says otherwise).
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            interaction = Interaction(name, kwargs.get("resource_type", resource_type), kwargs.get("resource_id"))
            query = request.query_string.decode() if name == "search-type" else None
            if name == "search-type" and request.method == "POST":
                query = urlencode(list(request.form.items(multi=True)))
            context = AuditContext(interaction, request.remote_addr, query)
            with audited(context) as outcome:
                negotiate()
                authorization = request.headers.get("Authorization")
                if not _supported(interaction):
                    # Refused whatever the token says, but who tried is recorded (a bad token is a 401 first).
                    context.grant = web().access.identify(authorization)
                    raise _not_allowed(interaction)
                try:
                    g.grant = context.grant = web().access.authorize(interaction, authorization)
                except Forbidden:
                    context.grant = web().access.identify(authorization)  # who was refused, for the audit
                    raise
                response = view(*args, **kwargs)
                outcome.status = response.status_code
            return response

        return cast(F, wrapper)

    return decorate
