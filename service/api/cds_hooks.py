"""CDS Hooks endpoints: discovery, the patient-view hook and card feedback, behind CDS client JWTs and the audit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar, cast

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import HTTPException

from service import audit
from service.api.http import audited
from service.app_ui.safety import flagged_answer
from service.audit import AuditContext, current_audit
from service.auth.access import Grant, Interaction
from service.auth.tokens import InvalidToken, TokenVerifier
from service.cds.cards import CardSettings, PatientData, Source, patient_view_cards
from service.cds.measures import (
    Measure,
    SafetyConcern,
    flag_message,
    flag_response_id,
    instrument_label,
    previous_response_ids,
    read_flag,
    read_measure,
)
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
from service.fhir.errors import BadRequest, FhirError, Gone, NotFound, PreconditionFailed, Unauthorized
from service.fhir.issues import Issue
from service.fhir.jsonio import check_limits
from service.interactions import ResourceInteractions
from service.store import summary
from service.store.db import Database
from service.store.repository import utcnow

SERVICE_ID = "recovery-proms"
JSON_TYPES = ("application/json", "application/fhir+json")
ERROR_CODES = {400: "invalid_request", 401: "invalid_token", 403: "forbidden", 404: "not_found", 409: "conflict",
               412: "conflict", 413: "too_large", 422: "unprocessable", 503: "unavailable"}  # fmt: skip
WWW_AUTHENTICATE = 'Bearer error="invalid_token", error_description="{}"'

blueprint = Blueprint("cds_hooks", __name__, url_prefix="/cds-services")
log = logging.getLogger("proms.cds")
F = TypeVar("F", bound=Callable[..., Response])


@dataclass(frozen=True)
class CdsHooks:
    """What the endpoints need, wired once per app: settings, database, and the CDS client JWT verifier."""

    settings: Settings
    db: Database
    verifier: TokenVerifier | None  # None: no CDS client is trusted (or authentication is off)

    @property
    def public_base(self) -> str:
        return public_base(self.settings)

    def card_settings(self) -> CardSettings:
        return CardSettings(
            now=utcnow(),
            app_launch_url=f"{self.public_base}/app/launch",
            source=Source("Recovery PROMs", f"{self.public_base}/app/"),
            schedule=dict(self.settings.schedule),
        )


def public_base(settings: Settings) -> str:
    """The service's public address: PROMS_BASE_URL without its trailing /fhir."""
    return settings.base_url.rstrip("/").removesuffix("/fhir")


def service_url(settings: Settings) -> str:
    """The patient-view endpoint's URL: what a CDS client's JWT must name as ``aud``."""
    return f"{public_base(settings)}/cds-services/{SERVICE_ID}"


def _cds() -> CdsHooks:
    wired: CdsHooks = current_app.extensions["proms.cds_hooks"]
    return wired


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


def authenticate(cds: CdsHooks, authorization: str | None) -> Grant:
    """The CDS client calling: its signed JWT must name this service as ``aud`` and come from a trusted ``iss``."""
    if cds.settings.auth_mode == "none":
        return Grant(unrestricted=True)
    if cds.verifier is None:
        raise Unauthorized(
            "This service trusts no CDS clients yet: set PROMS_CDS_ISSUERS and PROMS_CDS_JWKS_URL or "
            "PROMS_CDS_JWKS_FILE",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE.format("no trusted CDS clients")},
        )
    try:
        claims = cds.verifier.verify(_bearer(authorization))
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise InvalidToken("the token has no jti (CDS Hooks requires one)")
    except InvalidToken as exc:
        raise Unauthorized(
            f"The CDS client's JWT was refused: {exc}",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE.format(exc)},
        ) from None
    client = claims.get("sub") or claims.get("client_id") or claims.get("iss")
    return Grant(unrestricted=True, client_id=str(client) if client else None)


def cds_interaction(name: str, resource_type: str) -> Callable[[F], F]:
    """Authenticate the CDS client and audit the call, as ``fhir_interaction`` does for FHIR clients."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            context = AuditContext(Interaction(name, resource_type), request.remote_addr, None)
            with audited(context) as outcome:
                context.grant = authenticate(_cds(), request.headers.get("Authorization"))
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


def _flagged_response(response_id: str | None) -> dict[str, Any] | None:
    """The response that raised a safety Flag, read as the API reads it (audited with the call), so that the card
    can say how the safety item was answered; None if it cannot be read."""
    if response_id is None:
        return None
    responses: ResourceInteractions = current_app.extensions["proms.resources"]["QuestionnaireResponse"]
    try:
        return responses.read(response_id, grant=_caller()).resource()
    except FhirError:
        return None


def _patient_data(patient_id: str, records: summary.PatientRecords, earlier: dict[str, datetime]) -> PatientData:
    measures: list[Measure] = []
    for latest in records.latest:
        stored = records.questionnaires.get(latest.questionnaire_pk) if latest.questionnaire_pk else None
        observations = records.observations.get(latest.id, [])
        for observation in observations:
            audit.note("Observation", str(observation.resource.get("id")), patient_id)
        measures.append(
            read_measure(
                response_id=latest.id,
                questionnaire_url=latest.questionnaire_url,
                questionnaire_id=stored.id if stored else None,
                questionnaire=stored.resource if stored else None,
                completed=latest.completed,
                observations=[(observation.key, observation.resource) for observation in observations],
                earlier=earlier,
            )
        )
    concerns: list[SafetyConcern] = []
    for flag in records.flags:
        stored = records.questionnaires.get(flag.questionnaire_pk) if flag.questionnaire_pk else None
        label = instrument_label(stored.resource, stored.url or "") if stored else None
        response = _flagged_response(flag_response_id(flag.resource)) if stored else None
        answered = flagged_answer(stored.resource if stored else None, response, flag_message(flag.resource))
        concern = read_flag(flag.resource, label, answered)
        audit.note("Flag", concern.flag_id, patient_id)
        concerns.append(concern)
    return PatientData(patient_id, tuple(measures), tuple(concerns))


@blueprint.post(f"/{SERVICE_ID}")
@cds_interaction("cds-patient-view", "Patient")
def patient_view() -> Response:
    hook: PatientViewRequest = _load(HookRequestSchema(), _json_body("hook request"), "hook request")
    context = current_audit.get()
    if context is not None and context.grant is not None:
        context.grant = replace(context.grant, user=hook.user_id)
    audit.note("Patient", hook.patient_id, hook.patient_id)
    cds = _cds()
    with cds.db.read_session() as session:
        records = summary.patient_records(session, hook.patient_id)
        scores = [o.resource for observations in records.observations.values() for o in observations]
        earlier = summary.completed_dates(session, previous_response_ids(scores))
    cards = patient_view_cards(_patient_data(hook.patient_id, records, earlier), cds.card_settings())
    return json_response(HookResponseSchema().dump({"cards": cards}))


def mark_flag_reviewed(flag_id: str, grant: Grant) -> bool:
    """Mark an active safety Flag reviewed (inactive); False when there is no such active Flag."""
    flags: ResourceInteractions = current_app.extensions["proms.resources"]["Flag"]
    for _ in range(3):
        try:
            stored = flags.read(flag_id, grant=grant)
        except (NotFound, Gone):
            return False
        resource = stored.resource()
        if resource.get("status") != "active":
            return False
        try:
            flags.update(flag_id, {**resource, "status": "inactive"}, if_match=stored.version_id, grant=grant)
            return True
        except PreconditionFailed:
            continue  # changed by someone else meanwhile: look at it again
    return False


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
        flag_reviewed = mark_flag_reviewed(str(entry.card), _caller())
        reviewed += flag_reviewed
        _log_feedback(entry, flag_reviewed)
    return json_response(FeedbackResultSchema().dump({"received": len(entries), "flags_reviewed": reviewed}))


def init_app(app: Flask) -> None:
    settings: Settings = app.extensions["proms.settings"]
    verifier = None
    if settings.auth_mode == "jwt":
        if settings.cds_issuers and (settings.cds_jwks_url or settings.cds_jwks_file):
            verifier = TokenVerifier(
                issuers=settings.cds_issuers,
                audience=service_url(settings),
                jwks_url=settings.cds_jwks_url,
                jwks_file=settings.cds_jwks_file,
            )
        else:
            log.warning(
                "CDS Hooks calls are refused until PROMS_CDS_ISSUERS and PROMS_CDS_JWKS_URL or PROMS_CDS_JWKS_FILE "
                "name the CDS clients to trust"
            )
    app.extensions["proms.cds_hooks"] = CdsHooks(settings, app.extensions["proms.db"], verifier)
    app.register_blueprint(blueprint)
