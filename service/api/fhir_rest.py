"""FHIR REST endpoints under /fhir: metadata, CRUD, versions, history and search for each served type."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, request
from werkzeug.routing import BaseConverter

from service import questionnaires, resources, terminology
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
from service.api.web import services, web
from service.auth.access import Grant, Interaction
from service.config import Settings
from service.fhir import jsonio
from service.fhir.bundle import Entry, bundle
from service.fhir.dates import InvalidDate, date_range, instant_text
from service.fhir.errors import BadRequest, UnsupportedMediaType, operation_outcome
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.fhir.search import SearchRequest
from service.fhir.versions import StoredVersion
from service.flags import update_flag
from service.groups import create_group, delete_group, update_group
from service.invitations.tasks import create_task, delete_task, update_task
from service.responses.submit import delete_response, submit_response, update_response
from service.services import Services
from service.subscriptions.manage import create_subscription, delete_subscription, update_subscription
from service.writes import WriteResult

blueprint = Blueprint("fhir_rest", __name__, url_prefix="/fhir")

MANDATORY_ELEMENTS = ("resourceType", "id", "meta")

# The use case behind each write, by resource type (the interactions each type supports are resources.SERVED).
Create = Callable[..., WriteResult]  # (services, resource, grant, *, if_none_exist)
Update = Callable[..., WriteResult]  # (services, id, resource, grant, *, if_match)
Delete = Callable[[Services, str, Grant], StoredVersion | None]
CREATE: dict[str, Create] = {
    "Questionnaire": questionnaires.publish_questionnaire,
    "QuestionnaireResponse": submit_response,
    "Subscription": create_subscription,
    "Group": create_group,
    "Task": create_task,
    "ValueSet": terminology.create_value_set,
    "CodeSystem": terminology.create_code_system,
}
UPDATE: dict[str, Update] = {
    "Questionnaire": questionnaires.update_questionnaire,
    "QuestionnaireResponse": update_response,
    "Flag": update_flag,
    "Subscription": update_subscription,
    "Group": update_group,
    "Task": update_task,
    "ValueSet": terminology.update_value_set,
    "CodeSystem": terminology.update_code_system,
}
DELETE: dict[str, Delete] = {
    "Questionnaire": questionnaires.delete_questionnaire,
    "QuestionnaireResponse": delete_response,
    "Subscription": delete_subscription,
    "Group": delete_group,
    "Task": delete_task,
    "ValueSet": terminology.delete_value_set,
    "CodeSystem": terminology.delete_code_system,
}


class FhirIdConverter(BaseConverter):
    regex = r"[A-Za-z0-9\-\.]{1,64}"


def _settings() -> Settings:
    return services().settings


def _served(resource_type: str) -> resources.ServedType:
    return resources.served(resource_type)


@blueprint.get("/metadata")
@fhir_interaction("capabilities")
def metadata() -> Response:
    return fhir_response(web().capability_statement)


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
    _served(resource_type)
    resource = _checked_body(resource_type)
    resource.pop("id", None)  # the server assigns ids on create
    result = CREATE[resource_type](services(), resource, grant(), if_none_exist=request.headers.get("If-None-Exist"))
    return _write_response(result, 200 if result.existing else 201)


@blueprint.put("/<resource_type>/<fhirid:resource_id>")
@fhir_interaction("update")
def update(resource_type: str, resource_id: str) -> Response:
    _served(resource_type)
    resource = _checked_body(resource_type)
    result = UPDATE[resource_type](services(), resource_id, resource, grant(), if_match=if_match_version())
    return _write_response(result, 201 if result.created else 200)


@blueprint.delete("/<resource_type>/<fhirid:resource_id>")
@fhir_interaction("delete")
def delete(resource_type: str, resource_id: str) -> Response:
    _served(resource_type)
    stored = DELETE[resource_type](services(), resource_id, grant())
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
    stored = resources.read(services(), resource_type, resource_id, grant())
    if request.headers.get("If-None-Match") == etag(stored.version_id):
        return Response(status=304, headers={"ETag": etag(stored.version_id)})
    return _resource_response(stored)


@blueprint.get("/<resource_type>/<fhirid:resource_id>/_history/<version_id>")
@fhir_interaction("vread")
def vread(resource_type: str, resource_id: str, version_id: str) -> Response:
    return _resource_response(resources.vread(services(), resource_type, resource_id, version_id, grant()))


def _history(resource_type: str, resource_id: str | None) -> Response:
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
    found = resources.history(
        services(),
        resource_type,
        resource_id,
        since=since,
        count=count,
        before_pk=int(before) if before else None,
        grant=grant(),
    )
    versions, total, next_pk = found.versions, found.total, found.next_page
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


def _included_grants(search: SearchRequest) -> dict[str, Grant]:
    """The caller's grant for each type the search brings in with _revinclude (each needs its own permission)."""
    authorization = request.headers.get("Authorization")
    return {
        included: web().access.authorize(Interaction("search-type", included), authorization)
        for included in resources.revincluded_types(search)
    }


def _search(resource_type: str, pairs: list[tuple[str, str]]) -> Response:
    settings = _settings()
    search = resources.parse_search(services(), resource_type, pairs, strict=strict_handling())
    result = resources.search(services(), resource_type, search, grant(), included_grants=_included_grants(search))
    base = settings.base_url
    path = f"{base}/{resource_type}"
    entries = [
        Entry(
            f"{path}/{resource_id}",
            _elements_subset(body, search.elements) if search.elements else body,
            search_mode="match",
        )
        for resource_id, body in result.matches
    ]
    entries += [Entry(f"{base}/{rtype}/{rid}", body, search_mode="include") for rtype, rid, body in result.included]
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
    if result.next_page:
        links.append(("next", _url(path, [*kept, ("_page", result.next_page)])))
    if result.previous_page:
        links.append(("previous", _url(path, [*kept, ("_page", result.previous_page)])))
    return fhir_response(bundle("searchset", entries, total=result.total, links=links))


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
