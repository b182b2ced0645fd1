"""Terminology operations: ValueSet/$expand, ValueSet/$validate-code (type and instance level) and
CodeSystem/$lookup, by GET (query parameters) or POST (a Parameters body)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request

from service import terminology
from service.api.http import fhir_interaction, fhir_response, request_body
from service.api.web import services
from service.fhir.errors import BadRequest
from service.fhir.issues import Issue

blueprint = Blueprint("terminology", __name__, url_prefix="/fhir")


def _parameters() -> dict[str, Any]:
    """The operation's parameters, by name: the query's, then a POSTed Parameters body's (a primitive value, a
    resource, or a Coding). A parameter given twice is refused: each of these operations takes one of each."""
    found: dict[str, Any] = {}
    for name in request.args:
        values = request.args.getlist(name)
        if len(values) > 1:
            raise BadRequest(f"The parameter {name!r} is given more than once", code="invalid")
        found[name] = values[0]
    if request.method == "POST" and request.get_data():
        body = request_body()
        if body.get("resourceType") != "Parameters":
            raise BadRequest("POST takes a Parameters resource")
        for index, parameter in enumerate(body.get("parameter") or []):
            given = parameter.get("name") if isinstance(parameter, dict) else None
            values = [v for k, v in parameter.items() if k.startswith("value") or k == "resource"]
            if not isinstance(given, str) or len(values) != 1 or given in found:
                raise BadRequest(
                    Issue(
                        "error",
                        "invalid",
                        "Each parameter needs a name and one value, and each name is given once",
                        f"Parameters.parameter[{index}]",
                    )
                )
            found[given] = values[0]
    return found


def _text(parameters: dict[str, Any], name: str) -> str | None:
    value = parameters.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"The parameter {name!r} must be a non-empty text value", code="value")
    return value


def _whole(parameters: dict[str, Any], name: str) -> int | None:
    value = parameters.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or isinstance(value, str) and value.isdigit()):
        raise BadRequest(f"The parameter {name!r} must be a whole number, not negative", code="value")
    return int(value)


def _coding(parameters: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    """(system, code, display, version) from system/code/display/version, a coding, or a codeableConcept's first."""
    coding = parameters.get("coding")
    concept = parameters.get("codeableConcept")
    if isinstance(concept, dict) and coding is None:
        codings = concept.get("coding") or []
        coding = codings[0] if codings else None
    if isinstance(coding, dict):
        return coding.get("system"), coding.get("code"), coding.get("display"), coding.get("version")
    return (
        _text(parameters, "system"),
        _text(parameters, "code"),
        _text(parameters, "display"),
        _text(parameters, "version") or _text(parameters, "systemVersion"),
    )


def _url(parameters: dict[str, Any]) -> tuple[str | None, str | None]:
    url = _text(parameters, "url")
    version = _text(parameters, "valueSetVersion")
    if url is not None and "|" in url and version is None:
        url, _, version = url.partition("|")
    return url, version


def _expand(resource_id: str | None) -> Response:
    parameters = _parameters()
    url, version = _url(parameters)
    value_set = parameters.get("valueSet")
    if value_set is not None and not isinstance(value_set, dict):
        raise BadRequest("The parameter 'valueSet' must be a ValueSet resource")
    found = terminology.expand(
        services(),
        terminology.ExpandRequest(
            resource_id=resource_id,
            url=url,
            value_set_version=version,
            value_set=value_set,
            filter=_text(parameters, "filter"),
            count=_whole(parameters, "count"),
            offset=_whole(parameters, "offset") or 0,
        ),
    )
    return fhir_response(found)


@blueprint.route("/ValueSet/$expand", methods=["GET", "POST"])
@fhir_interaction("operation-expand", "ValueSet")
def expand_type() -> Response:
    return _expand(None)


@blueprint.route("/ValueSet/<fhirid:resource_id>/$expand", methods=["GET", "POST"])
@fhir_interaction("operation-expand", "ValueSet")
def expand_instance(resource_id: str) -> Response:
    return _expand(resource_id)


def _validate_code(resource_id: str | None) -> Response:
    parameters = _parameters()
    url, version = _url(parameters)
    system, code, display, _ = _coding(parameters)
    found = terminology.validate_code(
        services(),
        terminology.CodeRequest(resource_id, url, version, system, code, display),
    )
    return fhir_response(found)


@blueprint.route("/ValueSet/$validate-code", methods=["GET", "POST"])
@fhir_interaction("operation-validate-code", "ValueSet")
def validate_code_type() -> Response:
    return _validate_code(None)


@blueprint.route("/ValueSet/<fhirid:resource_id>/$validate-code", methods=["GET", "POST"])
@fhir_interaction("operation-validate-code", "ValueSet")
def validate_code_instance(resource_id: str) -> Response:
    return _validate_code(resource_id)


def _lookup(resource_id: str | None) -> Response:
    parameters = _parameters()
    system, code, _, version = _coding(parameters)
    found = terminology.lookup(
        services(), terminology.CodeRequest(resource_id, system=system, code=code, version=version)
    )
    return fhir_response(found)


@blueprint.route("/CodeSystem/$lookup", methods=["GET", "POST"])
@fhir_interaction("operation-lookup", "CodeSystem")
def lookup_type() -> Response:
    return _lookup(None)


@blueprint.route("/CodeSystem/<fhirid:resource_id>/$lookup", methods=["GET", "POST"])
@fhir_interaction("operation-lookup", "CodeSystem")
def lookup_instance(resource_id: str) -> Response:
    return _lookup(resource_id)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
