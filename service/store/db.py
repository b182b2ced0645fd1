"""The database handle: engine set-up per dialect and the session factory (one session per unit of work)."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from service.fhir.errors import DatabaseUnavailable
from service.observability import PoolFigures

log = logging.getLogger("proms.db")


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder a SQLite file lives in (the embedded default needs no set-up)."""
    if not url.startswith("sqlite"):
        return
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun explicitly (see _on_sqlite_begin), not by the driver's implicit rules.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while one writer commits; the busy timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _without_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    # A commit does not copy the log into the database file itself (see Checkpoints): that would happen while
    # the writer still holds the write turn, and every other writer waits for it.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class Checkpoints:
    """SQLite's log (WAL) copied into the database file after commits, outside the write turn.

    SQLite would do this in the committing connection every thousand pages or so (about twenty submissions), with
    the write turn held: every writer of every process waited for the copy and its file sync. Here, every
    ``every`` commits, a thread of its own runs a PASSIVE checkpoint, which takes no lock a writer or reader
    waits for (it copies what it can and leaves the rest for the next one). Durability is unchanged: a
    committed transaction is in the log either way."""

    def __init__(self, engine: Engine, every: int = 16) -> None:
        self._engine = engine
        self._every = every
        self._commits = 0
        self._running = threading.Lock()
        self._count_lock = threading.Lock()

    def committed(self) -> None:
        with self._count_lock:
            self._commits += 1
            due = self._commits % self._every == 0
        if due and not self._running.locked():
            threading.Thread(target=self.run, name="sqlite-checkpoint", daemon=True).start()

    def run(self) -> None:
        if not self._running.acquire(blocking=False):
            return  # one at a time; the next one copies what this one would have
        try:
            connection = self._engine.raw_connection()
            try:
                connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
            finally:
                connection.close()
        except Exception:  # noqa: BLE001 - a later checkpoint (or SQLite's own at close) copies what is left
            log.warning("SQLite checkpoint failed", exc_info=True)
        finally:
            self._running.release()


def _on_sqlite_begin(connection: Any) -> None:
    # A writer takes the write lock when it begins (BEGIN IMMEDIATE), so it waits its turn under the busy
    # timeout instead of failing with "database is locked" when upgrading a read lock mid-transaction.
    immediate = connection.get_execution_options().get(WRITE_TRANSACTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITE_TRANSACTION = "proms_write_transaction"


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        # Not bound to the thread that opened it: a commit group's members use its connection one after another.
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_timeout=5)


class WriteTurn:
    """Writers to one SQLite database take turns: a thread lock within the process, ``flock`` across processes.
    A turn may be released by another thread than the one that took it (a group's last member commits it)."""

    def __init__(self, url: str) -> None:
        database = make_url(url).database
        on_disk = bool(database) and database != ":memory:" and not str(database).startswith("file:")
        self._path = f"{database}.writer-lock" if on_disk else None
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._closer: weakref.finalize[Any, Any] | None = None

    def _lock_fd(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # one open file per process (flock is per open file)
            if self._fd is not None and self._closer is not None:
                self._closer()  # the parent's, inherited: closing this copy leaves the parent's lock alone
            self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            self._pid = os.getpid()
            self._closer = weakref.finalize(self, os.close, self._fd)
        return self._fd

    def close(self) -> None:
        with self._thread_lock:
            if self._closer is not None:
                self._closer()
            self._fd = self._closer = None

    def acquire(self) -> None:
        self._thread_lock.acquire()
        try:
            fd = self._lock_fd()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        try:
            if self._fd is not None and self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


class _Group:
    """Write transactions of one process that share one database transaction and one commit."""

    def __init__(self) -> None:
        self.baton = threading.Lock()  # one member's block runs at a time
        self.pending = 0  # members that joined and have not finished their block
        self.closed = False  # no more members: the last one is committing
        self.session: Session | None = None
        self.turn_taken = False
        self.written = False  # a member's block has completed in the open transaction
        self.failure: BaseException | None = None  # why the shared transaction could not be begun or committed
        self.committed = threading.Event()


class GroupCommit:
    """SQLite commits in groups: the write transactions that arrive while one is running join it, each in a
    savepoint of its own, and the last of them commits them all at once.

    SQLite has one writer at a time, and most of a small write's cost is its commit (writing each changed page
    to the log). A group pays it once, and its rows share pages. Nothing is acknowledged early: a member's
    block returns only after the group's commit, and if that fails every member of the group fails with it.
    A member whose block raises is rolled back to its savepoint, leaving the others' writes alone.

    Members run one after another on the group's session (handed from thread to thread under a lock), so each
    sees the writes of those before it, as if they had committed one by one in that order."""

    def __init__(
        self, sessions: sessionmaker[Session], turn: WriteTurn | None, checkpoints: Checkpoints | None = None
    ) -> None:
        self._sessions = sessions
        self._turn = turn
        self._checkpoints = checkpoints
        self._mutex = threading.Lock()
        self._open: _Group | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._mutex:
            group = self._open
            if group is None or group.closed:
                group = self._open = _Group()
            group.pending += 1
        failed: BaseException | None = None
        try:
            with group.baton:
                session = self._begun(group)
                if not group.written:
                    # Nothing of another member to keep: the block needs no savepoint of its own, and if it
                    # fails the whole transaction is rolled back (the next member begins a new one).
                    try:
                        yield session
                    except BaseException:
                        session.rollback()
                        raise
                else:
                    savepoint = session.begin_nested()
                    try:
                        yield session
                    except BaseException:
                        savepoint.rollback()
                        raise
                    savepoint.commit()
                group.written = True
        except BaseException as exc:
            failed = exc
        last = self._finish(group)
        if last:
            self._commit(group)
        else:
            group.committed.wait()
        if failed is not None:
            raise failed
        if group.failure is not None:
            raise DatabaseUnavailable() from group.failure

    def _begun(self, group: _Group) -> Session:
        """The group's session inside its transaction, begun by the first member to run (under the baton)."""
        if group.failure is not None:
            raise DatabaseUnavailable() from group.failure
        try:
            if group.session is None:
                if self._turn is not None:
                    self._turn.acquire()
                    group.turn_taken = True
                group.session = self._sessions()
            if not group.session.in_transaction():
                group.session.begin()
                group.session.connection(execution_options={WRITE_TRANSACTION: True})
        except BaseException as exc:
            group.failure = exc
            raise
        return group.session

    def _finish(self, group: _Group) -> bool:
        """One member done with its block; True for the last one, which commits."""
        with self._mutex:
            group.pending -= 1
            if group.pending > 0:
                return False
            group.closed = True
            if self._open is group:
                self._open = None
            return True

    def _commit(self, group: _Group) -> None:
        session = group.session
        try:
            if session is not None and group.failure is None and session.in_transaction():
                try:
                    session.commit()
                except BaseException as exc:
                    group.failure = exc
                    session.rollback()
        finally:
            try:
                if session is not None:
                    session.close()
            finally:
                if group.turn_taken and self._turn is not None:
                    self._turn.release()
                group.committed.set()
                if self._checkpoints is not None and group.written:
                    self._checkpoints.committed()


@contextmanager
def _unavailable_as_503() -> Iterator[None]:
    """Connection refused, server restarting, connection killed, SQLite busy past its timeout: all transient, and
    whatever was being written is rolled back. Callers see one error for all of them (answered 503 over HTTP)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        cause = type(exc.orig).__name__ if exc.orig else type(exc).__name__
        log.warning("database unavailable", extra={"error": cause})
        raise DatabaseUnavailable() from exc


# The transaction every unit of work of this context joins (see Database.one_transaction), with its database.
_enclosing: ContextVar[tuple[Database, Session] | None] = ContextVar("enclosing_transaction", default=None)


class Database:
    """Owns the engine and hands out sessions; nothing module-level, one per app."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken polls in SQLite's busy
        # handler, sleeping up to 100 ms at a time while the lock is free again after a millisecond. So writers
        # queue instead: the threads of a process on a lock, the processes (web workers, the worker) on an
        # advisory lock on a file beside the database; both wake a waiter as soon as they are released.
        self._write_turn: WriteTurn | None = WriteTurn(url) if self.dialect == "sqlite" else None
        checkpoints = None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _without_autocheckpoint)
            checkpoints = Checkpoints(self.engine)
        # SQLite: every write transaction joins a group (one writer at a time anyway). PostgreSQL: only
        # append-only ones do (AuditEvents of reads), which take no locks another transaction could wait for.
        self._groups = GroupCommit(self._sessions, self._write_turn, checkpoints)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, append_only: bool = False) -> Iterator[Session]:
        """A session inside one transaction: committed when the block ends, rolled back on any error.

        Transactions may commit in groups (see GroupCommit): on SQLite all of them, on PostgreSQL those that only
        insert (``append_only``). Either way the block's writes are committed, or the block fails, before this
        returns, as for a transaction of its own. Inside ``one_transaction`` the block is a savepoint of the
        enclosing transaction instead, committed (or not) with it."""
        enclosing = self._enclosing()
        if enclosing is not None:
            with _unavailable_as_503():
                savepoint = enclosing.begin_nested()
                try:
                    yield enclosing
                except BaseException:
                    if savepoint.is_active:
                        savepoint.rollback()
                    raise
                if savepoint.is_active:
                    savepoint.commit()
            return
        with _unavailable_as_503():
            if self.dialect == "sqlite" or append_only:
                with self._groups.transaction() as session:
                    yield session
                return
            with self._sessions() as session, session.begin():
                yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session to read with; inside ``one_transaction`` the enclosing one (it sees what was written)."""
        enclosing = self._enclosing()
        if enclosing is not None:
            yield enclosing
            return
        with _unavailable_as_503(), self._sessions() as session:
            yield session

    @contextmanager
    def one_transaction(self) -> Iterator[Session]:
        """Every unit of work begun in this context within the block (``transaction``, ``read_session``) joins one
        transaction, each write in a savepoint of its own: all of it is committed when the block ends, or none
        of it if the block raises. What a FHIR transaction Bundle runs its entries in."""
        if self._enclosing() is not None:
            raise RuntimeError("one_transaction does not nest")
        with self.transaction() as session:
            token = _enclosing.set((self, session))
            try:
                yield session
            finally:
                _enclosing.reset(token)

    def _enclosing(self) -> Session | None:
        found = _enclosing.get()
        return found[1] if found is not None and found[0] is self else None

    def pool_figures(self) -> PoolFigures:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):  # e.g. an in-memory SQLite database: one connection, no pool figures
            return PoolFigures(size=0, checked_out=0, overflow=0)
        return PoolFigures(size=pool.size(), checked_out=pool.checkedout(), overflow=max(0, pool.overflow()))

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self._write_turn is not None:
            self._write_turn.close()
