"""Clinician-app sessions: opaque data under a key, until an expiry; any web node reads what another wrote."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store.models import AppSession


def load(session: Session, key: str, now: datetime) -> bytes | None:
    """The session's data, unless it has expired (an expired session is never served, whether or not purged)."""
    query = select(AppSession.data).where(AppSession.id == key, AppSession.expires_at > now)
    data = session.scalar(query)
    return None if data is None else bytes(data)


def save(session: Session, key: str, data: bytes, expires_at: datetime) -> None:
    """Insert or replace, in one statement (two nodes saving the same session race harmlessly: the last wins)."""
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(AppSession).values(id=key, data=data, expires_at=expires_at)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[AppSession.id],
            set_={"data": statement.excluded.data, "expires_at": statement.excluded.expires_at},
        )
    )


def delete_one(session: Session, key: str) -> None:
    session.execute(delete(AppSession).where(AppSession.id == key))


def delete_expired(session: Session, now: datetime) -> int:
    result = session.execute(delete(AppSession).where(AppSession.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]
