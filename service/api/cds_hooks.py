"""CDS Hooks endpoints: discovery, the patient-view hook and card feedback, behind CDS client JWTs and the audit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar, cast

import orjson
from flask import Blueprint, Flask, Response, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from service.api.http import audited
from service.api.web import services, web
from service.audit import AuditContext, current_audit
from service.auth.access import OPEN, Grant, Interaction
from service.auth.tokens import InvalidToken, TokenVerifier
from service.cds.cards import CardSettings, Source, patient_view_cards
from service.cds.schemas import (
    HOOK,
    DiscoverySchema,
    ErrorSchema,
    Feedback,
    FeedbackRequestSchema,
    FeedbackResultSchema,
    HookRequestSchema,
    HookResponseSchema,
    PatientViewRequest,
    flatten_messages,
)
from service.config import Settings
from service.fhir.dates import utcnow
from service.fhir.errors import BadRequest, FhirError, Unauthorized
from service.fhir.issues import Issue
from service.fhir.jsonio import check_limits
from service.flags import mark_flag_reviewed
from service.patients import patient_data
from service.token_replay import first_use

SERVICE_ID = "recovery-proms"
JSON_TYPES = ("application/json", "application/fhir+json")
ERROR_CODES = {400: "invalid_request", 401: "invalid_token", 403: "forbidden", 404: "not_found", 409: "conflict",
               412: "conflict", 413: "too_large", 422: "unprocessable", 429: "too_many_requests",
               503: "unavailable"}  # fmt: skip
WWW_AUTHENTICATE = 'Bearer error="invalid_token", error_description="{}"'

blueprint = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")
log = logging.getLogger("proms.cds")
F = TypeVar("F", bound=Callable[..., Response])


def card_settings(settings: Settings) -> CardSettings:
    base = public_base(settings)
    return CardSettings(
        now=utcnow(),
        app_launch_url=f"{base}/app/launch",
        source=Source("Recovery PROMs", f"{base}/app/"),
        schedule=dict(settings.schedule),
    )


def public_base(settings: Settings) -> str:
    """The service's public address: PROMS_BASE_URL without its trailing /fhir."""
    return settings.base_url.rstrip("/").removesuffix("/fhir")


def service_url(settings: Settings) -> str:
    """The patient-view endpoint's URL: what a CDS client's JWT must name as ``aud``."""
    return f"{public_base(settings)}/cds-services/{SERVICE_ID}"


# errors: JSON, not OperationOutcome, because CDS clients are not FHIR clients --------------------------------


class InvalidCdsRequest(BadRequest):
    """A request body that does not meet the CDS Hooks specification, with every problem by member path."""

    def __init__(self, what: str, problems: list[tuple[str, str]]) -> None:
        listed = "; ".join(f"{member}: {message}" if member else message for member, message in problems)
        super().__init__(Issue("error", "invalid", f"The {what} is not valid: {listed}"))
        self.problems = problems


def json_response(body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(orjson.dumps(body), status=status, content_type="application/json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def error_response(status: int, message: str, problems: list[tuple[str, str]] | None = None) -> Response:
    body = {
        "error": ERROR_CODES.get(status, "error"),
        "message": message,
        "details": [{"field": member, "message": text} for member, text in problems or []] or None,
    }
    return json_response(ErrorSchema().dump(body), status)


@blueprint.errorhandler(FhirError)
def _fhir_error(exc: FhirError) -> Response:
    response = error_response(exc.status, str(exc), getattr(exc, "problems", None))
    response.headers.update(exc.headers)
    return response


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = "The request body is too large" if status == 413 else (exc.description or exc.name)
    return error_response(status, message)


# the access check and the audit seam, for CDS clients ------------------------------------------------------


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "A CDS Hooks JWT is required (Authorization: Bearer <jwt>)",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE.format("no bearer token")},
        )
    return token.strip()


def authenticate(settings: Settings, verifier: TokenVerifier | None, authorization: str | None) -> Grant:
    """The CDS client calling: its signed JWT must name this service as ``aud`` and come from a trusted ``iss``."""
    if settings.auth_mode == "none":
        return OPEN
    if verifier is None:
        raise Unauthorized(
            "This service trusts no CDS clients yet: set PROMS_CDS_ISSUERS and PROMS_CDS_JWKS_URL or "
            "PROMS_CDS_JWKS_FILE",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE.format("no trusted CDS clients")},
        )
    try:
        claims = verifier.verify(_bearer(authorization))
        jti, issuer, expires = claims.get("jti"), claims.get("iss"), claims.get("exp")
        if not isinstance(jti, str) or not jti:
            raise InvalidToken("the token has no jti (CDS Hooks requires one)")
        if not isinstance(issuer, str) or not isinstance(expires, int):
            raise InvalidToken("the token has no iss or exp")
        if not first_use(services(), issuer, jti, expires):
            raise InvalidToken("the token was used before (a CDS client's JWT is good for one call)")
    except InvalidToken as exc:
        # The reason goes in the OperationOutcome only: a header never carries text taken from the token.
        raise Unauthorized(
            f"The CDS client's JWT was refused: {exc}",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE.format("the token was refused")},
        ) from None
    client = claims.get("sub") or claims.get("client_id") or claims.get("iss")
    # The EHR calls for the clinician looking at the record (hook.user_id names them).
    return Grant(unrestricted=True, client_id=str(client) if client else None, acting_as="user")


def cds_interaction(name: str, resource_type: str) -> Callable[[F], F]:
    """Authenticate the CDS client and audit the call, as ``fhir_interaction`` does for FHIR clients."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            context = AuditContext(Interaction(name, resource_type), request.remote_addr, None)
            with audited(context) as outcome:
                context.grant = authenticate(
                    services().settings, web().cds_verifier, request.headers.get("Authorization")
                )
                response = view(*args, **kwargs)
                outcome.status = response.status_code
            return response

        return cast(F, wrapper)

    return decorate


def _caller() -> Grant:
    context = current_audit.get()
    assert context is not None and context.grant is not None  # set by cds_interaction
    return context.grant


# request bodies --------------------------------------------------------------------------------------------


def _json_body(what: str) -> dict[str, Any]:
    if request.mimetype not in JSON_TYPES:
        shown = request.headers.get("Content-Type") or "none"
        raise InvalidCdsRequest(what, [("", f"send JSON (Content-Type: application/json), not {shown!r}")])
    try:
        value = orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise InvalidCdsRequest(what, [("", f"the body is not valid JSON ({exc})")]) from None
    if not isinstance(value, dict):
        raise InvalidCdsRequest(what, [("", "the body must be a JSON object")])
    check_limits(value)
    return value


def _load(schema: Schema, body: dict[str, Any], what: str) -> Any:
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise InvalidCdsRequest(what, flatten_messages(exc.messages)) from None


# endpoints -------------------------------------------------------------------------------------------------


def discovery_document() -> dict[str, Any]:
    service = {
        "hook": HOOK,
        "id": SERVICE_ID,
        "title": "Recovery measures",
        "description": "Safety items not yet reviewed, scores that reliably worsened or are in their most severe "
        "band, the latest score on each measure with its change since last time, and measures that are due.",
        "prefetch": {"patient": "Patient/{{context.patientId}}"},
        "usage_requirements": "context.patientId must be the id this service's QuestionnaireResponses use as "
        "subject (Patient/{id}); prefetch is optional, the service reads its own records.",
    }
    return cast(dict[str, Any], DiscoverySchema().dump({"services": [service]}))


@blueprint.get("")
def discovery() -> Response:
    return json_response(discovery_document())


@blueprint.post(f"/{SERVICE_ID}")
@cds_interaction("cds-patient-view", "Patient")
def patient_view() -> Response:
    hook: PatientViewRequest = _load(HookRequestSchema(), _json_body("hook request"), "hook request")
    context = current_audit.get()
    if context is not None and context.grant is not None:
        context.grant = replace(context.grant, user=hook.user_id)
    data = patient_data(services(), hook.patient_id, _caller())
    cards = patient_view_cards(data, card_settings(services().settings))
    return json_response(HookResponseSchema().dump({"cards": cards}))


def _log_feedback(entry: Feedback, reviewed: bool) -> None:
    # Codes only: a clinician's free-text comment may name the patient, and logs carry no health data.
    reason = (entry.override_reason or {}).get("reason") or {}
    log.info(
        "cds feedback",
        extra={
            "card": str(entry.card),
            "outcome": entry.outcome,
            "override_reason": f"{reason.get('system', '')}|{reason.get('code', '')}" if reason else None,
            "accepted_suggestions": len(entry.accepted_suggestions),
            "flag_reviewed": reviewed,
        },
    )


@blueprint.post(f"/{SERVICE_ID}/feedback")
@cds_interaction("cds-feedback", "Flag")
def feedback() -> Response:
    entries: list[Feedback] = _load(FeedbackRequestSchema(), _json_body("feedback"), "feedback")["feedback"]
    reviewed = 0
    for entry in entries:
        # A safety card's uuid is its Flag's id: acting on the card, either way, is reviewing the flag.
        flag_reviewed = mark_flag_reviewed(services(), str(entry.card), _caller())
        reviewed += flag_reviewed
        _log_feedback(entry, flag_reviewed)
    return json_response(FeedbackResultSchema().dump({"received": len(entries), "flags_reviewed": reviewed}))


def cds_verifier(settings: Settings) -> TokenVerifier | None:
    """The verifier of the CDS clients' JWTs, when authentication is on and some clients are trusted."""
    if settings.auth_mode != "jwt":
        return None
    if not (settings.cds_issuers and (settings.cds_jwks_url or settings.cds_jwks_file)):
        log.warning(
            "CDS Hooks calls are refused until PROMS_CDS_ISSUERS and PROMS_CDS_JWKS_URL or PROMS_CDS_JWKS_FILE "
            "name the CDS clients to trust"
        )
        return None
    return TokenVerifier(
        issuers=settings.cds_issuers,
        audience=service_url(settings),
        jwks_url=settings.cds_jwks_url,
        jwks_file=settings.cds_jwks_file,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
