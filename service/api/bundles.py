"""Batch and transaction Bundles: ``POST /fhir`` with a Bundle of type ``batch`` or ``transaction``.

Each entry is one FHIR interaction, run exactly as the same request sent on its own would run: the same route,
use case, validation, scoring, authorization, compartment rules and AuditEvent, with the caller's credentials.
It is dispatched inside this request (a request context of its own, the caller's headers that matter).

A batch runs its entries one after another, each answered on its own: one entry failing changes nothing for
the others. A transaction runs them in one database transaction (``Database.one_transaction``) in FHIR's order
(DELETE, then POST, then PUT, then GET), resolves ``urn:uuid:`` references between entries to the ids the server
assigns, and stores everything or nothing: the first entry that fails rolls the whole transaction back, and the
answer is that entry's error.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.test import EnvironBuilder

from service.api.http import FHIR_JSON, fhir_interaction, fhir_response, request_body
from service.api.web import services
from service.audit import current_audit
from service.auth.access import Interaction
from service.fhir import jsonio
from service.fhir.dates import instant_text
from service.fhir.errors import BadRequest, FhirError, PayloadTooLarge, operation_outcome
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure

blueprint = Blueprint("fhir_bundles", __name__, url_prefix="/fhir")

# FHIR's processing order within a transaction (http.html#trules); GET and HEAD last, so they see the writes.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
URN_UUID = "urn:uuid:"
# The request headers an entry carries on its own (Bundle.entry.request), and the caller's that every entry gets.
ENTRY_HEADERS = {"ifMatch": "If-Match", "ifNoneMatch": "If-None-Match", "ifNoneExist": "If-None-Exist"}
CALLER_HEADERS = ("Authorization", "Prefer", "X-Request-ID")


@dataclass(frozen=True)
class BundleEntry:
    """One entry of the submitted Bundle, checked: what to do (method and url relative to the base), and with what."""

    index: int
    method: str
    url: str  # relative to the FHIR base: "Questionnaire", "Flag/1", "Observation?patient=Patient/1"
    full_url: str | None
    resource: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"Bundle.entry[{self.index}] ({self.method} {self.url})"

    @property
    def target(self) -> str | None:
        """``Type/id`` for an entry on one named resource (PUT, DELETE), else None."""
        path = self.url.partition("?")[0]
        parts = path.split("/")
        return "/".join(parts[:2]) if len(parts) >= 2 and "?" not in self.url else None


@dataclass(frozen=True)
class Answer:
    """What one entry's interaction answered."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class EntryFailed(FhirError):
    """A transaction's entry failed: the whole transaction is answered with its status and its issues."""

    def __init__(self, entry: BundleEntry, answer: Answer) -> None:
        issues = [
            Issue(
                "error",
                "processing",
                f"{entry.label} failed with {answer.status}; nothing in this transaction was stored",
                f"Bundle.entry[{entry.index}]",
            ),
            *_issues_of(answer),
        ]
        retry = answer.headers.get("Retry-After")
        super().__init__(issues, headers={"Retry-After": retry} if retry else None)
        self.status = answer.status


# the endpoint ----------------------------------------------------------------------------------------------


@blueprint.post("")
@fhir_interaction("transaction")
def batch_or_transaction() -> Response:
    body = request_body()
    bundle_type, entries = parse_bundle(body, services().settings.base_url, services().settings.max_bundle_entries)
    context = current_audit.get()
    if context is not None:
        context.interaction = Interaction(bundle_type)
    if bundle_type == "batch":
        answers = run_batch(entries)
    else:
        answers = run_transaction(entries)
    return fhir_response(response_bundle(f"{bundle_type}-response", entries, answers, services().settings.base_url))


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)


# reading the Bundle ----------------------------------------------------------------------------------------


def parse_bundle(body: Mapping[str, Any], base_url: str, max_entries: int) -> tuple[str, list[BundleEntry]]:
    """The Bundle's type and its entries, checked; 400 for a Bundle that is not a batch or transaction or is
    malformed, 413 past the entry limit."""
    if body.get("resourceType") != "Bundle" or body.get("type") not in ("batch", "transaction"):
        shown = body.get("type") if body.get("resourceType") == "Bundle" else body.get("resourceType")
        raise BadRequest(
            Issue(
                "error",
                "invalid",
                f"POST to the FHIR base takes a Bundle of type batch or transaction, not {shown!r}; "
                "to create a resource, POST it to /fhir/{its type}",
                "Bundle.type" if body.get("resourceType") == "Bundle" else "resourceType",
            )
        )
    raw_entries = body.get("entry", [])
    if isinstance(raw_entries, list) and len(raw_entries) > max_entries:
        raise PayloadTooLarge(
            f"This Bundle has {len(raw_entries)} entries; this server takes at most {max_entries} in one Bundle "
            "(PROMS_MAX_BUNDLE_ENTRIES). Send it as several Bundles",
            code="too-costly",
        )
    # The envelope's structure (the entries' resources are checked by their own interactions).
    envelope = dict(body)
    if isinstance(raw_entries, list):
        envelope["entry"] = [
            {key: value for key, value in entry.items() if key != "resource"} if isinstance(entry, dict) else entry
            for entry in raw_entries
        ]
    validate_structure(envelope, "Bundle")
    entries = [_entry(index, raw, base_url) for index, raw in enumerate(raw_entries)]
    full_urls = [entry.full_url for entry in entries if entry.full_url]
    duplicated = sorted({url for url in full_urls if full_urls.count(url) > 1})
    if duplicated:
        raise BadRequest(f"Bundle entries must have distinct fullUrls; repeated: {', '.join(duplicated)}")
    return str(body["type"]), entries


def _entry(index: int, raw: Mapping[str, Any], base_url: str) -> BundleEntry:
    where = f"Bundle.entry[{index}]"
    entry_request = raw.get("request")
    if not isinstance(entry_request, dict):
        raise BadRequest(
            Issue("error", "required", f"{where} has no request: an entry needs request.method and request.url", where)
        )
    method = str(entry_request.get("method", ""))
    if method not in ORDER:
        raise BadRequest(
            Issue(
                "error",
                "invalid",
                f"{where}.request.method must be one of {', '.join(ORDER)}, got {entry_request.get('method')!r}",
                f"{where}.request.method",
            )
        )
    url = str(entry_request.get("url", ""))
    for prefix in (base_url.rstrip("/") + "/", "/"):
        url = url.removeprefix(prefix)
    if not url or "://" in url or ".." in url.split("?")[0]:
        raise BadRequest(
            Issue(
                "error",
                "invalid",
                f"{where}.request.url must name a resource type, a resource or a search relative to this server's "
                f"base {base_url} (e.g. QuestionnaireResponse or Questionnaire/phq-9), "
                f"got {entry_request.get('url')!r}",
                f"{where}.request.url",
            )
        )
    resource = raw.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        text = f"{where}: a {method} entry needs its resource"
        raise BadRequest(Issue("error", "required", text, f"{where}.resource"))
    if method in ("POST", "PUT") and isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
        raise BadRequest(Issue("error", "not-supported", f"{where}: Bundles inside a Bundle are not processed", where))
    headers = {
        header: str(entry_request[key]) for key, header in ENTRY_HEADERS.items() if entry_request.get(key) is not None
    }
    full_url = raw.get("fullUrl")
    return BundleEntry(
        index,
        method,
        url,
        full_url if isinstance(full_url, str) else None,
        resource if isinstance(resource, dict) and method in ("POST", "PUT") else None,
        headers,
    )


# running the entries ---------------------------------------------------------------------------------------


def run_batch(entries: list[BundleEntry]) -> list[Answer]:
    """Each entry on its own, in the order given; entries cannot refer to each other."""
    known = {entry.full_url for entry in entries if entry.full_url and entry.full_url.startswith(URN_UUID)}
    answers = []
    for entry in entries:
        referred = _urn_uuids(entry.resource) & known if entry.resource is not None else set()
        if referred:
            text = (
                f"{entry.label} refers to another entry ({', '.join(sorted(referred))}); the entries of a batch are "
                "processed independently: send a transaction to refer between entries"
            )
            answers.append(_error_answer(400, Issue("error", "invalid", text, f"Bundle.entry[{entry.index}]")))
            continue
        answers.append(dispatch(entry, entry.resource))
    return answers


def run_transaction(entries: list[BundleEntry]) -> list[Answer]:
    """All entries in one database transaction, in FHIR's order; the first failure undoes them all."""
    _check_targets(entries)
    assigned: dict[str, str] = {}  # fullUrl -> the Type/id it stands for
    for entry in entries:
        if entry.full_url and entry.method == "PUT" and entry.target:
            assigned[entry.full_url] = entry.target
    full_urls = {entry.full_url for entry in entries}
    unresolvable = {
        (entry.index, urn)
        for entry in entries
        if entry.resource is not None
        for urn in _urn_uuids(entry.resource)
        if urn not in full_urls
    }
    if unresolvable:
        index, urn = min(unresolvable)
        raise BadRequest(
            Issue(
                "error",
                "not-found",
                f"Bundle.entry[{index}] refers to {urn}, which is not the fullUrl of any entry of this transaction",
                f"Bundle.entry[{index}].resource",
            )
        )
    answers: dict[int, Answer] = {}
    db = services().db
    try:
        with db.one_transaction():
            for entry in processing_order(entries):
                resource = _with_references(entry.resource, assigned) if entry.resource is not None else None
                answer = dispatch(entry, resource)
                if answer.status >= 400:
                    raise EntryFailed(entry, answer)
                if entry.full_url and entry.method == "POST":
                    created = _created(answer, services().settings.base_url)
                    if created:
                        assigned[entry.full_url] = created
                answers[entry.index] = answer
    except BaseException:
        # A rolled-back version may have been read into the parsed-Questionnaire cache (keyed by id and
        # version, which a later write could reuse): forget them all rather than risk serving one.
        services().questionnaires.clear()
        raise
    return [answers[entry.index] for entry in entries]


# Created first among POSTs: the Questionnaires and responses of the same transaction find them by canonical url
# (an answerValueSet), not by urn:uuid, so their checks see the terminology the transaction carries.
TERMINOLOGY = frozenset({"CodeSystem", "ValueSet"})


def processing_order(entries: list[BundleEntry]) -> list[BundleEntry]:
    """DELETE, POST, PUT/PATCH, GET/HEAD; among POSTs, CodeSystems and ValueSets first, and an entry after those
    whose urn:uuid it refers to."""
    ordered = sorted(entries, key=lambda entry: (ORDER.get(entry.method, 4), entry.index))
    posts = [entry for entry in ordered if entry.method == "POST"]
    posts.sort(key=lambda entry: entry.url.split("?")[0] not in TERMINOLOGY)  # stable: bundle order otherwise
    by_url = {entry.full_url: entry for entry in posts if entry.full_url}
    placed: list[BundleEntry] = []
    done: set[int] = set()
    visiting: set[int] = set()

    def place(entry: BundleEntry) -> None:
        if entry.index in done:
            return
        if entry.index in visiting:
            raise BadRequest(
                f"{entry.label} is part of a cycle of entries that refer to each other by urn:uuid; a transaction "
                "cannot create resources that each need the other's id first"
            )
        visiting.add(entry.index)
        for urn in sorted(_urn_uuids(entry.resource)):
            if urn in by_url:
                place(by_url[urn])
        visiting.discard(entry.index)
        done.add(entry.index)
        placed.append(entry)

    for entry in posts:
        place(entry)
    before = [entry for entry in ordered if ORDER.get(entry.method, 4) < ORDER["POST"]]
    after = [entry for entry in ordered if ORDER.get(entry.method, 4) > ORDER["POST"]]
    return before + placed + after


def _check_targets(entries: list[BundleEntry]) -> None:
    """A transaction may not act twice on one resource (FHIR: a 400, as its outcome would depend on order)."""
    seen: dict[str, BundleEntry] = {}
    for entry in entries:
        if entry.method not in WRITES or entry.method == "POST" or entry.target is None:
            continue
        if entry.target in seen:
            raise BadRequest(
                f"{entry.label} and {seen[entry.target].label} both change {entry.target}; a transaction may change "
                "a resource once"
            )
        seen[entry.target] = entry


def dispatch(entry: BundleEntry, resource: Mapping[str, Any] | None) -> Answer:
    """Run one entry as its own request to this service, with the caller's credentials and preferences
    (``resource``: the entry's, with references to other entries resolved)."""
    path, _, query = entry.url.partition("?")
    headers = {name: request.headers[name] for name in CALLER_HEADERS if name in request.headers}
    headers["X-Request-ID"] = g.get("request_id", "")
    headers["Accept"] = FHIR_JSON
    headers.update(entry.headers)
    builder = EnvironBuilder(
        path=f"/fhir/{path}",
        base_url=request.host_url,
        method=entry.method,
        query_string=query,
        headers=list(headers.items()),
        data=jsonio.dumps(resource) if resource is not None else None,
        content_type=FHIR_JSON if resource is not None else None,
        environ_base={"REMOTE_ADDR": request.remote_addr or ""},
    )
    environ = builder.get_environ()
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> Response:
        # An application context of its own: the entry's ``g`` (its grant, its timings) is not the Bundle's.
        with app.app_context(), app.request_context(environ):
            response: Response = app.full_dispatch_request()
            return response

    # A copy of this context: what the entry sets (its request id, its audit context) stays with it, while it
    # still joins the transaction this request opened.
    response = contextvars.copy_context().run(run)
    return Answer(response.status_code, dict(response.headers), response.get_data())


# references between entries --------------------------------------------------------------------------------


# Where a resource refers to another: a Reference's ``reference``, and the canonicals that name a resource a
# transaction may carry with it (a response's Questionnaire, an item's value set, a Task's instantiated form).
REFERRING_KEYS = frozenset({"reference", "questionnaire", "answerValueSet", "instantiatesCanonical", "valueCanonical"})


def _urn_uuids(value: Any) -> set[str]:
    """Every urn:uuid a resource refers to (an identifier's value that is a urn:uuid is not a reference)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                if key in REFERRING_KEYS and isinstance(child, str):
                    if child.startswith(URN_UUID):
                        found.add(child)
                else:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return found


def _with_references(resource: Mapping[str, Any], assigned: Mapping[str, str]) -> dict[str, Any]:
    """The resource with each reference to another entry's urn:uuid replaced by the Type/id the server gave it."""

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: assigned.get(child, child) if key in REFERRING_KEYS and isinstance(child, str) else rewrite(child)
                for key, child in node.items()
            }
        if isinstance(node, list):
            return [rewrite(child) for child in node]
        return node

    rewritten: dict[str, Any] = rewrite(resource)
    return rewritten


def _created(answer: Answer, base_url: str) -> str | None:
    """``Type/id`` of what a POST made (or found, for a conditional create)."""
    location = answer.headers.get("Location") or answer.headers.get("Content-Location")
    if not location:
        return None
    relative = location.removeprefix(base_url.rstrip("/") + "/")
    parts = relative.split("/")
    return "/".join(parts[:2]) if len(parts) >= 2 else None


# the answer ------------------------------------------------------------------------------------------------


def _issues_of(answer: Answer) -> list[Issue]:
    try:
        outcome = jsonio.loads_object(answer.body)
    except Exception:  # noqa: BLE001 - not an OperationOutcome: nothing to carry over
        return []
    issues = []
    for issue in outcome.get("issue", []) if outcome.get("resourceType") == "OperationOutcome" else []:
        expression = issue.get("expression") or [None]
        issues.append(
            Issue(
                issue.get("severity", "error"),
                issue.get("code", "processing"),
                str((issue.get("details") or {}).get("text") or issue.get("diagnostics") or ""),
                expression[0],
            )
        )
    return issues


def _error_answer(status: int, issue: Issue) -> Answer:
    return Answer(status, {}, jsonio.dumps(operation_outcome([issue])))


def response_bundle(
    bundle_type: str, entries: Iterable[BundleEntry], answers: list[Answer], base_url: str
) -> dict[str, Any]:
    rendered = []
    for entry, answer in zip(entries, answers, strict=True):
        status = f"{answer.status} {HTTPStatus(answer.status).phrase}"
        response: dict[str, Any] = {"status": status}
        location = answer.headers.get("Location") or (
            answer.headers.get("Content-Location") if entry.method in WRITES else None
        )
        if location:
            response["location"] = location
        if answer.headers.get("ETag"):
            response["etag"] = answer.headers["ETag"]
        if answer.headers.get("Last-Modified"):
            response["lastModified"] = instant_text(parsedate_to_datetime(answer.headers["Last-Modified"]))
        item: dict[str, Any] = {}
        body = jsonio.loads_object(answer.body) if answer.body else None
        if body is not None and (answer.status >= 400 or body.get("resourceType") == "OperationOutcome"):
            response["outcome"] = body
        elif body is not None:
            item["resource"] = body
            if body.get("id") and body.get("resourceType") != "Bundle":
                item["fullUrl"] = f"{base_url.rstrip('/')}/{body['resourceType']}/{body['id']}"
        item["response"] = response
        rendered.append(item)
    return {"resourceType": "Bundle", "type": bundle_type, "entry": rendered}
