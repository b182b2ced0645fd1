"""The FHIR REST interactions as use cases: each owns its transaction; per-type business rules plug in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import audit
from service.auth.access import Grant
from service.auth.enforcement import check_body, check_row, history_condition, restrict_search
from service.config import Settings
from service.fhir.errors import (
    BadRequest,
    Conflict,
    Gone,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from service.fhir.issues import Issue
from service.fhir.jsonio import loads_object
from service.fhir.search import SearchRequest, parse_search
from service.store import search as store_search
from service.store.db import Database
from service.store.kinds import ResourceKind
from service.store.models import ResourceRow, ResourceVersion
from service.store.repository import ResourceRepository, StoredVersion, VersionConflict


@dataclass(slots=True)
class Prepared:
    """A resource ready to store, the warnings found on the way, and columns the rules resolved."""

    resource: dict[str, Any]
    issues: list[Issue] = field(default_factory=list)
    columns: dict[str, Any] = field(default_factory=dict)
    context: Any = None  # whatever the rules computed in prepare and need again after the write


class ResourceRules(Protocol):
    """Business rules of one resource type, run inside the write's transaction."""

    def prepare_early(self, session: Session, resource: dict[str, Any]) -> Prepared | None:
        """Preparation that needs no write transaction (pure checks on the body and look-ups of immutable data),
        done before the transaction begins so that writers hold the database's write lock only for their
        writes. None: prepare inside the transaction instead."""

    def prepare_create(self, session: Session, resource: dict[str, Any]) -> Prepared: ...

    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared: ...

    def check_delete(self, session: Session, row: ResourceRow) -> None: ...

    def after_write(self, session: Session, row: ResourceRow, stored: StoredVersion, prepared: Prepared) -> None:
        """Writes that belong to the same transaction (e.g. the Observations derived from a response)."""

    def after_delete(self, session: Session, row: ResourceRow) -> None: ...

    def identity_query(self, resource: dict[str, Any]) -> str | None:
        """A search that finds this same resource if it was stored before (idempotent create), or None."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: StoredVersion
    created: bool
    issues: list[Issue]
    existing: bool = False  # conditional create matched a stored resource: nothing was written


READ_ONLY = frozenset({"read", "vread", "history-instance", "history-type", "search-type"})
READ_WRITE = READ_ONLY | {"create", "update", "delete"}


class NoDerivedWrites:
    """Rules of a type whose writes touch nothing else and that has no natural identity to deduplicate on."""

    def prepare_early(self, session: Session, resource: dict[str, Any]) -> Prepared | None:
        return None

    def after_write(self, session: Session, row: ResourceRow, stored: StoredVersion, prepared: Prepared) -> None:
        return None

    def after_delete(self, session: Session, row: ResourceRow) -> None:
        return None

    def identity_query(self, resource: dict[str, Any]) -> str | None:
        return None


class ReadOnlyRules(NoDerivedWrites):
    """For resources the service derives itself (Observation, Provenance): clients only read them."""

    def prepare_create(self, session: Session, resource: dict[str, Any]) -> Prepared:
        raise AssertionError("read-only resource")  # the HTTP layer refuses writes before they get here

    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared:
        raise AssertionError("read-only resource")

    def check_delete(self, session: Session, row: ResourceRow) -> None:
        raise AssertionError("read-only resource")


class ResourceInteractions:
    """create, read, vread, update, delete, history and search for one resource type."""

    def __init__(
        self,
        db: Database,
        kind: ResourceKind,
        rules: ResourceRules,
        settings: Settings,
        *,
        allowed: frozenset[str] = READ_WRITE,
    ) -> None:
        self.db = db
        self.kind = kind
        self.rules = rules
        self.settings = settings
        self.allowed = allowed

    # reads --------------------------------------------------------------------------------------------

    def _loaded(self, session: Session, resource_id: str, grant: Grant) -> ResourceRow:
        row = ResourceRepository(session, self.kind).get_row(resource_id)
        if row is None:
            raise NotFound(f"{self.kind.resource_type}/{resource_id} is not known")
        check_row(session, self.kind, grant, row, self.settings.base_url)
        audit.note(self.kind.resource_type, row.id, self.kind.compartment(row) if self.kind.compartment else None)
        return row

    def read(self, resource_id: str, *, grant: Grant) -> StoredVersion:
        with self.db.read_session() as session:
            stored = ResourceRepository.stored(self.kind, self._loaded(session, resource_id, grant))
        if stored.deleted:
            raise Gone(f"{self.kind.resource_type}/{resource_id} was deleted (version {stored.version_id})")
        return stored

    def vread(self, resource_id: str, version_id: str, *, grant: Grant) -> StoredVersion:
        if not version_id.isdigit():
            raise NotFound(f"{self.kind.resource_type}/{resource_id} has no version {version_id!r}")
        with self.db.read_session() as session:
            self._loaded(session, resource_id, grant)
            stored = ResourceRepository(session, self.kind).version(resource_id, int(version_id))
        if stored is None:
            raise NotFound(f"{self.kind.resource_type}/{resource_id} has no version {version_id}")
        if stored.deleted:
            raise Gone(f"Version {version_id} of {self.kind.resource_type}/{resource_id} is a deletion")
        return stored

    def history(
        self, resource_id: str | None, *, since: Any, count: int, before_pk: int | None, grant: Grant
    ) -> tuple[list[StoredVersion], int, int | None]:
        with self.db.read_session() as session:
            repository = ResourceRepository(session, self.kind)
            within = None
            if resource_id is not None:
                self._loaded(session, resource_id, grant)
            else:
                within = history_condition(self.kind, grant, self.settings.base_url, ResourceVersion.resource_id)
            return repository.history(resource_id, since=since, count=count, before_pk=before_pk, within=within)

    def parse_search(self, pairs: list[tuple[str, str]], *, strict: bool) -> SearchRequest:
        return parse_search(
            pairs,
            self.kind.capabilities,
            base_url=self.settings.base_url,
            default_count=self.settings.default_page_size,
            max_count=self.settings.max_page_size,
            strict=strict,
        )

    def search(self, request: SearchRequest, *, grant: Grant) -> store_search.SearchPage:
        restrict_search(self.kind, grant, request, self.settings.base_url)
        if grant.patient:
            audit.note("Patient", grant.patient, grant.patient)
        with self.db.read_session() as session:
            if request.summary_count:
                total = store_search.count(session, self.kind, request)
                return store_search.SearchPage([], total, None, None)
            return store_search.search(session, self.kind, request)

    # writes -------------------------------------------------------------------------------------------

    def _audit_write(self, session: Session, row: ResourceRow, stored: StoredVersion, status: int) -> None:
        audit.note(self.kind.resource_type, stored.id, self.kind.compartment(row) if self.kind.compartment else None)
        audit.write_in_transaction(session, status)

    def create(self, resource: dict[str, Any], *, grant: Grant, if_none_exist: str | None = None) -> WriteResult:
        """Create; with a business identifier (or If-None-Exist) a repeat returns the stored resource instead."""
        check_body(self.kind, grant, resource)
        identity = self.rules.identity_query(resource)
        try:
            return self._create(resource, grant, if_none_exist or identity)
        except IntegrityError as exc:
            if identity is not None:
                # Another request stored the same identifier between our look-up and our insert.
                with self.db.read_session() as session:
                    match = self._conditional_match(session, identity, grant)
                if match is not None:
                    return WriteResult(match, created=False, issues=[], existing=True)
            raise Unprocessable(_integrity_message(self.kind, exc), code="duplicate") from None

    def _prepare_early(self, resource: dict[str, Any]) -> Prepared | None:
        with self.db.read_session() as session:
            return self.rules.prepare_early(session, resource)

    def _create(self, resource: dict[str, Any], grant: Grant, match_query: str | None) -> WriteResult:
        if match_query is not None:
            # A retry finds what it stored before, without the work of preparing it again.
            with self.db.read_session() as session:
                match = self._conditional_match(session, match_query, grant)
            if match is not None:
                return WriteResult(match, created=False, issues=[], existing=True)
        early = self._prepare_early(resource)
        with self.db.transaction() as session:
            if match_query is not None:
                match = self._conditional_match(session, match_query, grant)
                if match is not None:
                    return WriteResult(match, created=False, issues=[], existing=True)
            repository = ResourceRepository(session, self.kind)
            prepared = early or self.rules.prepare_create(session, resource)
            ((row, stored),) = repository.create_many([(prepared.resource, None, prepared.columns)])
            self.rules.after_write(session, row, stored, prepared)
            self._audit_write(session, row, stored, 201)
            return WriteResult(stored, created=True, issues=prepared.issues)

    def update(self, resource_id: str, resource: dict[str, Any], *, if_match: int | None, grant: Grant) -> WriteResult:
        if resource.get("id") != resource_id:
            raise BadRequest(
                Issue(
                    "error",
                    "invalid",
                    f"The resource id ({resource.get('id')!r}) must equal the id in the URL ({resource_id!r})",
                    f"{self.kind.resource_type}.id",
                )
            )
        check_body(self.kind, grant, resource)
        early = self._prepare_early(resource)
        try:
            with self.db.transaction() as session:
                repository = ResourceRepository(session, self.kind)
                row = repository.get_row(resource_id)
                if row is None:
                    if if_match is not None:
                        raise PreconditionFailed(
                            f"If-Match given but {self.kind.resource_type}/{resource_id} does not exist"
                        )
                    # update-as-create: the client chose the id.
                    prepared = early or self.rules.prepare_create(session, resource)
                    ((new_row, stored),) = repository.create_many([(prepared.resource, resource_id, prepared.columns)])
                    self.rules.after_write(session, new_row, stored, prepared)
                    self._audit_write(session, new_row, stored, 201)
                    return WriteResult(stored, created=True, issues=prepared.issues)
                check_row(session, self.kind, grant, row, self.settings.base_url)
                if if_match is not None and if_match != row.version_id:
                    raise PreconditionFailed(
                        f"Version conflict: If-Match names version {if_match} but the current version of "
                        f"{self.kind.resource_type}/{resource_id} is {row.version_id}"
                    )
                current = None if row.deleted or row.resource_json is None else _loads(row.resource_json)
                prepared = early or self.rules.prepare_update(session, row, current, resource)
                stored = repository.update(row, prepared.resource)
                _apply_columns(row, prepared.columns)
                session.flush()
                self.rules.after_write(session, row, stored, prepared)
                self._audit_write(session, row, stored, 200)
                return WriteResult(stored, created=row.version_id == 1, issues=prepared.issues)
        except VersionConflict as exc:
            raise PreconditionFailed(str(exc)) from None
        except IntegrityError as exc:
            raise Unprocessable(_integrity_message(self.kind, exc), code="duplicate") from None

    def delete(self, resource_id: str, *, grant: Grant) -> StoredVersion | None:
        """Delete; returns the deletion version, or None when it was already deleted."""
        try:
            with self.db.transaction() as session:
                repository = ResourceRepository(session, self.kind)
                row = self._loaded(session, resource_id, grant)
                if row.deleted:
                    return None
                self.rules.check_delete(session, row)
                stored = repository.delete(row)
                self.rules.after_delete(session, row)
                self._audit_write(session, row, stored, 200)
                return stored
        except VersionConflict as exc:
            raise Conflict(str(exc)) from None

    def _conditional_match(self, session: Session, query: str, grant: Grant) -> StoredVersion | None:
        pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        if not pairs:
            raise BadRequest("If-None-Exist must be a search query, e.g. identifier=http://example.org|123")
        request = self.parse_search(pairs, strict=True)
        restrict_search(self.kind, grant, request, self.settings.base_url)
        request.count = 2
        page = store_search.search(session, self.kind, request)
        if page.total > 1:
            raise PreconditionFailed(
                f"If-None-Exist matched {page.total} {self.kind.resource_type} resources; it must match at most one"
            )
        if page.total == 1:
            return ResourceRepository(session, self.kind).current(page.matches[0][0])
        return None


def _loads(text: str) -> dict[str, Any]:
    return loads_object(text.encode())


def _apply_columns(row: ResourceRow, columns: Mapping[str, Any]) -> None:
    for name, value in columns.items():
        setattr(row, name, value)


def _integrity_message(kind: ResourceKind, exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "canonical" in text or ("url" in text and "version" in text):
        return "A Questionnaire with this url and version already exists; publish a new version instead"
    return f"The {kind.resource_type} conflicts with a stored one (a value that must be unique is taken)"
