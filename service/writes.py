"""The steps writes share. Each write use case calls them in order, top to bottom, in its own transaction: they
never call back into the use case.

Every step that stores the resource a client wrote also records the request's AuditEvent in the same
transaction, so a write and its audit commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import audit
from service.auth.access import Grant
from service.fhir import jsonio
from service.fhir.errors import BadRequest, Conflict, FhirError, NotFound, PreconditionFailed, Unprocessable
from service.fhir.issues import Issue
from service.fhir.versions import StoredVersion
from service.resources import load_row, parse_search, visible
from service.services import Services
from service.store import search as store_search
from service.store.access import check_body, check_row, restrict_search
from service.store.kinds import ResourceKind
from service.store.models import ResourceRow
from service.store.repository import ResourceRepository, VersionConflict


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: StoredVersion
    created: bool
    issues: list[Issue] = field(default_factory=list)  # warnings found on the way (errors were raised)
    existing: bool = False  # a conditional or idempotent create found a stored resource: nothing was written


# before the transaction -----------------------------------------------------------------------------------


def check_update_id(kind: ResourceKind, resource_id: str, resource: Mapping[str, Any]) -> None:
    if resource.get("id") != resource_id:
        raise BadRequest(
            Issue(
                "error",
                "invalid",
                f"The resource id ({resource.get('id')!r}) must equal the id in the URL ({resource_id!r})",
                f"{kind.resource_type}.id",
            )
        )


def find_existing(services: Services, kind: ResourceKind, query: str, grant: Grant) -> StoredVersion | None:
    """The one stored resource a conditional-create query (or a business identifier) names, or None."""
    with services.db.read_session() as session:
        return match(session, services, kind, query, grant)


# inside the transaction ----------------------------------------------------------------------------------


def match(session: Session, services: Services, kind: ResourceKind, query: str, grant: Grant) -> StoredVersion | None:
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise BadRequest("If-None-Exist must be a search query, e.g. identifier=http://example.org|123")
    request = parse_search(services, kind.resource_type, pairs, strict=True)
    restrict_search(kind, grant, request, services.settings.base_url)
    request.count = 2
    page = store_search.search(session, kind, request)
    if page.total > 1:
        raise PreconditionFailed(
            f"If-None-Exist matched {page.total} {kind.resource_type} resources; it must match at most one"
        )
    if page.total == 1:
        return ResourceRepository(session, kind).current(page.matches[0][0])
    return None


def row_to_update(
    session: Session,
    services: Services,
    kind: ResourceKind,
    resource_id: str,
    grant: Grant,
    *,
    if_match: int | None,
) -> ResourceRow | None:
    """The stored row an update replaces (None: there is none, so the update creates it with the client's id).
    412 when If-Match names another version; 404 outside the grant, as for a read."""
    row = ResourceRepository(session, kind).get_row(resource_id)
    if row is None:
        if if_match is not None:
            raise PreconditionFailed(f"If-Match given but {kind.resource_type}/{resource_id} does not exist")
        return None
    if not visible(session, services, kind, row, grant):
        raise NotFound(f"{kind.resource_type}/{resource_id} is not known")
    if if_match is not None and if_match != row.version_id:
        raise PreconditionFailed(
            f"Version conflict: If-Match names version {if_match} but the current version of "
            f"{kind.resource_type}/{resource_id} is {row.version_id}"
        )
    return row


def row_to_delete(
    session: Session, services: Services, kind: ResourceKind, resource_id: str, grant: Grant
) -> ResourceRow:
    return load_row(session, services, kind, resource_id, grant)


def current_resource(row: ResourceRow) -> dict[str, Any] | None:
    """The row's current version as a dict (None once deleted)."""
    if row.deleted or row.resource_json is None:
        return None
    return jsonio.loads_object(row.resource_json.encode())


def insert(
    session: Session,
    services: Services,
    kind: ResourceKind,
    resource: Mapping[str, Any],
    grant: Grant,
    *,
    resource_id: str | None = None,
    columns: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[ResourceRow, StoredVersion]:
    """Store version 1 of the resource the client wrote, with its AuditEvent; refused (and rolled back) if what
    was written falls outside the grant (its patient, or its scope filter)."""
    ((row, stored),) = ResourceRepository(session, kind).create_many([(resource, resource_id, columns or {})], now=now)
    within_grant(session, services, kind, row, grant)
    audit_write(session, kind, row, stored, 201)
    return row, stored


def replace(
    session: Session,
    services: Services,
    kind: ResourceKind,
    row: ResourceRow,
    resource: Mapping[str, Any],
    grant: Grant,
    *,
    columns: Mapping[str, Any] | None = None,
) -> StoredVersion:
    """Store the client's new version of a row, with its AuditEvent; refused if it falls outside the grant."""
    stored = ResourceRepository(session, kind).update(row, resource, columns)
    within_grant(session, services, kind, row, grant)
    audit_write(session, kind, row, stored, 200)
    return stored


def within_grant(session: Session, services: Services, kind: ResourceKind, row: ResourceRow, grant: Grant) -> None:
    """What a client wrote must be something its grant lets it see: a scope filter such as
    ``system/QuestionnaireResponse.c?questionnaire=...`` applies to what is written, not only to what is read."""
    check_row(session, kind, grant, row, services.settings.base_url)


def delete(session: Session, kind: ResourceKind, row: ResourceRow) -> StoredVersion:
    """Delete a row (its history is kept), with its AuditEvent."""
    stored = ResourceRepository(session, kind).delete(row)
    audit_write(session, kind, row, stored, 200)
    return stored


def audit_write(session: Session, kind: ResourceKind, row: ResourceRow, stored: StoredVersion, status: int) -> None:
    """The current request's AuditEvent, naming the resource written, in the write's transaction."""
    audit.note(kind.resource_type, stored.id, kind.compartment(row) if kind.compartment else None)
    audit.write_in_transaction(session, status)


@contextmanager
def refusing_conflicts(kind: ResourceKind, *, lost_race: type[FhirError] = PreconditionFailed) -> Iterator[None]:
    """Conflicts the database detects, answered as FHIR says: a taken unique value (422), a lost race for the
    same version (412 for an update, which the client can retry with the new version; 409 for a delete)."""
    try:
        yield
    except VersionConflict as exc:
        raise lost_race(str(exc)) from None
    except IntegrityError as exc:
        raise Unprocessable(integrity_message(kind, exc), code="duplicate") from None


def integrity_message(kind: ResourceKind, exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "canonical" in text or ("url" in text and "version" in text):
        return "A Questionnaire with this url and version already exists; publish a new version instead"
    return f"The {kind.resource_type} conflicts with a stored one (a value that must be unique is taken)"


# whole writes of resources stored as sent ----------------------------------------------------------------


def create(
    services: Services,
    kind: ResourceKind,
    resource: Mapping[str, Any],
    grant: Grant,
    *,
    patient: str | None,
    if_none_exist: str | None = None,
    columns: Mapping[str, Any] | None = None,
) -> WriteResult:
    """Create a resource that is stored as sent (its checks done by the caller); If-None-Exist finds a stored one.
    ``patient``: whom it is about, for patient-scoped grants."""
    check_body(kind, grant, patient)
    if if_none_exist is not None and (found := find_existing(services, kind, if_none_exist, grant)) is not None:
        return WriteResult(found, created=False, existing=True)
    with refusing_conflicts(kind), services.db.transaction() as session:
        if if_none_exist is not None and (found := match(session, services, kind, if_none_exist, grant)) is not None:
            return WriteResult(found, created=False, existing=True)
        _, stored = insert(session, services, kind, resource, grant, columns=columns)
    return WriteResult(stored, created=True)


def update(
    services: Services,
    kind: ResourceKind,
    resource_id: str,
    resource: Mapping[str, Any],
    grant: Grant,
    *,
    patient: str | None,
    if_match: int | None,
    check: Callable[[], None] | None = None,
) -> WriteResult:
    """Update a resource that is stored as sent: a new version, or version 1 under the client's id when there is
    none (201). ``patient``: whom it is about, for patient-scoped grants; ``check``: the type's own checks, run
    once the id and the grant are known to fit."""
    check_update_id(kind, resource_id, resource)
    check_body(kind, grant, patient)
    if check is not None:
        check()
    with refusing_conflicts(kind), services.db.transaction() as session:
        row = row_to_update(session, services, kind, resource_id, grant, if_match=if_match)
        if row is None:
            _, stored = insert(session, services, kind, resource, grant, resource_id=resource_id)
            return WriteResult(stored, created=True)
        return WriteResult(replace(session, services, kind, row, resource, grant), created=False)


def delete_resource(services: Services, kind: ResourceKind, resource_id: str, grant: Grant) -> StoredVersion | None:
    """Delete a resource nothing else depends on; None when it was already deleted."""
    with refusing_conflicts(kind, lost_race=Conflict), services.db.transaction() as session:
        row = row_to_delete(session, services, kind, resource_id, grant)
        if row.deleted:
            return None
        return delete(session, kind, row)
