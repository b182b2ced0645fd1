"""FHIR operations on QuestionnaireResponse: $validate (FHIR core) and $extract (SDC)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from service.api.http import fhir_interaction, fhir_response, grant, request_body
from service.auth.enforcement import check_body
from service.extraction import extract_observations
from service.fhir import jsonio
from service.fhir.bundle import Entry, bundle
from service.fhir.dates import instant_text
from service.fhir.errors import BadRequest, FhirError, operation_outcome
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.interactions import ResourceInteractions
from service.store.repository import utcnow
from service.submissions import QuestionnaireResponseRules, check_response, validation_outcome

blueprint = Blueprint("operations", __name__, url_prefix="/fhir/QuestionnaireResponse")
QR = "QuestionnaireResponse"
VALIDATE_MODES = ("create", "update", "delete")


def _responses() -> ResourceInteractions:
    interactions: ResourceInteractions = current_app.extensions["proms.resources"][QR]
    return interactions


def _rules() -> QuestionnaireResponseRules:
    rules = _responses().rules
    assert isinstance(rules, QuestionnaireResponseRules)
    return rules


def _parameter(body: dict[str, Any], name: str) -> Any:
    """The value of a named Parameters parameter (resource or primitive), or None."""
    for parameter in body.get("parameter", []):
        if isinstance(parameter, dict) and parameter.get("name") == name:
            if "resource" in parameter:
                return parameter["resource"]
            return next((v for k, v in parameter.items() if k.startswith("value")), None)
    return None


def _submitted(resource_parameter: str) -> tuple[dict[str, Any] | None, str | None]:
    """The QuestionnaireResponse in the body (bare, or inside Parameters) and any ``mode`` given."""
    if not request.get_data():
        return None, request.args.get("mode")
    body = request_body()
    if body.get("resourceType") == "Parameters":
        resource = _parameter(body, resource_parameter)
        mode = _parameter(body, "mode") or request.args.get("mode")
        if resource is not None and not isinstance(resource, dict):
            raise BadRequest(f"Parameter '{resource_parameter}' must hold a QuestionnaireResponse")
        return resource, mode
    return body, request.args.get("mode")


def _stored(resource_id: str) -> dict[str, Any]:
    return _responses().read(resource_id, grant=grant()).resource()


def _validate(resource: dict[str, Any] | None, mode: str | None, resource_id: str | None) -> list[Issue]:
    if mode is not None and mode not in VALIDATE_MODES:
        raise BadRequest(f"mode must be one of {', '.join(VALIDATE_MODES)}, got {mode!r}", code="value")
    if mode == "delete":
        if resource_id is None:
            raise BadRequest(
                "mode=delete needs the id of a stored response: POST .../QuestionnaireResponse/{id}/$validate"
            )
        _stored(resource_id)
        return []
    if resource is None:
        raise BadRequest("Send the QuestionnaireResponse to validate in the body (or as the 'resource' parameter)")
    if mode == "update" or (mode is None and resource_id is not None):
        if resource_id is None or resource.get("id") != resource_id:
            return [Issue("error", "invalid", "For an update the resource id must equal the id in the URL", f"{QR}.id")]
        _stored(resource_id)
    check_body(_responses().kind, grant(), resource)
    try:
        validate_structure(resource, QR)
        with _responses().db.read_session() as session:
            _, questionnaire = _rules().resolve(session, resource)
    except FhirError as exc:
        return exc.issues
    return validation_outcome(questionnaire, resource)


def _validate_response(resource_id: str | None) -> Response:
    resource, mode = _submitted("resource")
    issues = _validate(resource, mode, resource_id)
    return fhir_response(operation_outcome(issues))


@blueprint.post("/$validate")
@fhir_interaction("operation-validate", QR)
def validate_type() -> Response:
    return _validate_response(None)


@blueprint.post("/<fhirid:resource_id>/$validate")
@fhir_interaction("operation-validate", QR)
def validate_instance(resource_id: str) -> Response:
    return _validate_response(resource_id)


def _extract(response: dict[str, Any]) -> Response:
    check_body(_responses().kind, grant(), response)
    validate_structure(response, QR)
    with _responses().db.read_session() as session:
        _, questionnaire = _rules().resolve(session, response)
    scoring, _ = check_response(questionnaire, response)
    reference = f"{QR}/{response['id']}" if response.get("id") else f"urn:uuid:{uuid.uuid4()}"
    ids: dict[str, str] = {}
    extracted = extract_observations(
        questionnaire,
        scoring.response,
        scoring.scores,
        {},
        response_reference=reference,
        issued=instant_text(utcnow()),
        ids=lambda key: ids.setdefault(key, str(uuid.uuid4())),
        reference=lambda oid: f"urn:uuid:{oid}",
    )
    entries = []
    for item in extracted:
        resource = {k: v for k, v in item.resource.items() if k != "id"}
        entries.append(
            Entry(f"urn:uuid:{item.resource['id']}", jsonio.dumps(resource), request=("POST", "Observation"))
        )
    return fhir_response(bundle("transaction", entries, total=None, links=[]))


@blueprint.post("/$extract")
@fhir_interaction("operation-extract", QR)
def extract_type() -> Response:
    resource, _ = _submitted("questionnaire-response")
    if resource is None:
        raise BadRequest("Send the QuestionnaireResponse in the body (or as the 'questionnaire-response' parameter)")
    return _extract(resource)


@blueprint.route("/<fhirid:resource_id>/$extract", methods=["GET", "POST"])
@fhir_interaction("operation-extract", QR)
def extract_instance(resource_id: str) -> Response:
    return _extract(_stored(resource_id))


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
