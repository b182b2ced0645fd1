"""Running a bulk export in the worker: each type streamed from the database in chunks into ndjson files.

Memory stays flat whatever the size: rows are read in keyset-paged chunks of stored JSON and written out
line by line. The claim on the job is renewed after every chunk, which is also when a cancellation (the
job's record deleted) or a stop request is noticed.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import orjson
from sqlalchemy import ColumnElement
from sqlalchemy.exc import DBAPIError

from service.auth.delegated import BACKEND_CONTEXTS, Owner, read_grant
from service.exports.requests import EXPORTABLE, export_conditions, file_name, job_directory, transaction_time
from service.fhir.dates import utcnow
from service.fhir.errors import DatabaseUnavailable, operation_outcome
from service.fhir.issues import Issue
from service.services import Services
from service.store import exports as store
from service.store.kinds import GROUP
from service.store.models import ExportJob, ResourceRow
from service.store.repository import ResourceRepository

log = logging.getLogger("proms.export")


class Cancelled(Exception):
    """The export's record is gone (cancelled by its client) or another worker owns it now."""


class NdjsonFiles:
    """One type's output: ``Type-1.ndjson``, ``Type-2.ndjson`` ... each kept under the size limit."""

    def __init__(self, directory: Path, resource_type: str, max_bytes: int, kind: str = "output") -> None:
        self.directory = directory
        self.resource_type = resource_type
        self.max_bytes = max_bytes
        self.kind = kind
        self.records: list[store.FileRecord] = []
        self._file: IO[bytes] | None = None
        self._count = 0
        self._size = 0

    def write(self, line: bytes) -> None:
        if self._file is not None and self._count and self._size + len(line) + 1 > self.max_bytes:
            self._close_part()
        if self._file is None:
            part = len(self.records) + 1
            self._file = (self.directory / file_name(self.resource_type, part)).open("wb")
        self._file.write(line)
        self._file.write(b"\n")
        self._count += 1
        self._size += len(line) + 1

    def _close_part(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        self.records.append(
            store.FileRecord(self.kind, self.resource_type, len(self.records) + 1, self._count, self._size)
        )
        self._count = self._size = 0

    def close(self) -> list[store.FileRecord]:
        if self._file is not None:
            self._close_part()
        return self.records

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        for part in range(1, len(self.records) + 2):
            (self.directory / file_name(self.resource_type, part)).unlink(missing_ok=True)
        self.records = []


class Exporter:
    """One worker's export runs: claim a queued export, stream it out, record its files."""

    def __init__(self, services: Services, worker_id: str) -> None:
        self.db = services.db
        self.settings = services.settings
        self.worker_id = worker_id

    def run_next(self, stop: threading.Event) -> bool:
        """Claim one export and run it; False when none was waiting."""
        now = utcnow()
        with self.db.transaction() as session:
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
        directory = job_directory(self.settings, job.id)
        # A job taken over from a dead worker starts again from the beginning.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        log.info("export started", extra={"export": job.id, "types": job.types})
        try:
            files, problems = self._export_types(job, directory, stop)
            if stop.is_set():
                raise Cancelled()
        except Cancelled:
            self._abandon(job, directory, release=stop.is_set())
            return
        except (DBAPIError, DatabaseUnavailable):
            log.warning("database unavailable during an export; it will be retried", extra={"export": job.id})
            self._abandon(job, directory, release=True)
            return
        if problems:
            errors = NdjsonFiles(directory, "OperationOutcome", self.settings.export_file_max_bytes, "error")
            for problem in problems:
                errors.write(orjson.dumps(operation_outcome([Issue("error", "exception", problem)])))
            files += errors.close()
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
        if not finished:
            shutil.rmtree(directory, ignore_errors=True)
            return
        log.info("export finished", extra={"export": job.id, "files": len(files), "problems": len(problems)})

    def _export_types(
        self, job: ExportJob, directory: Path, stop: threading.Event
    ) -> tuple[list[store.FileRecord], list[str]]:
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
            output = NdjsonFiles(directory, resource_type, self.settings.export_file_max_bytes)
            try:
                kind = EXPORTABLE[resource_type]
                conditions = export_conditions(kind, grant, job, group_pk, self.settings.base_url)
                exported = self._stream(job, kind.model, conditions, output, exported, stop)
            except (Cancelled, DBAPIError, DatabaseUnavailable):
                output.discard()
                raise
            except Exception as exc:  # one type failing is reported in the manifest; the others go on
                log.exception("export of one type failed", extra={"export": job.id, "type": resource_type})
                output.discard()
                problems.append(f"{resource_type}: the export failed ({type(exc).__name__})")
                continue
            files += output.close()
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
            with self.db.transaction() as session:
                alive = store.renew(
                    session,
                    job.pk,
                    owner=self.worker_id,
                    now=utcnow(),
                    lease_seconds=self.settings.worker_lease_seconds,
                    exported=exported,
                )
            if not alive:
                raise Cancelled()

    def _abandon(self, job: ExportJob, directory: Path, *, release: bool) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        if release:
            try:
                with self.db.transaction() as session:
                    store.release(session, job.pk, owner=self.worker_id)
            except (DBAPIError, DatabaseUnavailable):
                pass  # the lease lapses on its own
        log.info("export abandoned", extra={"export": job.id, "released": release})

    def remove_expired(self) -> int:
        """Delete exports past their retention, record and files."""
        with self.db.transaction() as session:
            expired = store.expired_jobs(session, utcnow())
            for pk, _ in expired:
                store.delete_job(session, pk)
        for _, job_id in expired:
            shutil.rmtree(job_directory(self.settings, job_id), ignore_errors=True)
        return len(expired)
