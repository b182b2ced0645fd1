"""`proms worker`: the process that runs the worker's rounds (``service.work``) until it is told to stop.

Notifications are delivered in the main thread and exports run in a second one, so that a long export never
holds up a notification. SIGTERM (or SIGINT) stops the loop after the notification in flight; an export in
progress is released, to be started again by the next worker. With PROMS_WORKER_METRICS_PORT set, a third thread
serves the worker's Prometheus metrics on PROMS_HOST at that port.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from service.backlog import database_figures
from service.config import Settings
from service.fhir.errors import DatabaseUnavailable
from service.observability import WorkerMetrics
from service.services import Services, build_services
from service.work import WorkRounds

log = logging.getLogger("proms.worker")


class Worker:
    def __init__(
        self, services: Services, *, worker_id: str | None = None, metrics: WorkerMetrics | None = None
    ) -> None:
        self.services = services
        self.rounds = WorkRounds(services, worker_id, metrics)

    @property
    def metrics(self) -> WorkerMetrics:
        return self.rounds.metrics

    @property
    def worker_id(self) -> str:
        return self.rounds.worker_id

    def _loop(self, stop: threading.Event, round_: Callable[[], bool], name: str, *, leader: bool) -> None:
        poll = self.services.settings.worker_poll_seconds
        while not stop.is_set():
            try:
                if leader and not self.rounds.hold_turn():
                    stop.wait(poll)
                    continue
                if not leader and not self.rounds.active.is_set():
                    self.rounds.active.wait(poll)
                    continue
                busy = round_()
            except DatabaseUnavailable:
                log.warning("database unavailable; retrying", extra={"loop": name})
                busy = False
            except Exception:
                log.exception("unexpected error in the worker loop", extra={"loop": name})
                busy = False
            if not busy:
                stop.wait(poll)

    def run(self, stop: threading.Event) -> None:
        """Deliver notifications in this thread and run exports in a second one, until ``stop`` is set."""
        exports = threading.Thread(
            target=self._loop,
            args=(stop, lambda: self.rounds.export_round(stop), "exports"),
            kwargs={"leader": False},
            name="proms-exports",
            daemon=True,
        )
        exports.start()
        log.info("worker started", extra={"worker": self.worker_id, "database": self.services.db.dialect})
        try:
            self._loop(stop, self.rounds.deliver_round, "notifications", leader=True)
        finally:
            stop.set()
            exports.join()
            self.rounds.release_turn()
            log.info("worker stopped", extra={"worker": self.worker_id})


def _serve_metrics(settings: Settings, metrics: WorkerMetrics) -> WSGIServer:
    address = f"{settings.host}:{settings.worker_metrics_port}"
    assert settings.worker_metrics_port is not None
    try:
        server, _ = start_http_server(settings.worker_metrics_port, settings.host, registry=metrics.registry)
    except OSError as exc:
        raise SystemExit(
            f"The worker cannot serve its metrics on {address} (PROMS_WORKER_METRICS_PORT): {exc}"
        ) from None
    log.info("worker metrics served", extra={"address": f"http://{address}/metrics"})
    return server


def run_worker(settings: Settings) -> None:
    """The `proms worker` process: run until SIGTERM or SIGINT."""
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        # Only set the event: logging or any other I/O here could deadlock on a lock the interrupted code holds.
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    services = build_services(settings)
    metrics = WorkerMetrics()
    metrics.watch(lambda: database_figures(services), services.db.pool_figures)
    server = None
    try:
        if settings.worker_metrics_port is not None:
            server = _serve_metrics(settings, metrics)
        Worker(services, metrics=metrics).run(stop)
    finally:
        if server is not None:
            server.shutdown()
        # Stopping already: a further signal must not kill the process mid-shutdown (the interpreter would
        # restore the default action while it finalises, and exit with the signal instead of 0).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        services.close()
