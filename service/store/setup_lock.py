"""One set-up job at a time per database, so that containers starting together never race to migrate or load.

`proms db upgrade`, `proms questionnaires load` and `proms init` hold this lock while they work. On PostgreSQL it
is a session-level advisory lock (released by the server if the job's connection dies); on a SQLite file it is
an advisory lock on a file beside the database. A job that finds it taken waits, then finds the work done.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from service.store.db import ensure_sqlite_directory

# pg_advisory_lock's key: any fixed bigint the service uses for nothing else ("proms-setup" in ASCII, truncated).
SETUP_LOCK_KEY = 0x70726F6D732D7365


def sqlite_lock_path(database_url: str) -> str | None:
    """The file a SQLite database's set-up jobs lock (None for an in-memory database: nothing to share)."""
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}.setup-lock"


@contextmanager
def setup_lock(database_url: str, on_wait: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold the database's set-up lock for the block; ``on_wait`` is called once if another job holds it."""
    if database_url.startswith("postgresql"):
        with _advisory_lock(database_url, on_wait):
            yield
        return
    path = sqlite_lock_path(database_url)
    if path is None:
        yield
        return
    ensure_sqlite_directory(database_url)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file releases its lock


@contextmanager
def _advisory_lock(database_url: str, on_wait: Callable[[], None]) -> Iterator[None]:
    # A connection of its own, in autocommit: the lock belongs to the session, never to a transaction left open.
    engine = create_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if not connection.scalar(select(func.pg_try_advisory_lock(SETUP_LOCK_KEY))):
                on_wait()
                connection.execute(select(func.pg_advisory_lock(SETUP_LOCK_KEY)))
            try:
                yield
            finally:
                with suppress(DBAPIError):  # a lost connection has released the lock already
                    connection.execute(select(func.pg_advisory_unlock(SETUP_LOCK_KEY)))
    finally:
        engine.dispose()
