"""Bulk export jobs, their files (stored in chunks), and resources read for export in keyset-paged chunks of JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from service.store.models import ExportChunk, ExportFile, ExportJob, GroupMember, ResourceRow

IN_PROGRESS = ("queued", "running")
STATUSES = ("queued", "running", "completed", "failed")


@dataclass(frozen=True, slots=True)
class FileRecord:
    kind: str  # output | error
    resource_type: str
    part: int
    count: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One piece of a file's bytes: the ``seq``-th (from 0) of part ``part`` of a type's output."""

    resource_type: str
    part: int
    seq: int
    data: bytes


def add_job(session: Session, job: ExportJob) -> None:
    session.add(job)
    session.flush()


def job_by_id(session: Session, job_id: str) -> ExportJob | None:
    return session.scalars(select(ExportJob).where(ExportJob.id == job_id)).one_or_none()


def files_of(session: Session, job_pk: int) -> list[ExportFile]:
    query = select(ExportFile).where(ExportFile.job_pk == job_pk).order_by(ExportFile.kind.desc(), ExportFile.pk)
    return list(session.scalars(query))


def claim_job(
    session: Session, *, now: datetime, owner: str, lease_seconds: float, transaction_time: datetime
) -> ExportJob | None:
    """Claim the oldest export nobody is working on (queued, or running under a lapsed lease)."""
    query = (
        select(ExportJob.pk)
        .where(
            ExportJob.status.in_(IN_PROGRESS),
            or_(ExportJob.lease_until.is_(None), ExportJob.lease_until < now),
        )
        .order_by(ExportJob.pk)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    pk = session.scalar(query)
    if pk is None:
        return None
    claimed = session.execute(
        update(ExportJob)
        .where(ExportJob.pk == pk, or_(ExportJob.lease_until.is_(None), ExportJob.lease_until < now))
        .values(
            status="running",
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(ExportJob.started_at, now),
            # Fixed on the first claim, so that an export restarted by another worker answers for the same instant.
            transaction_time=func.coalesce(ExportJob.transaction_time, transaction_time),
            exported=0,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    # Taken over from a worker that died (or was handed back): it starts again from the beginning, and nothing
    # the previous worker wrote is kept. After the update, so that no write of the previous owner can follow.
    session.execute(delete(ExportChunk).where(ExportChunk.job_pk == pk))
    job = session.get(ExportJob, pk, populate_existing=True)
    assert job is not None and job.transaction_time is not None
    if job.since is not None and job.transaction_time < job.since:
        # Asked for changes after an instant still inside the safety margin: an empty window, and the next
        # pull starts from the same instant (a transactionTime before _since would make it repeat resources).
        job.transaction_time = job.since
    return job


def renew(session: Session, job_pk: int, *, owner: str, now: datetime, lease_seconds: float, exported: int) -> bool:
    """Extend the claim and record progress; False if the export was cancelled or taken over meanwhile.

    The job's row stays locked until the transaction ends, so what the caller writes next in it (chunks) is
    written only while the claim holds.
    """
    result = session.execute(
        update(ExportJob)
        .where(ExportJob.pk == job_pk, ExportJob.lease_owner == owner, ExportJob.status == "running")
        .values(lease_until=now + timedelta(seconds=lease_seconds), exported=exported)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_chunks(session: Session, job_pk: int, chunks: Sequence[ChunkRecord]) -> None:
    session.add_all(
        ExportChunk(job_pk=job_pk, resource_type=c.resource_type, part=c.part, seq=c.seq, data=c.data) for c in chunks
    )


def delete_chunks(session: Session, job_pk: int, resource_type: str) -> None:
    """Drop what was written of one type's output (its export failed; the others go on)."""
    session.execute(delete(ExportChunk).where(ExportChunk.job_pk == job_pk, ExportChunk.resource_type == resource_type))


def file_of(session: Session, job_pk: int, kind: str, resource_type: str, part: int) -> ExportFile | None:
    query = select(ExportFile).where(
        ExportFile.job_pk == job_pk,
        ExportFile.kind == kind,
        ExportFile.resource_type == resource_type,
        ExportFile.part == part,
    )
    return session.scalars(query).one_or_none()


def next_chunk(session: Session, job_pk: int, resource_type: str, part: int, *, after: int) -> tuple[int, bytes] | None:
    """A file's chunk that follows chunk ``after`` (-1: the first): (seq, bytes), or None past the last."""
    query = (
        select(ExportChunk.seq, ExportChunk.data)
        .where(
            ExportChunk.job_pk == job_pk,
            ExportChunk.resource_type == resource_type,
            ExportChunk.part == part,
            ExportChunk.seq > after,
        )
        .order_by(ExportChunk.seq)
        .limit(1)
    )
    row = session.execute(query).first()
    return None if row is None else (row[0], bytes(row[1]))


def finish(
    session: Session,
    job_pk: int,
    *,
    owner: str,
    now: datetime,
    expires_at: datetime,
    files: Sequence[FileRecord],
    error: str | None,
) -> bool:
    result = session.execute(
        update(ExportJob)
        .where(ExportJob.pk == job_pk, ExportJob.lease_owner == owner, ExportJob.status == "running")
        .values(
            status="failed" if error else "completed",
            finished_at=now,
            expires_at=expires_at,
            error=error,
            lease_owner=None,
            lease_until=None,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    session.add_all(
        ExportFile(
            job_pk=job_pk,
            kind=f.kind,
            resource_type=f.resource_type,
            part=f.part,
            count=f.count,
            size_bytes=f.size_bytes,
        )
        for f in files
    )
    return True


def release(session: Session, job_pk: int, *, owner: str) -> None:
    """Give an unfinished export back, to be started again from the beginning by the next worker."""
    released = session.execute(
        update(ExportJob)
        .where(ExportJob.pk == job_pk, ExportJob.lease_owner == owner)
        .values(status="queued", lease_owner=None, lease_until=None, exported=0)
    )
    if released.rowcount:  # type: ignore[attr-defined]
        session.execute(delete(ExportChunk).where(ExportChunk.job_pk == job_pk))


def note_poll(session: Session, job_pk: int, now: datetime) -> None:
    session.execute(update(ExportJob).where(ExportJob.pk == job_pk).values(last_polled_at=now))


def delete_job(session: Session, job_pk: int) -> None:
    """The export's record, files and chunks. The job's row first: a worker writing chunks holds it locked, so
    this waits for that write and then removes it too (a worker whose job is gone writes nothing more)."""
    session.execute(delete(ExportJob).where(ExportJob.pk == job_pk))
    session.execute(delete(ExportChunk).where(ExportChunk.job_pk == job_pk))
    session.execute(delete(ExportFile).where(ExportFile.job_pk == job_pk))


def jobs_by_status(session: Session) -> dict[str, int]:
    """How many exports are in each status (every status listed, 0 where none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in session.execute(select(ExportJob.status, func.count()).group_by(ExportJob.status)):
        counts[status] = count
    return counts


def expired_jobs(session: Session, now: datetime) -> list[tuple[int, str]]:
    query = select(ExportJob.pk, ExportJob.id).where(ExportJob.expires_at < now)
    return [(pk, job_id) for pk, job_id in session.execute(query)]


# reading what to export ------------------------------------------------------------------------------------


def group_members(group_pk: int) -> ColumnElement[bool]:
    """Patient ids of a Group's members, as a subquery."""
    return (
        select(GroupMember.member_id)
        .where(GroupMember.group_pk == group_pk, GroupMember.member_type == "Patient")
        .scalar_subquery()
    )


def chunk(
    session: Session,
    model: type[ResourceRow],
    conditions: Sequence[ColumnElement[bool]],
    *,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[tuple[datetime, int, str]]:
    """The next ``limit`` resources by (lastUpdated, key) after ``after``: (last_updated, pk, JSON).

    Keyset paging on the (last_updated, pk) index: each chunk is one short indexed query, whatever the size.
    """
    query = select(model.last_updated, model.pk, model.resource_json).where(*conditions)
    if after is not None:
        # A row-value comparison, which both databases answer with a range scan of the index; the equivalent
        # OR of two conditions makes SQLite sort the whole rest of the table for every chunk.
        query = query.where(tuple_(model.last_updated, model.pk) > tuple_(*after))
    query = query.order_by(model.last_updated, model.pk).limit(limit)
    return [(updated, pk, text) for updated, pk, text in session.execute(query) if text is not None]
