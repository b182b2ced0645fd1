"""Running a bulk export in the worker: each type streamed from the database in chunks into ndjson files, which
are stored back in the database in chunks of PROMS_EXPORT_CHUNK_BYTES.

Memory stays flat whatever the size: rows are read in keyset-paged chunks of stored JSON, and the bytes written
out are cut into chunks that are stored as they fill. Each round of chunks is stored in the transaction that
renews the claim on the job, which is also when a cancellation (the job's record deleted), a takeover by another
worker (the claim lapsed) or a stop request is noticed: a worker that lost its claim stores nothing more. A file
becomes visible (in the manifest, and for download) only when the export finishes and records its files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson
from sqlalchemy import ColumnElement
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from service.auth.delegated import BACKEND_CONTEXTS, Owner, read_grant
from service.exports.requests import EXPORTABLE, export_conditions, transaction_time
from service.fhir.dates import utcnow
from service.fhir.errors import DatabaseUnavailable, operation_outcome
from service.fhir.issues import Issue
from service.observability import WorkerMetrics
from service.services import Services
from service.store import exports as store
from service.store.kinds import GROUP
from service.store.models import ExportJob, ResourceRow
from service.store.repository import ResourceRepository

log = logging.getLogger("proms.export")


class Cancelled(Exception):
    """The export's record is gone (cancelled by its client) or another worker owns it now."""


class NdjsonFiles:
    """One type's output: parts 1, 2 ... each kept under the size limit, cut into chunks to be stored."""

    def __init__(self, resource_type: str, max_bytes: int, chunk_bytes: int, kind: str = "output") -> None:
        self.resource_type = resource_type
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.kind = kind
        self.records: list[store.FileRecord] = []
        self._pending: list[store.ChunkRecord] = []  # cut, not yet stored
        self._buffer = bytearray()
        self._part = 0  # the part being written (0: none open)
        self._seq = 0
        self._count = 0
        self._size = 0

    def write(self, line: bytes) -> None:
        if self._part and self._count and self._size + len(line) + 1 > self.max_bytes:
            self._close_part()
        if not self._part:
            self._part, self._seq = len(self.records) + 1, 0
        self._buffer += line
        self._buffer += b"\n"
        self._count += 1
        self._size += len(line) + 1
        while len(self._buffer) >= self.chunk_bytes:
            self._cut(self.chunk_bytes)

    def _cut(self, size: int) -> None:
        self._pending.append(store.ChunkRecord(self.resource_type, self._part, self._seq, bytes(self._buffer[:size])))
        del self._buffer[:size]
        self._seq += 1

    def _close_part(self) -> None:
        if self._buffer:
            self._cut(len(self._buffer))
        self.records.append(store.FileRecord(self.kind, self.resource_type, self._part, self._count, self._size))
        self._part = self._count = self._size = 0

    def close(self) -> list[store.FileRecord]:
        """End the part being written; every file of this output (their last chunks are then pending)."""
        if self._part:
            self._close_part()
        return self.records

    def take_chunks(self) -> list[store.ChunkRecord]:
        """The chunks cut since the last call, to be stored now."""
        chunks, self._pending = self._pending, []
        return chunks


class Exporter:
    """One worker's export runs: claim a queued export, stream it out into stored chunks, record its files."""

    def __init__(self, services: Services, worker_id: str, metrics: WorkerMetrics | None = None) -> None:
        self.db = services.db
        self.settings = services.settings
        self.worker_id = worker_id
        self.metrics = metrics or WorkerMetrics()

    def run_next(self, stop: threading.Event) -> bool:
        """Claim one export and run it; False when none was waiting."""
        now = utcnow()
        with self.db.transaction() as session:
            # A job taken over from a dead worker starts again from the beginning: the claim drops its chunks.
            job = store.claim_job(
                session,
                now=now,
                owner=self.worker_id,
                lease_seconds=self.settings.worker_lease_seconds,
                transaction_time=transaction_time(self.settings, now),
            )
        if job is None:
            return False
        self.run(job, stop)
        return True

    def run(self, job: ExportJob, stop: threading.Event) -> None:
        log.info("export started", extra={"export": job.id, "types": job.types})
        try:
            files, problems = self._export_types(job, stop)
            if stop.is_set():
                raise Cancelled()
        except Cancelled:
            self._abandon(job, release=stop.is_set())
            return
        except (DBAPIError, DatabaseUnavailable):
            log.warning("database unavailable during an export; it will be retried", extra={"export": job.id})
            self._abandon(job, release=True)
            return
        errors = self._files("OperationOutcome", "error")
        for problem in problems:
            errors.write(orjson.dumps(operation_outcome([Issue("error", "exception", problem)])))
        files += errors.close()
        chunks = errors.take_chunks()
        now = utcnow()
        expires = now + timedelta(hours=self.settings.export_retention_hours)
        with self.db.transaction() as session:
            finished = store.finish(
                session,
                job.pk,
                owner=self.worker_id,
                now=now,
                expires_at=expires,
                files=files,
                error="; ".join(problems) or None,
            )
            if finished:
                store.add_chunks(session, job.pk, chunks)
        if not finished:
            log.info("export abandoned", extra={"export": job.id, "released": False})
            return
        self.metrics.export_bytes.inc(sum(len(chunk.data) for chunk in chunks))
        log.info("export finished", extra={"export": job.id, "files": len(files), "problems": len(problems)})

    def _files(self, resource_type: str, kind: str = "output") -> NdjsonFiles:
        settings = self.settings
        return NdjsonFiles(resource_type, settings.export_file_max_bytes, settings.export_chunk_bytes, kind)

    def _export_types(self, job: ExportJob, stop: threading.Event) -> tuple[list[store.FileRecord], list[str]]:
        owner = Owner.from_json(job.owner_json)
        group_pk = None
        if job.level == "group":
            with self.db.read_session() as session:
                group = ResourceRepository(session, GROUP).get_row(str(job.group_id))
            if group is None or group.deleted:
                return [], [f"Group/{job.group_id} no longer exists"]
            group_pk = group.pk
        files: list[store.FileRecord] = []
        problems: list[str] = []
        exported = 0
        for resource_type in job.types.split(","):
            grant = read_grant(owner, resource_type, BACKEND_CONTEXTS)
            if grant is None:
                problems.append(f"{resource_type}: the client's scopes no longer allow exporting it")
                continue
            output = self._files(resource_type)
            try:
                kind = EXPORTABLE[resource_type]
                conditions = export_conditions(kind, grant, job, group_pk, self.settings.base_url)
                exported = self._stream(job, kind.model, conditions, output, exported, stop)
                output.close()
                self._store(job, output, exported)  # the last chunks of its last file
            except (Cancelled, DBAPIError, DatabaseUnavailable):
                raise  # the whole export is abandoned; whoever runs it next starts from nothing
            except Exception as exc:  # one type failing is reported in the manifest; the others go on
                log.exception("export of one type failed", extra={"export": job.id, "type": resource_type})
                self._discard(job, resource_type, exported)
                problems.append(f"{resource_type}: the export failed ({type(exc).__name__})")
                continue
            files += output.records
        return files, problems

    def _stream(
        self,
        job: ExportJob,
        model: type[ResourceRow],
        conditions: Sequence[ColumnElement[bool]],
        output: NdjsonFiles,
        exported: int,
        stop: threading.Event,
    ) -> int:
        after: tuple[datetime, int] | None = None
        while True:
            if stop.is_set():
                raise Cancelled()
            with self.db.read_session() as session:
                rows = store.chunk(session, model, conditions, after=after, limit=self.settings.export_chunk_rows)
            if not rows:
                return exported
            for _, _, text in rows:
                output.write(text.encode())
            after = (rows[-1][0], rows[-1][1])
            exported += len(rows)
            self._store(job, output, exported)

    def _store(self, job: ExportJob, output: NdjsonFiles, exported: int) -> None:
        """Renew the claim and, while it holds, store the chunks cut so far (one transaction); Cancelled if lost."""
        chunks = output.take_chunks()
        with self.db.transaction() as session:
            alive = self._renew(session, job, exported)
            if alive:
                store.add_chunks(session, job.pk, chunks)
        if not alive:
            raise Cancelled()
        self.metrics.export_bytes.inc(sum(len(chunk.data) for chunk in chunks))

    def _discard(self, job: ExportJob, resource_type: str, exported: int) -> None:
        """Drop what was stored of one type's output, while the claim holds (else the next owner's is not ours)."""
        with self.db.transaction() as session:
            alive = self._renew(session, job, exported)
            if alive:
                store.delete_chunks(session, job.pk, resource_type)
        if not alive:
            raise Cancelled()

    def _renew(self, session: Session, job: ExportJob, exported: int) -> bool:
        lease = self.settings.worker_lease_seconds
        return store.renew(session, job.pk, owner=self.worker_id, now=utcnow(), lease_seconds=lease, exported=exported)

    def _abandon(self, job: ExportJob, *, release: bool) -> None:
        if release:
            try:
                with self.db.transaction() as session:
                    store.release(session, job.pk, owner=self.worker_id)  # its chunks go with the claim
            except (DBAPIError, DatabaseUnavailable):
                pass  # the lease lapses on its own, and the next claim drops the chunks
        log.info("export abandoned", extra={"export": job.id, "released": release})

    def remove_expired(self) -> int:
        """Delete exports past their retention: record, files and chunks."""
        with self.db.transaction() as session:
            expired = store.expired_jobs(session, utcnow())
            for pk, _ in expired:
                store.delete_job(session, pk)
        return len(expired)
