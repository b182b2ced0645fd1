"""What a worker process does each round: deliver subscription notifications, run bulk exports, and (once a minute)
delete expired exports and clinician-app sessions.

Several workers may run against PostgreSQL: every piece of work is claimed with SELECT ... FOR UPDATE SKIP
LOCKED plus a lease, so none is done twice at once and a dead worker's work is picked up when its lease
lapses. On SQLite only one worker works at a time: it holds the ``sqlite-worker`` lock row (renewed each
round), and any other waits for it to lapse. The process around the rounds (threads, signals, pauses) is
``service.jobs.worker``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

from service.clinician_sessions import remove_expired_sessions
from service.exports.runner import Exporter
from service.fhir.dates import utcnow
from service.fhir.errors import DatabaseUnavailable
from service.invitations.reminders import create_due_tasks, send_task_notices
from service.observability import WorkerMetrics
from service.services import Services
from service.store import outbox
from service.subscriptions.delivery import Deliverer

SQLITE_LOCK = "sqlite-worker"
INVITATION_ROUND_SECONDS = 30.0  # reminders are due by the day: looking twice a minute is plenty


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WorkRounds:
    def __init__(self, services: Services, worker_id: str | None = None, metrics: WorkerMetrics | None = None) -> None:
        self.services = services
        self.worker_id = worker_id or new_worker_id()
        self.metrics = metrics or WorkerMetrics()
        self.deliverer = Deliverer(services, self.worker_id, metrics=self.metrics)
        self.exporter = Exporter(services, self.worker_id, self.metrics)
        # Set while this worker may work (always on PostgreSQL; while it holds the lock row on SQLite).
        self.active = threading.Event()
        self._last_cleanup = 0.0
        self._last_invitations = 0.0
        self._renew_at = 0.0

    @property
    def single(self) -> bool:
        return self.services.db.dialect == "sqlite"

    def hold_turn(self) -> bool:
        """May this worker work now? (On SQLite: take or renew the lock row that makes it the only one.)"""
        if not self.single:
            self.active.set()
            return True
        lease = self.services.settings.worker_lease_seconds
        if self.active.is_set() and time.monotonic() < self._renew_at:
            return True
        with self.services.db.transaction() as session:
            held = outbox.acquire_lease_lock(session, SQLITE_LOCK, self.worker_id, utcnow(), lease)
        if held:
            self._renew_at = time.monotonic() + lease / 3  # renewed well before it could lapse
            self.active.set()
        else:
            self.active.clear()
        return held

    def release_turn(self) -> None:
        if not self.single:
            return
        try:
            with self.services.db.transaction() as session:
                outbox.release_lease_lock(session, SQLITE_LOCK, self.worker_id)
        except DatabaseUnavailable:
            pass  # it lapses on its own

    def deliver_round(self) -> bool:
        """Match new events, then make one delivery; True when there was something to do."""
        matched = self.deliverer.fan_out()
        delivered = self.deliverer.deliver_next()
        if time.monotonic() - self._last_cleanup > 60:
            self._last_cleanup = time.monotonic()
            self.tidy_up()
        if time.monotonic() - self._last_invitations > INVITATION_ROUND_SECONDS:
            self._last_invitations = time.monotonic()
            self.invitation_round()
        return bool(matched or delivered)

    def invitation_round(self) -> int:
        """Reminders and expiries of completion links, and Tasks for measures now due: how many notices and Tasks."""
        return send_task_notices(self.services) + create_due_tasks(self.services)

    def tidy_up(self) -> None:
        """Delete what has expired: exports past their retention (with their files), clinician-app sessions."""
        self.exporter.remove_expired()
        remove_expired_sessions(self.services)

    def export_round(self, stop: threading.Event) -> bool:
        """Claim one export and run it to the end (or until ``stop``); True when there was one."""
        return self.exporter.run_next(stop)
