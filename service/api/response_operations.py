"""FHIR operations on QuestionnaireResponse: $validate (FHIR core) and $extract (SDC)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request

from service.api.http import fhir_interaction, fhir_response, grant, request_body
from service.api.web import services
from service.extraction import Extracted
from service.fhir import jsonio
from service.fhir.bundle import Entry, bundle
from service.fhir.errors import BadRequest, operation_outcome
from service.responses import operations

QR = "QuestionnaireResponse"

blueprint = Blueprint("operations", __name__, url_prefix=f"/fhir/{QR}")


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


def _validate_response(resource_id: str | None) -> Response:
    resource, mode = _submitted("resource")
    issues = operations.validate(services(), resource, mode, resource_id, grant())
    return fhir_response(operation_outcome(issues))


@blueprint.post("/$validate")
@fhir_interaction("operation-validate", QR)
def validate_type() -> Response:
    return _validate_response(None)


@blueprint.post("/<fhirid:resource_id>/$validate")
@fhir_interaction("operation-validate", QR)
def validate_instance(resource_id: str) -> Response:
    return _validate_response(resource_id)


def _transaction_bundle(extracted: list[Extracted]) -> Response:
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
    return _transaction_bundle(operations.extract(services(), resource, grant()))


@blueprint.route("/<fhirid:resource_id>/$extract", methods=["GET", "POST"])
@fhir_interaction("operation-extract", QR)
def extract_instance(resource_id: str) -> Response:
    return _transaction_bundle(operations.extract_stored(services(), resource_id, grant()))


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
