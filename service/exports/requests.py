"""Bulk Data export requests (FHIR Bulk Data Access 2.0): kick-off, status and manifest, cancel, and file access;
the worker runs them (``service.exports.runner``).

What ``_since`` guarantees. An export answers for one instant, its ``transactionTime``: it contains every
resource whose current version has ``since < meta.lastUpdated <= transactionTime`` (no ``_since``: every
one up to that instant). The worker sets ``transactionTime`` to the moment it starts minus a safety margin
(PROMS_EXPORT_SINCE_MARGIN_SECONDS), truncated to the millisecond that ``meta.lastUpdated`` and
``transactionTime`` are written with. A write stamps ``lastUpdated`` before it commits, so a version
committed up to that margin after its stamp is still in the export whose window holds its stamp; one
stamped inside the margin belongs to the next export's window. Pulling with ``_since`` = the previous
manifest's ``transactionTime`` therefore misses nothing and repeats nothing, as long as no write commits
more than the margin after it stamped (writes here take milliseconds). A resource changed while an export
runs is left to the next export (its new version is stamped after ``transactionTime``). Deletions are not
reported.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement

from service.auth.access import Grant
from service.auth.delegated import BACKEND_CONTEXTS, Owner, read_grant
from service.auth.scopes import parse_scopes
from service.config import Settings
from service.fhir.dates import InvalidDate, date_range, instant_text, utcnow
from service.fhir.errors import BadRequest, Forbidden, NotFound, TooManyRequests
from service.fhir.search import SearchRequest
from service.services import Services
from service.store import exports as store
from service.store import search as store_search
from service.store.access import restrict_search
from service.store.kinds import (
    FLAG,
    GROUP,
    OBSERVATION,
    PROVENANCE,
    QUESTIONNAIRE,
    QUESTIONNAIRE_RESPONSE,
    ResourceKind,
)
from service.store.models import ExportJob
from service.store.repository import ResourceRepository

log = logging.getLogger("proms.export")

EXPORTABLE: dict[str, ResourceKind] = {
    kind.resource_type: kind for kind in (QUESTIONNAIRE_RESPONSE, OBSERVATION, QUESTIONNAIRE, PROVENANCE, FLAG)
}
# The types in a patient's compartment as the service stores them (what Patient- and Group-level exports hold).
COMPARTMENT_TYPES = ("QuestionnaireResponse", "Observation", "Flag")
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = (NDJSON, "application/ndjson", "ndjson")
UNSUPPORTED_PARAMETERS = ("_typeFilter", "_elements", "includeAssociatedData", "patient", "_until", "organizeOutputBy")


@dataclass(frozen=True, slots=True)
class ExportStatus:
    """What a status poll answers: still running (with progress), or finished (with the manifest)."""

    done: bool
    progress: str = ""
    manifest: dict[str, Any] | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ExportDownload:
    """One file of a finished export, to be sent: its size, and its bytes read from the database chunk by chunk."""

    size_bytes: int
    chunks: Iterator[bytes]


def floor_millisecond(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def transaction_time(settings: Settings, now: datetime) -> datetime:
    return floor_millisecond(now - timedelta(seconds=settings.export_since_margin_seconds))


def export_conditions(
    kind: ResourceKind, grant: Grant, job: ExportJob, group_pk: int | None, base_url: str
) -> list[ColumnElement[bool]]:
    """What one type's export selects: the caller's scope filters, the compartment, and the time window."""
    request = SearchRequest()
    restrict_search(kind, grant, request, base_url)
    model = kind.model
    conditions = store_search.conditions_for(kind, request)
    assert job.transaction_time is not None
    conditions.append(model.last_updated <= job.transaction_time)
    if job.since is not None:
        conditions.append(model.last_updated > job.since)
    if job.level in ("patient", "group"):
        subject_type = getattr(model, "subject_type")  # noqa: B009 - compartment types all have a subject
        subject_id = getattr(model, "subject_id")  # noqa: B009
        conditions.append(subject_type == "Patient")
        if group_pk is not None:
            conditions.append(subject_id.in_(store.group_members(group_pk)))
        else:
            conditions.append(subject_id.is_not(None))
    return conditions


# kick-off -------------------------------------------------------------------------------------------------


def kick_off(
    services: Services,
    *,
    level: str,
    group_id: str | None,
    parameters: Sequence[tuple[str, str]],
    respond_async: bool,
    grant: Grant,
    request_url: str,
) -> str:
    """Queue an export; its id. Everything that can be refused is refused here, before anything runs."""
    if not respond_async:
        raise BadRequest("Bulk export is asynchronous: send the header 'Prefer: respond-async'")
    owner = Owner.of(grant)
    backend = owner.open or any(scope.context in BACKEND_CONTEXTS for scope in parse_scopes(owner.scopes))
    if grant.patient is not None or not backend:
        raise Forbidden("Bulk export is for backend services (system/ or user/ scopes): a patient-scoped token "
                        "cannot export")  # fmt: skip
    since, types = _parameters(level, parameters)
    allowed = [t for t in types or _default_types(level) if read_grant(owner, t, BACKEND_CONTEXTS)]
    if types:
        refused = [t for t in types if t not in allowed]
        if refused:
            raise Forbidden(
                f"The token's scopes do not allow exporting {', '.join(refused)} (system/ or user/ read scopes "
                "are needed)"
            )
    if not allowed:
        raise Forbidden("The token's scopes allow exporting none of the exportable types (system/*.rs, ...)")
    with services.db.transaction() as session:
        if level == "group":
            assert group_id is not None
            if read_grant(owner, "Group", BACKEND_CONTEXTS) is None:
                raise Forbidden("The token's scopes do not allow reading Group resources (system/Group.rs)")
            row = ResourceRepository(session, GROUP).get_row(group_id)
            if row is None or row.deleted:
                raise NotFound(f"Group/{group_id} is not known")
        job_id = str(uuid.uuid4())
        store.add_job(
            session,
            ExportJob(
                id=job_id,
                status="queued",
                level=level,
                group_id=group_id,
                types=",".join(allowed),
                since=since,
                request_url=request_url,
                owner_client_id=owner.client_id,
                owner_json=owner.to_json(),
                created_at=utcnow(),
                exported=0,
            ),
        )
    return job_id


def _default_types(level: str) -> Sequence[str]:
    return list(EXPORTABLE) if level == "system" else COMPARTMENT_TYPES


def _parameters(level: str, parameters: Sequence[tuple[str, str]]) -> tuple[datetime | None, list[str]]:
    since: datetime | None = None
    types: list[str] = []
    for name, value in parameters:
        if name == "_outputFormat":
            if value not in OUTPUT_FORMATS:
                raise BadRequest(f"_outputFormat {value!r} is not supported; use {NDJSON}", code="not-supported")
        elif name == "_since":
            try:
                since = date_range(value)[0]
            except InvalidDate as exc:
                raise BadRequest(f"_since: {exc}", code="value") from None
        elif name == "_type":
            for resource_type in (part.strip() for part in value.split(",")):
                allowed = _default_types(level)
                if resource_type not in allowed:
                    raise BadRequest(
                        f"_type {resource_type!r} cannot be exported here; exportable: {', '.join(allowed)}",
                        code="not-supported",
                    )
                if resource_type not in types:
                    types.append(resource_type)
        elif name in UNSUPPORTED_PARAMETERS:
            raise BadRequest(f"The export parameter {name} is not supported", code="not-supported")
    return since, types


# status, manifest, cancel, files ------------------------------------------------------------------------


def _owned(job: ExportJob | None, job_id: str, grant: Grant) -> ExportJob:
    if job is None:
        raise NotFound(f"There is no export {job_id} (finished exports are removed after their retention)")
    if grant.patient is not None or not Owner.from_json(job.owner_json).same_caller(grant):
        raise NotFound(f"There is no export {job_id} (finished exports are removed after their retention)")
    return job


def export_status(services: Services, job_id: str, grant: Grant) -> ExportStatus:
    """$export-status: still running (polled too often: 429), or the manifest."""
    settings = services.settings
    now = utcnow()
    with services.db.transaction() as session:
        job = _owned(store.job_by_id(session, job_id), job_id, grant)
        if job.status in store.IN_PROGRESS:
            polled = job.last_polled_at
            if polled is not None and (now - polled).total_seconds() < settings.export_poll_seconds:
                raise TooManyRequests(
                    f"Polled too often; wait {retry_after(settings)} s between status requests",
                    headers={"Retry-After": str(retry_after(settings))},
                )
            store.note_poll(session, job.pk, now)
            if job.status == "queued":
                return ExportStatus(False, "queued, waiting for a worker")
            return ExportStatus(False, f"in progress: {job.exported} resources exported")
        files = store.files_of(session, job.pk)
        return ExportStatus(True, manifest=_manifest(settings, job, files), expires_at=job.expires_at)


def retry_after(settings: Settings) -> int:
    return max(1, round(settings.export_poll_seconds + 0.49))


def _manifest(settings: Settings, job: ExportJob, files: Sequence[Any]) -> dict[str, Any]:
    base = settings.base_url
    assert job.transaction_time is not None
    return {
        "transactionTime": instant_text(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": f.resource_type, "url": f"{base}/$export-file/{job.id}/{f.resource_type}/{f.part}.ndjson",
             "count": f.count}
            for f in files if f.kind == "output"
        ],
        "error": [
            {"type": "OperationOutcome", "url": f"{base}/$export-error/{job.id}/{f.part}.ndjson"}
            for f in files if f.kind == "error"
        ],
    }  # fmt: skip


def cancel_export(services: Services, job_id: str, grant: Grant) -> None:
    """Cancel a running export or delete a finished one: its record, files and chunks go at once."""
    with services.db.transaction() as session:
        job = _owned(store.job_by_id(session, job_id), job_id, grant)
        # A worker still writing notices at its next chunk that the job is gone, and stores nothing more.
        store.delete_job(session, job.pk)


def export_file(
    services: Services, job_id: str, kind: str, resource_type: str, part: int, grant: Grant
) -> ExportDownload:
    """One file of a finished export, if this caller may read it. Any node serves it: it is in the database."""
    with services.db.read_session() as session:
        job = _owned(store.job_by_id(session, job_id), job_id, grant)
        found = store.file_of(session, job.pk, kind, resource_type, part)  # recorded only once the export finished
    if found is None:
        raise NotFound(f"Export {job_id} has no such file")
    if kind == "output":
        # The token used now must still allow what the export was started with.
        owner = Owner.from_json(job.owner_json)
        then = read_grant(owner, resource_type, BACKEND_CONTEXTS)
        now = read_grant(Owner.of(grant), resource_type, BACKEND_CONTEXTS)
        if then is None or now is None or (not now.unrestricted and now.filters != then.filters):
            raise Forbidden(f"The token's scopes do not allow reading the exported {resource_type} resources")
    return ExportDownload(found.size_bytes, _chunks(services, job.pk, job_id, resource_type, part, found.size_bytes))


def _chunks(services: Services, job_pk: int, job_id: str, resource_type: str, part: int, size: int) -> Iterator[bytes]:
    """A file's bytes, one chunk per short read (memory stays flat whatever the file's size)."""
    seq, sent = -1, 0
    while True:
        with services.db.read_session() as session:
            found = store.next_chunk(session, job_pk, resource_type, part, after=seq)
        if found is None:
            break
        seq, data = found
        sent += len(data)
        yield data
    if sent != size:
        # Deleted while being sent (cancelled, or expired): the client sees fewer bytes than Content-Length.
        log.warning("export file cut short", extra={"export": job_id, "type": resource_type, "part": part})
