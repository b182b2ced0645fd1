"""Measure/$evaluate-measure (FHIR R4), at instance and type level, by GET (query) or POST (a Parameters body)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from service.api.http import fhir_interaction, fhir_response, grant, request_body, version_headers
from service.api.web import services
from service.fhir.errors import BadRequest
from service.fhir.issues import Issue
from service.outcomes.evaluate import evaluate_measure

blueprint = Blueprint("measures", __name__, url_prefix="/fhir/Measure")
OPERATION = "operation-evaluate-measure"


def _posted_parameters() -> list[tuple[str, str]]:
    """The operation's parameters from a Parameters body: each one a single primitive value, kept as text."""
    if not request.get_data():
        return []
    body = request_body()
    if body.get("resourceType") != "Parameters":
        raise BadRequest("POST $evaluate-measure takes a Parameters resource")
    pairs: list[tuple[str, str]] = []
    for index, parameter in enumerate(body.get("parameter") or []):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        values = [v for k, v in parameter.items() if k.startswith("value")] if isinstance(parameter, dict) else []
        if not isinstance(name, str) or len(values) != 1 or not isinstance(values[0], str):
            raise BadRequest(
                Issue(
                    "error",
                    "invalid",
                    "Each parameter needs a name and one text value (valueDate, valueString, valueCode ...)",
                    f"Parameters.parameter[{index}]",
                )
            )
        pairs.append((name, values[0]))
    return pairs


def _evaluate(measure_id: str | None) -> Response:
    parameters = list(request.args.items(multi=True))
    if request.method == "POST":
        parameters += _posted_parameters()
    stored = evaluate_measure(services(), measure_id, parameters, grant())
    assert stored.json is not None
    headers = version_headers(stored, services().settings.base_url)
    return fhir_response(stored.json, 200, headers)


@blueprint.route("/$evaluate-measure", methods=["GET", "POST"])
@fhir_interaction(OPERATION, "Measure")
def evaluate_type() -> Response:
    return _evaluate(None)


@blueprint.route("/<fhirid:resource_id>/$evaluate-measure", methods=["GET", "POST"])
@fhir_interaction(OPERATION, "Measure")
def evaluate_instance(resource_id: str) -> Response:
    return _evaluate(resource_id)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
