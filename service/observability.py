"""JSON-lines logs carrying the request id, and Prometheus metrics: the web node's (multi-process aware under
gunicorn) and the worker's (its own counters, and figures read from the database at each scrape)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter

_HANDLER_NAME = "proms-json"
log = logging.getLogger("proms.metrics")


# The id of the request being handled (set when it starts), so that every log line of it carries the id.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(level: str) -> None:
    """One JSON handler on the root logger (idempotent: apps built in tests reuse it)."""
    root = logging.getLogger()
    root.setLevel(level)
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    # Alembic announces its dialect on every readiness probe; that is noise at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)


class Metrics:
    """Request counts and latency by route and status, in a registry per app (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "proms_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "proms_http_request_duration_seconds",
            "Time to handle an HTTP request",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.auth_disabled = Gauge(
            "proms_auth_disabled",
            "1 when authentication is off (PROMS_AUTH=none, development only)",
            registry=self.registry,
            multiprocess_mode="max",
        )

        self._tasks: _TaskFigures | None = None

    def watch_tasks(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report Tasks by status and the completion rate at each scrape, read from the database then."""
        self._tasks = _TaskFigures(counts)
        self.registry.register(self._tasks)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Under gunicorn every worker writes its own files; the scrape sums them all.
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            if self._tasks is not None:
                registry.register(self._tasks)  # read from the database: the same whichever process answers
            return generate_latest(registry)
        return generate_latest(self.registry)


# Tasks that no longer count towards a completion rate: withdrawn, or recorded in error.
NOT_COUNTED = ("cancelled", "entered-in-error", "draft")


class _TaskFigures(Collector):
    """Requests to complete a measure by status, and the share of them answered (completed / all but withdrawn)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self._counts()
        except Exception as exc:  # the database is away: leave the figures out rather than fail the scrape
            log.warning("metrics could not read the tasks", extra={"error": type(exc).__name__})
            return
        tasks = GaugeMetricFamily(
            "proms_tasks", "Tasks asking a person to complete a measure, by status", labels=["status"]
        )
        for status, count in sorted(counts.items()):
            tasks.add_metric([status], count)
        yield tasks
        counted = sum(count for status, count in counts.items() if status not in NOT_COUNTED)
        ratio = counts.get("completed", 0) / counted if counted else 0.0
        yield GaugeMetricFamily(
            "proms_task_completion_ratio",
            "Share of requests to complete a measure that were answered (completed / all but cancelled)",
            value=ratio,
        )


NOTIFICATION_KINDS = ("handshake", "heartbeat", "event-notification")


@dataclass(frozen=True, slots=True)
class PoolFigures:
    """A process's database connection pool at one moment."""

    size: int  # connections the pool keeps
    checked_out: int  # in use now
    overflow: int  # open beyond ``size`` now (at most max_overflow)


@dataclass(frozen=True, slots=True)
class DatabaseFigures:
    """What the whole service has waiting, read from the database (the same whichever worker reads it)."""

    unmatched_events: int  # outbox events not yet matched to the subscriptions
    undelivered_events: int  # events matched to a live subscription whose endpoint has not acknowledged them
    oldest_undelivered_seconds: float  # how long the oldest of either has waited (0: none waits)
    subscriptions_in_error: int
    exports: Mapping[str, int]  # by status: queued, running, completed, failed


class _ScrapeTimeFigures(Collector):
    """Gauges read when Prometheus scrapes: the pool (from memory) and the backlog (a few indexed counts)."""

    def __init__(self, database: Callable[[], DatabaseFigures], pool: Callable[[], PoolFigures]) -> None:
        self._database = database
        self._pool = pool

    def collect(self) -> Iterable[Metric]:
        pool = self._pool()
        yield GaugeMetricFamily("proms_db_pool_size", "Connections the database pool keeps", value=pool.size)
        yield GaugeMetricFamily(
            "proms_db_pool_checked_out", "Database connections in use by this process", value=pool.checked_out
        )
        yield GaugeMetricFamily(
            "proms_db_pool_overflow", "Database connections open beyond the pool's size", value=pool.overflow
        )
        try:
            figures = self._database()
        except Exception as exc:  # the database is away: say so, and leave its figures out rather than fail
            log.warning("metrics could not read the database", extra={"error": type(exc).__name__})
            yield GaugeMetricFamily("proms_database_up", "1 when the figures below were read from the database", 0)
            return
        yield GaugeMetricFamily("proms_database_up", "1 when the figures below were read from the database", 1)
        backlog = GaugeMetricFamily(
            "proms_outbox_backlog",
            "Outbox events not yet delivered: unmatched (not yet matched to subscriptions) and undelivered "
            "(matched to a live subscription, not yet acknowledged by its endpoint)",
            labels=["stage"],
        )
        backlog.add_metric(["unmatched"], figures.unmatched_events)
        backlog.add_metric(["undelivered"], figures.undelivered_events)
        yield backlog
        yield GaugeMetricFamily(
            "proms_outbox_oldest_undelivered_age_seconds",
            "How long the oldest event not yet delivered has waited (0 when none waits)",
            value=figures.oldest_undelivered_seconds,
        )
        yield GaugeMetricFamily(
            "proms_subscriptions_error", "Subscriptions in status error", value=figures.subscriptions_in_error
        )
        exports = GaugeMetricFamily("proms_exports", "Bulk exports kept, by status", labels=["status"])
        for status, count in figures.exports.items():
            exports.add_metric([status], count)
        yield exports


class WorkerMetrics:
    """The worker's metrics, in a registry of their own: what this worker did since it started (counters), and
    what the service has waiting (read from the database at each scrape, once ``watch`` is given the readers)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.notifications_sent = Counter(
            "proms_notifications_sent",
            "Subscription notifications an endpoint acknowledged (2xx), by kind",
            ["type"],
            registry=self.registry,
        )
        self.notifications_failed = Counter(
            "proms_notifications_failed",
            "Subscription notifications that failed (connection error, timeout or a non-2xx answer), by kind",
            ["type"],
            registry=self.registry,
        )
        for kind in NOTIFICATION_KINDS:  # every series exists from the start, at 0
            self.notifications_sent.labels(kind)
            self.notifications_failed.labels(kind)
        self.export_bytes = Counter(
            "proms_export_bytes_written", "Bytes of bulk export files stored in the database", registry=self.registry
        )

    def watch(self, database: Callable[[], DatabaseFigures], pool: Callable[[], PoolFigures]) -> None:
        self.registry.register(_ScrapeTimeFigures(database, pool))

    def render(self) -> bytes:
        return generate_latest(self.registry)
