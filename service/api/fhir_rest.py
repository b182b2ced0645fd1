"""FHIR REST endpoints under /fhir: metadata, CRUD, versions, history and search for each served type."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.routing import BaseConverter

from service.api.http import (
    etag,
    fhir_interaction,
    fhir_response,
    grant,
    if_match_version,
    prefer,
    request_body,
    strict_handling,
    version_headers,
)
from service.auth.access import Interaction
from service.config import Settings
from service.fhir import jsonio
from service.fhir.bundle import Entry, bundle
from service.fhir.dates import InvalidDate, date_range, instant_text
from service.fhir.errors import BadRequest, Forbidden, NotFound, UnsupportedMediaType, operation_outcome
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.fhir.search import SearchRequest
from service.interactions import ResourceInteractions, WriteResult
from service.store import derived
from service.store.repository import StoredVersion
from service.submissions import resolve_questionnaire

blueprint = Blueprint("fhir_rest", __name__, url_prefix="/fhir")

MANDATORY_ELEMENTS = ("resourceType", "id", "meta")


class FhirIdConverter(BaseConverter):
    regex = r"[A-Za-z0-9\-\.]{1,64}"


def _settings() -> Settings:
    settings: Settings = current_app.extensions["proms.settings"]
    return settings


def _interactions(resource_type: str) -> ResourceInteractions:
    resources: dict[str, ResourceInteractions] = current_app.extensions["proms.resources"]
    if resource_type not in resources:
        raise NotFound(
            f"Resource type {resource_type!r} is not served here; supported: {', '.join(sorted(resources))}",
            code="not-supported",
        )
    return resources[resource_type]


@blueprint.get("/metadata")
@fhir_interaction("capabilities")
def metadata() -> Response:
    return fhir_response(current_app.extensions["proms.capability_statement"])


# writes ---------------------------------------------------------------------------------------------------


def _write_response(result: WriteResult, status: int) -> Response:
    stored = result.stored
    headers = version_headers(stored, _settings().base_url)
    if status == 201:
        headers["Location"] = headers["Content-Location"]
    preference = prefer("return")
    if preference == "minimal":
        response = fhir_response(b"", status, headers)
        response.data = b""
        return response
    if preference == "OperationOutcome":
        return fhir_response(operation_outcome(result.issues), status, headers)
    assert stored.json is not None
    return fhir_response(stored.json, status, headers)


def _checked_body(resource_type: str) -> dict[str, Any]:
    resource = request_body()
    validate_structure(resource, resource_type)
    return resource


@blueprint.post("/<resource_type>")
@fhir_interaction("create")
def create(resource_type: str) -> Response:
    interactions = _interactions(resource_type)
    resource = _checked_body(resource_type)
    resource.pop("id", None)  # the server assigns ids on create
    result = interactions.create(resource, grant=grant(), if_none_exist=request.headers.get("If-None-Exist"))
    return _write_response(result, 200 if result.existing else 201)


@blueprint.put("/<resource_type>/<fhirid:resource_id>")
@fhir_interaction("update")
def update(resource_type: str, resource_id: str) -> Response:
    interactions = _interactions(resource_type)
    resource = _checked_body(resource_type)
    result = interactions.update(resource_id, resource, if_match=if_match_version(), grant=grant())
    return _write_response(result, 201 if result.created else 200)


@blueprint.delete("/<resource_type>/<fhirid:resource_id>")
@fhir_interaction("delete")
def delete(resource_type: str, resource_id: str) -> Response:
    stored = _interactions(resource_type).delete(resource_id, grant=grant())
    if stored is None:
        text = f"{resource_type}/{resource_id} was already deleted"
        return fhir_response(operation_outcome([Issue("information", "informational", text)]))
    text = f"Deleted {resource_type}/{resource_id} (version {stored.version_id}); its history is kept"
    return fhir_response(
        operation_outcome([Issue("information", "informational", text)]),
        200,
        {"ETag": etag(stored.version_id)},
    )


# reads ----------------------------------------------------------------------------------------------------


def _resource_response(stored: StoredVersion) -> Response:
    assert stored.json is not None
    return fhir_response(stored.json, 200, version_headers(stored, _settings().base_url))


@blueprint.get("/<resource_type>/<fhirid:resource_id>")
@fhir_interaction("read")
def read(resource_type: str, resource_id: str) -> Response:
    stored = _interactions(resource_type).read(resource_id, grant=grant())
    if request.headers.get("If-None-Match") == etag(stored.version_id):
        return Response(status=304, headers={"ETag": etag(stored.version_id)})
    return _resource_response(stored)


@blueprint.get("/<resource_type>/<fhirid:resource_id>/_history/<version_id>")
@fhir_interaction("vread")
def vread(resource_type: str, resource_id: str, version_id: str) -> Response:
    return _resource_response(_interactions(resource_type).vread(resource_id, version_id, grant=grant()))


def _history(resource_type: str, resource_id: str | None) -> Response:
    interactions = _interactions(resource_type)
    settings = _settings()
    since = None
    if "_since" in request.args:
        try:
            since = date_range(request.args["_since"])[0]
        except InvalidDate as exc:
            raise BadRequest(f"_since: {exc}", code="value") from None
    count = _count_arg(settings)
    before = request.args.get("_page")
    if before is not None and not (before.isascii() and before.isdigit() and len(before) <= 18):  # a 64-bit key
        raise BadRequest("The _page token is not valid for this history; start from the first page")
    versions, total, next_pk = interactions.history(
        resource_id, since=since, count=count, before_pk=int(before) if before else None, grant=grant()
    )
    base = settings.base_url
    entries = []
    for stored in versions:
        method = "DELETE" if stored.deleted else stored.method
        url = f"{resource_type}/{stored.id}" if method != "POST" else resource_type
        entries.append(
            Entry(
                full_url=f"{base}/{resource_type}/{stored.id}",
                body=stored.json,
                request=(method, url),
                response_status="201 Created" if method == "POST" else "200 OK",
                response_etag=etag(stored.version_id),
                response_last_modified=instant_text(stored.last_updated),
            )
        )
    path = f"{base}/{resource_type}" + (f"/{resource_id}" if resource_id else "") + "/_history"
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "_page"]
    links = [("self", _url(path, request.args.items(multi=True)))]
    if next_pk is not None:
        links.append(("next", _url(path, [*query, ("_page", str(next_pk))])))
    return fhir_response(bundle("history", entries, total=total, links=links))


def _count_arg(settings: Settings) -> int:
    raw = request.args.get("_count")
    if raw is None:
        return settings.default_page_size
    if not raw.isdigit():
        raise BadRequest(f"_count must be a whole number, got {raw!r}", code="value")
    return min(int(raw), settings.max_page_size)


@blueprint.get("/<resource_type>/<fhirid:resource_id>/_history")
@fhir_interaction("history-instance")
def history_instance(resource_type: str, resource_id: str) -> Response:
    return _history(resource_type, resource_id)


@blueprint.get("/<resource_type>/_history")
@fhir_interaction("history-type")
def history_type(resource_type: str) -> Response:
    return _history(resource_type, None)


# search ---------------------------------------------------------------------------------------------------


def _url(path: str, pairs: Any) -> str:
    query = urlencode(list(pairs))
    return f"{path}?{query}" if query else path


def _elements_subset(body: bytes, elements: list[str]) -> bytes:
    resource = jsonio.loads_object(body)
    keep = set(MANDATORY_ELEMENTS) | set(elements)
    subset = {key: value for key, value in resource.items() if key in keep}
    meta = dict(subset.get("meta") or {})
    meta["tag"] = [
        *meta.get("tag", []),
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"},
    ]
    subset["meta"] = meta
    return jsonio.dumps(subset)


def _check_included(resource_type: str) -> None:
    """Included resources need their own permission; they share the matches' patient, nothing else."""
    included = current_app.extensions["proms.access"].authorize(
        Interaction("search-type", resource_type), request.headers.get("Authorization")
    )
    if included.filters or (included.patient is not None and included.patient != grant().patient):
        raise Forbidden(f"The token's scopes do not allow including {resource_type} resources in this search")


def _included(search: SearchRequest, matches: list[tuple[str, bytes]]) -> list[tuple[str, str, bytes]]:
    """Resources asked for with _include / _revinclude, as (type, id, JSON)."""
    if not matches or not (search.include or search.revinclude):
        return []
    db = _interactions("Questionnaire").db
    found: list[tuple[str, str, bytes]] = []
    with db.read_session() as session:
        if "QuestionnaireResponse:questionnaire" in search.include:
            canonicals = {str(jsonio.loads_object(body).get("questionnaire", "")) for _, body in matches}
            seen: set[str] = set()
            for canonical in sorted(canonicals):
                row = resolve_questionnaire(session, canonical, _settings().base_url)
                if row is not None and row.resource_json is not None and row.id not in seen:
                    seen.add(row.id)
                    found.append(("Questionnaire", row.id, row.resource_json.encode()))
        if "Observation:derived-from" in search.revinclude:
            _check_included("Observation")
            response_ids = [resource_id for resource_id, _ in matches]
            for obs_id, body in derived.observations_for_responses(session, response_ids):
                found.append(("Observation", obs_id, body.encode()))
    return found


def _search(resource_type: str, pairs: list[tuple[str, str]]) -> Response:
    interactions = _interactions(resource_type)
    settings = _settings()
    search = interactions.parse_search(pairs, strict=strict_handling())
    page = interactions.search(search, grant=grant())
    base = settings.base_url
    path = f"{base}/{resource_type}"
    entries = [
        Entry(
            f"{path}/{resource_id}",
            _elements_subset(body, search.elements) if search.elements else body,
            search_mode="match",
        )
        for resource_id, body in page.matches
    ]
    entries += [
        Entry(f"{base}/{rtype}/{rid}", body, search_mode="include")
        for rtype, rid, body in _included(search, page.matches)
    ]
    if search.ignored:
        outcome = operation_outcome(
            [
                Issue("warning", "not-supported", f"Search parameter '{name}' is not supported and was ignored")
                for name in search.ignored
            ]
        )
        entries.append(Entry(f"urn:uuid:{uuid.uuid4()}", jsonio.dumps(outcome), search_mode="outcome"))
    kept = [(k, v) for k, v in pairs if k != "_page" and k not in search.ignored]
    links = [("self", _url(path, [*kept, *([("_page", search.page)] if search.page else [])]))]
    if page.next_page:
        links.append(("next", _url(path, [*kept, ("_page", page.next_page)])))
    if page.previous_page:
        links.append(("previous", _url(path, [*kept, ("_page", page.previous_page)])))
    return fhir_response(bundle("searchset", entries, total=page.total, links=links))


@blueprint.get("/<resource_type>")
@fhir_interaction("search-type")
def search_get(resource_type: str) -> Response:
    return _search(resource_type, list(request.args.items(multi=True)))


@blueprint.post("/<resource_type>/_search")
@fhir_interaction("search-type")
def search_post(resource_type: str) -> Response:
    if request.mimetype != "application/x-www-form-urlencoded" and request.get_data():
        raise UnsupportedMediaType("POST _search takes application/x-www-form-urlencoded parameters")
    pairs = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    return _search(resource_type, pairs)


def init_app(app: Flask) -> None:
    app.url_map.converters["fhirid"] = FhirIdConverter
    app.register_blueprint(blueprint)
