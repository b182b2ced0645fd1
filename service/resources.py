"""What is served, and reading it the same way for every type: read, vread, history and search.

Only reading is generic. A write with rules is a use case in its own module (responses, questionnaires, flags,
groups, subscriptions) built from the shared steps in ``service.writes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from service import audit
from service.auth.access import Grant
from service.fhir import jsonio
from service.fhir.errors import Forbidden, Gone, NotFound
from service.fhir.search import SearchRequest
from service.fhir.search import parse_search as parse_search_request
from service.fhir.versions import StoredVersion
from service.services import Services
from service.store import derived
from service.store import search as store_search
from service.store.access import check_row, history_condition, restrict_search
from service.store.kinds import (
    AUDIT_EVENT,
    CODE_SYSTEM,
    COMMUNICATION,
    FLAG,
    GROUP,
    MEASURE,
    MEASURE_REPORT,
    OBSERVATION,
    PROVENANCE,
    QUESTIONNAIRE,
    QUESTIONNAIRE_RESPONSE,
    SUBSCRIPTION,
    TASK,
    VALUE_SET,
    ResourceKind,
)
from service.store.models import ResourceRow, ResourceVersion
from service.store.questionnaires import resolve_questionnaire
from service.store.repository import ResourceRepository

READ_ONLY = frozenset({"read", "vread", "history-instance", "history-type", "search-type"})
READ_WRITE = READ_ONLY | {"create", "update", "delete"}


@dataclass(frozen=True, slots=True)
class ServedType:
    """A resource type the FHIR API serves: where it is stored and which interactions it supports."""

    kind: ResourceKind
    interactions: frozenset[str]
    # Why a read-only type cannot be written (what a 405 says).
    written_by: str = "the service derives these resources from the QuestionnaireResponses it scores"


SERVED: Mapping[str, ServedType] = {
    "Questionnaire": ServedType(QUESTIONNAIRE, READ_WRITE),
    "QuestionnaireResponse": ServedType(QUESTIONNAIRE_RESPONSE, READ_WRITE),
    # Derived by the service from the responses it scores: read and searched, never written by clients.
    "Observation": ServedType(OBSERVATION, READ_ONLY),
    "Provenance": ServedType(PROVENANCE, READ_ONLY),
    "Flag": ServedType(FLAG, READ_ONLY | {"update"}),  # a clinician's review is the one change
    "AuditEvent": ServedType(AUDIT_EVENT, frozenset({"read", "search-type"})),
    "Subscription": ServedType(SUBSCRIPTION, READ_WRITE - {"history-type"}),
    "Group": ServedType(GROUP, READ_WRITE),
    # The built-in outcome Measures, and the report of each $evaluate-measure run.
    "Measure": ServedType(MEASURE, READ_ONLY, "the built-in outcome Measures are loaded by `proms init`"),
    # Terminology: definitions, written by backends (system/ scopes) and loaded by `proms init`.
    "ValueSet": ServedType(VALUE_SET, READ_WRITE),
    "CodeSystem": ServedType(CODE_SYSTEM, READ_WRITE),
    "MeasureReport": ServedType(MEASURE_REPORT, READ_ONLY, "MeasureReports are made by Measure/$evaluate-measure"),
    # Requests for a person to complete a Questionnaire (SDC's Task); completed by the response that answers them.
    "Task": ServedType(TASK, READ_WRITE),
    "Communication": ServedType(COMMUNICATION, READ_ONLY, "the service records each message it sends about a Task"),
}
# What _revinclude may bring in beside the matches, by the type it brings (it needs the caller's grant for it).
REVINCLUDED_TYPES = {"Observation:derived-from": "Observation"}


def served(resource_type: str) -> ServedType:
    found = SERVED.get(resource_type)
    if found is None:
        raise NotFound(
            f"Resource type {resource_type!r} is not served here; supported: {', '.join(sorted(SERVED))}",
            code="not-supported",
        )
    return found


def load_row(session: Session, services: Services, kind: ResourceKind, resource_id: str, grant: Grant) -> ResourceRow:
    """A stored resource the grant may see, noted for the audit. 404 both when it is unknown and when it is outside
    the grant: a caller cannot tell another patient's resource from one that does not exist."""
    row = ResourceRepository(session, kind).get_row(resource_id)
    if row is None or not visible(session, services, kind, row, grant):
        raise NotFound(f"{kind.resource_type}/{resource_id} is not known")
    audit.note(kind.resource_type, row.id, kind.compartment(row) if kind.compartment else None)
    return row


def visible(session: Session, services: Services, kind: ResourceKind, row: ResourceRow, grant: Grant) -> bool:
    """Whether the grant lets its holder see this stored resource (its patient, its scope filter)."""
    try:
        check_row(session, kind, grant, row, services.settings.base_url)
    except Forbidden:
        return False
    return True


def read(services: Services, resource_type: str, resource_id: str, grant: Grant) -> StoredVersion:
    kind = served(resource_type).kind
    with services.db.read_session() as session:
        stored = ResourceRepository.stored(kind, load_row(session, services, kind, resource_id, grant))
    if stored.deleted:
        raise Gone(f"{resource_type}/{resource_id} was deleted (version {stored.version_id})")
    return stored


def vread(services: Services, resource_type: str, resource_id: str, version_id: str, grant: Grant) -> StoredVersion:
    kind = served(resource_type).kind
    if not version_id.isdigit():
        raise NotFound(f"{resource_type}/{resource_id} has no version {version_id!r}")
    with services.db.read_session() as session:
        load_row(session, services, kind, resource_id, grant)
        stored = ResourceRepository(session, kind).version(resource_id, int(version_id))
    if stored is None:
        raise NotFound(f"{resource_type}/{resource_id} has no version {version_id}")
    if stored.deleted:
        raise Gone(f"Version {version_id} of {resource_type}/{resource_id} is a deletion")
    return stored


@dataclass(frozen=True, slots=True)
class HistoryPage:
    versions: list[StoredVersion]  # newest first
    total: int
    next_page: int | None  # where the next page starts, or None


def history(
    services: Services,
    resource_type: str,
    resource_id: str | None,
    *,
    since: datetime | None,
    count: int,
    before_pk: int | None,
    grant: Grant,
) -> HistoryPage:
    """The versions of one resource (``resource_id``) or of every resource of the type the grant can see now."""
    kind = served(resource_type).kind
    with services.db.read_session() as session:
        within = None
        if resource_id is not None:
            load_row(session, services, kind, resource_id, grant)
        else:
            within = history_condition(kind, grant, services.settings.base_url, ResourceVersion.resource_id)
        versions, total, next_pk = ResourceRepository(session, kind).history(
            resource_id, since=since, count=count, before_pk=before_pk, within=within
        )
    return HistoryPage(versions, total, next_pk)


def parse_search(
    services: Services, resource_type: str, pairs: list[tuple[str, str]], *, strict: bool
) -> SearchRequest:
    settings = services.settings
    return parse_search_request(
        pairs,
        served(resource_type).kind.capabilities,
        base_url=settings.base_url,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
        strict=strict,
    )


def revincluded_types(request: SearchRequest) -> set[str]:
    """The types a search brings in with _revinclude: the caller needs a grant for each."""
    return {REVINCLUDED_TYPES[name] for name in request.revinclude if name in REVINCLUDED_TYPES}


@dataclass(frozen=True, slots=True)
class SearchResult:
    matches: list[tuple[str, bytes]]  # (id, stored JSON)
    total: int
    next_page: str | None
    previous_page: str | None
    included: list[tuple[str, str, bytes]] = field(default_factory=list)  # (type, id, JSON) from _include/_revinclude


def search(
    services: Services,
    resource_type: str,
    request: SearchRequest,
    grant: Grant,
    *,
    included_grants: Mapping[str, Grant] | None = None,
) -> SearchResult:
    """Run a search within the grant. ``included_grants``: the caller's grant for each of ``revincluded_types``."""
    kind = served(resource_type).kind
    restrict_search(kind, grant, request, services.settings.base_url)
    if grant.patient:
        audit.note_patient(grant.patient)
    with services.db.read_session() as session:
        if request.summary_count:
            return SearchResult([], store_search.count(session, kind, request), None, None)
        page = store_search.search(session, kind, request)
        included = _included(session, services, request, page.matches, grant, included_grants or {})
    for patient in page.patients:  # whose data was disclosed, not only what was asked for
        audit.note_patient(patient)
    return SearchResult(page.matches, page.total, page.next_page, page.previous_page, included)


def _included(
    session: Session,
    services: Services,
    request: SearchRequest,
    matches: list[tuple[str, bytes]],
    grant: Grant,
    included_grants: Mapping[str, Grant],
) -> list[tuple[str, str, bytes]]:
    if not matches or not (request.include or request.revinclude):
        return []
    found: list[tuple[str, str, bytes]] = []
    if "QuestionnaireResponse:questionnaire" in request.include:
        canonicals = {str(jsonio.loads_object(body).get("questionnaire", "")) for _, body in matches}
        seen: set[str] = set()
        for canonical in sorted(canonicals):
            row = resolve_questionnaire(session, canonical, services.settings.base_url)
            if row is not None and row.resource_json is not None and row.id not in seen:
                seen.add(row.id)
                found.append(("Questionnaire", row.id, row.resource_json.encode()))
    if "Observation:derived-from" in request.revinclude:
        _check_included(included_grants.get("Observation"), grant, "Observation")
        response_ids = [resource_id for resource_id, _ in matches]
        for obs_id, body in derived.observations_for_responses(session, response_ids):
            found.append(("Observation", obs_id, body.encode()))
    return found


def _check_included(included: Grant | None, grant: Grant, resource_type: str) -> None:
    """Included resources need their own permission; they share the matches' patient, nothing else."""
    if included is None or included.filters or (included.patient is not None and included.patient != grant.patient):
        raise Forbidden(f"The token's scopes do not allow including {resource_type} resources in this search")
