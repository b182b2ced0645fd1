"""Versioned storage of resources: create, update, delete, read, vread and history, every version kept."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Select, Table, and_, bindparam, func, insert, inspect, or_, select, update
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.sql.dml import ReturningInsert

from service.fhir import jsonio
from service.fhir.dates import instant_text, utcnow
from service.fhir.versions import StoredVersion
from service.store.kinds import ResourceKind
from service.store.models import ResourceRow, ResourceVersion


class VersionConflict(Exception):
    """The row changed since it was read (another writer won)."""


def new_id() -> str:
    return str(uuid.uuid4())


def _stamp(resource: Mapping[str, Any], resource_id: str, version_id: int, now: datetime) -> dict[str, Any]:
    stamped = dict(resource)
    stamped["id"] = resource_id
    meta = dict(stamped.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = instant_text(now)
    stamped["meta"] = meta
    # resourceType first, as FHIR JSON conventionally reads.
    return {"resourceType": stamped.pop("resourceType"), **stamped}


def new_row(
    kind: ResourceKind,
    resource: Mapping[str, Any],
    resource_id: str | None,
    columns: Mapping[str, Any],
    now: datetime,
) -> tuple[ResourceRow, StoredVersion]:
    """Version 1 of a new resource as a row not attached to any session: stamped, indexed, its JSON serialised.
    No database work: a use case can make it before its transaction begins and insert it inside."""
    resource_id = resource_id or new_id()
    stamped = _stamp(resource, resource_id, 1, now)
    row = kind.model(id=resource_id, version_id=1, last_updated=now, deleted=False)
    kind.index(row, stamped)
    for name, value in columns.items():
        setattr(row, name, value)
    body = jsonio.dumps(stamped)
    row.resource_json = body.decode()
    return row, StoredVersion(kind.resource_type, resource_id, 1, now, False, body, "POST")


class ResourceRepository:
    """All storage of one resource type within one session (the caller owns the transaction)."""

    def __init__(self, session: Session, kind: ResourceKind) -> None:
        self.session = session
        self.kind = kind
        self.model = kind.model

    # reads --------------------------------------------------------------------------------------------

    def get_row(self, resource_id: str) -> ResourceRow | None:
        found: ResourceRow | None = self.session.scalars(_row_by_id(self.model), {"id": resource_id}).one_or_none()
        return found

    @staticmethod
    def stored(kind: ResourceKind, row: ResourceRow) -> StoredVersion:
        """The current version of a loaded row, served as stored (never parsed and serialised again)."""
        deleted = row.deleted or row.resource_json is None
        body = None if deleted or row.resource_json is None else row.resource_json.encode()
        return StoredVersion(kind.resource_type, row.id, row.version_id, row.last_updated, row.deleted, body)

    def current(self, resource_id: str) -> StoredVersion | None:
        row = self.session.execute(
            select(
                self.model.id,
                self.model.version_id,
                self.model.last_updated,
                self.model.deleted,
                self.model.resource_json,
            ).where(self.model.id == resource_id)
        ).one_or_none()
        if row is None:
            return None
        return StoredVersion(
            self.kind.resource_type,
            row.id,
            row.version_id,
            row.last_updated,
            row.deleted,
            None if row.deleted or row.resource_json is None else row.resource_json.encode(),
        )

    def version(self, resource_id: str, version_id: int) -> StoredVersion | None:
        row = self.session.scalars(
            select(ResourceVersion).where(
                ResourceVersion.resource_type == self.kind.resource_type,
                ResourceVersion.resource_id == resource_id,
                ResourceVersion.version_id == version_id,
            )
        ).one_or_none()
        return _from_history(row) if row else None

    def history(
        self,
        resource_id: str | None,
        *,
        since: datetime | None,
        count: int,
        before_pk: int | None = None,
        within: ColumnElement[bool] | None = None,
    ) -> tuple[list[StoredVersion], int, int | None]:
        """Newest first; returns (page, total, pk to continue from or None). ``within`` narrows the versions."""
        conditions: list[ColumnElement[bool]] = [ResourceVersion.resource_type == self.kind.resource_type]
        if within is not None:
            conditions.append(within)
        if resource_id is not None:
            conditions.append(ResourceVersion.resource_id == resource_id)
        if since is not None:
            conditions.append(ResourceVersion.last_updated >= since)
        total = self.session.scalar(select(func.count()).select_from(ResourceVersion).where(*conditions)) or 0
        if before_pk is not None:
            conditions.append(ResourceVersion.pk < before_pk)
        rows = list(
            self.session.scalars(
                select(ResourceVersion).where(*conditions).order_by(ResourceVersion.pk.desc()).limit(count + 1)
            )
        )
        more = len(rows) > count
        rows = rows[:count]
        return [_from_history(row) for row in rows], total, rows[-1].pk if more and rows else None

    # writes -------------------------------------------------------------------------------------------

    def create_many(
        self, items: Sequence[tuple[Mapping[str, Any], str | None, Mapping[str, Any]]], *, now: datetime | None = None
    ) -> list[tuple[ResourceRow, StoredVersion]]:
        """Store version 1 of several new resources, given as (resource, id or None, extra column values), with
        one INSERT per table (rows, their search-index child rows, history) rather than through the unit of
        work. ``now`` stamps them (default: the current time). The rows returned are not attached to the session:
        read them, do not change them."""
        if not items:
            return []
        now = now or utcnow()
        created = [new_row(self.kind, resource, resource_id, columns, now) for resource, resource_id, columns in items]
        self.insert(created)
        return created

    def insert(self, created: Sequence[tuple[ResourceRow, StoredVersion]]) -> None:
        """Insert rows made by ``new_row`` (e.g. before the transaction began), one INSERT per table."""
        if not created:
            return
        rows = [row for row, _ in created]
        plan = _insert_plan(self.model)
        connection = self.session.connection()  # Core statements: no unit-of-work bookkeeping
        values = [plan.values(row) for row in rows]
        pks = connection.execute(plan.returning_pk, values).scalars()
        for row, pk in zip(rows, pks, strict=True):
            row.pk = pk
        for child in plan.children:
            # The search-index child rows (Observation tokens, Provenance targets), linked by the parent's key.
            child_values = []
            for row in rows:
                parent_key = getattr(row, child.parent_column)
                for child_row in getattr(row, child.relationship):
                    entry = child.plan.values(child_row)
                    entry[child.child_column] = parent_key
                    child_values.append(entry)
            if child_values:
                connection.execute(child.plan.insert, child_values)
        if self.kind.versioned:
            connection.execute(
                _HISTORY_INSERT,
                [
                    {
                        "resource_type": self.kind.resource_type,
                        "resource_id": version.id,
                        "version_id": 1,
                        "last_updated": version.last_updated,
                        "method": "POST",
                        "resource_json": row.resource_json,
                    }
                    for row, version in created
                ],
            )

    def append(self, resource: Mapping[str, Any]) -> StoredVersion:
        """Store an append-only record (an AuditEvent: unversioned, with its index rows), outside the unit of work:
        the cheapest write there is, for what every request writes."""
        assert not self.kind.versioned, "versioned resources keep history: use create_many"
        row, version = new_row(self.kind, resource, None, {}, utcnow())
        self.insert([(row, version)])
        return version

    def update(
        self, row: ResourceRow, resource: Mapping[str, Any], columns: Mapping[str, Any] | None = None
    ) -> StoredVersion:
        """Store a new version of a loaded row (``columns``: extra column values the caller worked out)."""
        now = max(utcnow(), row.last_updated)
        version_id = row.version_id + 1
        stamped = _stamp(resource, row.id, version_id, now)
        body = jsonio.dumps(stamped)
        self._bump(row, version_id, now, deleted=False)
        row.resource_json = body.decode()
        self.kind.index(row, stamped)
        for name, value in (columns or {}).items():
            setattr(row, name, value)
        self._record(row.id, version_id, now, "PUT", body)
        self.session.flush()
        return StoredVersion(self.kind.resource_type, row.id, version_id, now, False, body, "PUT")

    def delete(self, row: ResourceRow) -> StoredVersion:
        now = max(utcnow(), row.last_updated)
        version_id = row.version_id + 1
        self._bump(row, version_id, now, deleted=True)
        self._record(row.id, version_id, now, "DELETE", None)
        self.session.flush()
        return StoredVersion(self.kind.resource_type, row.id, version_id, now, True, None, "DELETE")

    def _bump(self, row: ResourceRow, version_id: int, now: datetime, *, deleted: bool) -> None:
        # Compare-and-set on the version: a concurrent writer that got there first makes this a conflict.
        result = self.session.execute(
            update(self.model)
            .where(self.model.pk == row.pk, self.model.version_id == row.version_id)
            .values(version_id=version_id, last_updated=now, deleted=deleted)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise VersionConflict(f"{self.kind.resource_type}/{row.id} was changed by another request")
        row.version_id, row.last_updated, row.deleted = version_id, now, deleted

    def _record(self, resource_id: str, version_id: int, now: datetime, method: str, body: bytes | None) -> None:
        self.session.add(
            ResourceVersion(
                resource_type=self.kind.resource_type,
                resource_id=resource_id,
                version_id=version_id,
                last_updated=now,
                method=method,
                resource_json=body.decode() if body is not None else None,
            )
        )


@dataclass(frozen=True, slots=True)
class _InsertPlan:
    """How rows of one mapped class are inserted with Core statements, worked out once per class."""

    keys: tuple[str, ...]  # the column attributes, the generated key left out
    insert: Insert
    returning_pk: ReturningInsert[int]
    children: tuple[_ChildInsert, ...]

    def values(self, row: Any) -> dict[str, Any]:
        return {key: getattr(row, key) for key in self.keys}


@dataclass(frozen=True, slots=True)
class _ChildInsert:
    relationship: str
    parent_column: str
    child_column: str
    plan: _InsertPlan


@functools.cache
def _row_by_id(model: type[ResourceRow]) -> Select[ResourceRow]:
    """The row with a given id (bound as ``id``), built once per class. Child rows (search tokens) load only if
    used: a read needs the row alone."""
    return select(model).options(lazyload("*")).where(model.id == bindparam("id"))


@functools.cache
def _insert_plan(model: type[Any]) -> _InsertPlan:
    mapper = inspect(model)
    table = cast(Table, mapper.local_table)
    children = []
    for relationship in mapper.relationships:
        (parent_column, child_column), *_ = relationship.synchronize_pairs
        children.append(
            _ChildInsert(
                relationship.key,
                str(parent_column.key),
                str(child_column.key),
                _insert_plan(relationship.mapper.class_),
            )
        )
    return _InsertPlan(
        keys=tuple(str(column.key) for column in mapper.column_attrs if column.key != "pk"),
        insert=insert(table),
        returning_pk=insert(table).returning(table.c.pk, sort_by_parameter_order=True),
        children=tuple(children),
    )


_HISTORY_INSERT = insert(cast(Table, ResourceVersion.__table__))


def _from_history(row: ResourceVersion) -> StoredVersion:
    return StoredVersion(
        row.resource_type,
        row.resource_id,
        row.version_id,
        row.last_updated,
        row.method == "DELETE",
        row.resource_json.encode() if row.resource_json is not None else None,
        row.method,
    )


def keyset_after(columns: Sequence[tuple[Any, bool]], values: Sequence[Any], *, forward: bool) -> ColumnElement[bool]:
    """Rows strictly after (forward) or before the given sort-key values, for mixed sort directions."""
    alternatives = []
    for position, (column, descending) in enumerate(columns):
        later = (column < values[position]) if descending == forward else (column > values[position])
        equal_prefix = [columns[i][0] == values[i] for i in range(position)]
        alternatives.append(and_(*equal_prefix, later))
    return or_(*alternatives)
