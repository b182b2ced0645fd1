"""Bulk Data export endpoints: kick-off ($export at system, Patient and Group level), status, cancel, files."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Flask, Response, request

from service.api.http import JSON_TYPES, fhir_interaction, fhir_response, grant, prefer, request_body
from service.api.web import services
from service.audit import current_audit
from service.exports import requests as exports
from service.exports.requests import NDJSON
from service.fhir.dates import http_date
from service.fhir.errors import BadRequest, NotAcceptable, operation_outcome
from service.fhir.issues import Issue

blueprint = Blueprint("bulk", __name__, url_prefix="/fhir")
NDJSON_TYPES = (NDJSON, "application/ndjson", *JSON_TYPES)


def accept_ndjson() -> None:
    """Export files are ndjson: accept clients that ask for it (or for anything)."""
    if request.headers.get("Accept") and request.accept_mimetypes.best_match(NDJSON_TYPES) is None:
        raise NotAcceptable(f"Export files are {NDJSON}; cannot produce {request.headers['Accept']!r}")


def _posted_parameters() -> list[tuple[str, str]]:
    """Export parameters sent as a FHIR Parameters resource (POST kick-off)."""
    if not request.get_data():
        return []
    body = request_body()
    if body.get("resourceType") != "Parameters":
        raise BadRequest("POST $export takes a Parameters resource")
    pairs: list[tuple[str, str]] = []
    for parameter in body.get("parameter", []):
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise BadRequest("Every parameter needs a name")
        values = [v for k, v in parameter.items() if k.startswith("value") and isinstance(v, str)]
        if len(values) != 1:
            raise BadRequest(f"Parameter {parameter['name']!r} needs one text value (valueString, valueInstant...)")
        pairs.append((parameter["name"], values[0]))
    return pairs


def _kick_off(level: str, group_id: str | None = None) -> Response:
    settings = services().settings
    parameters = list(request.args.items(multi=True))
    if request.method == "POST":
        parameters += _posted_parameters()
    query = request.query_string.decode()
    request_url = settings.base_url + request.path.removeprefix("/fhir") + (f"?{query}" if query else "")
    job_id = exports.kick_off(
        services(),
        level=level,
        group_id=group_id,
        parameters=parameters,
        respond_async=prefer("respond-async") is not None,
        grant=grant(),
        request_url=request_url,
    )
    status_url = f"{settings.base_url}/$export-status/{job_id}"
    text = f"Export accepted; poll {status_url} for its progress and, when done, its manifest"
    return fhir_response(
        operation_outcome([Issue("information", "informational", text)]), 202, {"Content-Location": status_url}
    )


@blueprint.route("/$export", methods=["GET", "POST"])
@fhir_interaction("operation-export")
def export_system() -> Response:
    return _kick_off("system")


@blueprint.route("/Patient/$export", methods=["GET", "POST"])
@fhir_interaction("operation-export")
def export_patients() -> Response:
    return _kick_off("patient")


@blueprint.route("/Group/<fhirid:group_id>/$export", methods=["GET", "POST"])
@fhir_interaction("operation-export")
def export_group(group_id: str) -> Response:
    return _kick_off("group", group_id)


@blueprint.get("/$export-status/<fhirid:job_id>")
@fhir_interaction("operation-export-status")
def export_status(job_id: str) -> Response:
    result = exports.export_status(services(), job_id, grant())
    if not result.done:
        outcome = operation_outcome([Issue("information", "informational", f"Export {result.progress}")])
        headers = {"X-Progress": result.progress, "Retry-After": str(exports.retry_after(services().settings))}
        return fhir_response(outcome, 202, headers)
    manifest: dict[str, Any] = result.manifest or {}
    response = Response(orjson.dumps(manifest), 200, content_type="application/json")
    if result.expires_at is not None:
        response.headers["Expires"] = http_date(result.expires_at)
    return response


@blueprint.delete("/$export-status/<fhirid:job_id>")
@fhir_interaction("operation-export-cancel")
def export_cancel(job_id: str) -> Response:
    exports.cancel_export(services(), job_id, grant())
    text = f"Export {job_id} cancelled; its files are deleted"
    return fhir_response(operation_outcome([Issue("information", "informational", text)]), 202)


def _ndjson_file(job_id: str, kind: str, resource_type: str, part: int) -> Response:
    download = exports.export_file(services(), job_id, kind, resource_type, part, grant())
    context = current_audit.get()
    if context is not None:
        # What was disclosed: which file of which export (the query element of the AuditEvent).
        context.query = f"export={job_id}&type={resource_type}&part={part}"
    # Streamed as it is read from the database, a chunk at a time (the generator needs no request context).
    response = Response(download.chunks, 200, mimetype=NDJSON)
    response.headers["Content-Length"] = str(download.size_bytes)
    return response


@blueprint.get("/$export-file/<fhirid:resource_id>/<resource_type>/<int:part>.ndjson")
@fhir_interaction("operation-export-file", negotiate=accept_ndjson)
def export_file(resource_id: str, resource_type: str, part: int) -> Response:
    return _ndjson_file(resource_id, "output", resource_type, part)


@blueprint.get("/$export-error/<fhirid:job_id>/<int:part>.ndjson")
@fhir_interaction("operation-export-error", negotiate=accept_ndjson)
def export_error(job_id: str, part: int) -> Response:
    return _ndjson_file(job_id, "error", "OperationOutcome", part)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
