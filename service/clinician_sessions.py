"""The clinician app's sessions, kept in the database so that any web node serves any request: load, save, end,
and the worker's removal of expired ones. The HTTP side (cookies, ids) is ``service.api.app_sessions``."""

from __future__ import annotations

from datetime import datetime

from service.fhir.dates import utcnow
from service.services import Services
from service.store import app_sessions as store


def load_session(services: Services, key: str) -> bytes | None:
    with services.db.read_session() as session:
        return store.load(session, key, utcnow())


def save_session(services: Services, key: str, data: bytes, expires_at: datetime) -> None:
    with services.db.transaction() as session:
        store.save(session, key, data, expires_at)


def end_session(services: Services, key: str) -> None:
    """Sign-out, or a new id at sign-in: the session stops working on every node at once."""
    with services.db.transaction() as session:
        store.delete_one(session, key)


def remove_expired_sessions(services: Services) -> int:
    with services.db.transaction() as session:
        return store.delete_expired(session, utcnow())
