"""`proms worker`: the loop that delivers subscription notifications from the outbox and runs bulk exports.

Several workers may run against PostgreSQL: every piece of work is claimed with SELECT ... FOR UPDATE SKIP
LOCKED plus a lease, so none is done twice at once and a dead worker's work is picked up when its lease
lapses. On SQLite only one worker works at a time: it holds the ``sqlite-worker`` lock row (renewed each
round), and any other waits for it to lapse. SIGTERM (or SIGINT) stops the loop after the notification in
flight; an export in progress is released, to be started again by the next worker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType

from sqlalchemy.exc import DBAPIError

from service.config import Settings
from service.jobs.delivery import Deliverer
from service.jobs.exporter import Exporter
from service.store import outbox
from service.store.db import Database
from service.store.repository import utcnow

log = logging.getLogger("proms.worker")
SQLITE_LOCK = "sqlite-worker"


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(self, settings: Settings, db: Database | None = None, *, worker_id: str | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url)
        self.worker_id = worker_id or new_worker_id()
        self.deliverer = Deliverer(self.db, settings, self.worker_id)
        self.exporter = Exporter(self.db, settings, self.worker_id)
        # Set while this worker may work (always on PostgreSQL; while it holds the lock row on SQLite).
        self.active = threading.Event()
        self._last_cleanup = 0.0
        self._renew_at = 0.0

    @property
    def single(self) -> bool:
        return self.db.dialect == "sqlite"

    # one round of each kind of work ---------------------------------------------------------------------

    def hold_turn(self) -> bool:
        """May this worker work now? (On SQLite: take or renew the lock row that makes it the only one.)"""
        if not self.single:
            self.active.set()
            return True
        lease = self.settings.worker_lease_seconds
        if self.active.is_set() and time.monotonic() < self._renew_at:
            return True
        with self.db.transaction() as session:
            held = outbox.acquire_lease_lock(session, SQLITE_LOCK, self.worker_id, utcnow(), lease)
        if held:
            self._renew_at = time.monotonic() + lease / 3  # renewed well before it could lapse
            self.active.set()
        else:
            self.active.clear()
        return held

    def deliver_round(self) -> bool:
        """Match new events, then make one delivery; True when there was something to do."""
        matched = self.deliverer.fan_out()
        delivered = self.deliverer.deliver_next()
        if time.monotonic() - self._last_cleanup > 60:
            self._last_cleanup = time.monotonic()
            self.exporter.remove_expired()
        return bool(matched or delivered)

    def export_round(self, stop: threading.Event) -> bool:
        """Claim one export and run it to the end (or until ``stop``); True when there was one."""
        return self.exporter.run_next(stop)

    # the loops ---------------------------------------------------------------------------------------------

    def _loop(self, stop: threading.Event, round_: Callable[[], bool], name: str, *, leader: bool) -> None:
        while not stop.is_set():
            try:
                if leader and not self.hold_turn():
                    stop.wait(self.settings.worker_poll_seconds)
                    continue
                if not leader and not self.active.is_set():
                    self.active.wait(self.settings.worker_poll_seconds)
                    continue
                busy = round_()
            except DBAPIError as exc:
                log.warning("database unavailable; retrying", extra={"loop": name, "error": str(exc.orig)})
                busy = False
            except Exception:
                log.exception("unexpected error in the worker loop", extra={"loop": name})
                busy = False
            if not busy:
                stop.wait(self.settings.worker_poll_seconds)

    def run(self, stop: threading.Event) -> None:
        """Deliver notifications in this thread and run exports in a second one, until ``stop`` is set."""
        exports = threading.Thread(
            target=self._loop,
            args=(stop, lambda: self.export_round(stop), "exports"),
            kwargs={"leader": False},
            name="proms-exports",
            daemon=True,
        )
        exports.start()
        log.info("worker started", extra={"worker": self.worker_id, "database": self.db.dialect})
        try:
            self._loop(stop, self.deliver_round, "notifications", leader=True)
        finally:
            stop.set()
            exports.join()
            if self.single:
                try:
                    with self.db.transaction() as session:
                        outbox.release_lease_lock(session, SQLITE_LOCK, self.worker_id)
                except DBAPIError:
                    pass  # it lapses on its own
            log.info("worker stopped", extra={"worker": self.worker_id})


def run_worker(settings: Settings) -> None:
    """The `proms worker` process: run until SIGTERM or SIGINT."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    worker = Worker(settings)
    try:
        worker.run(stop)
    finally:
        worker.db.dispose()
