"""JSON-lines logs carrying the request id, and Prometheus metrics (multi-process aware under gunicorn)."""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from pythonjsonlogger.json import JsonFormatter

_HANDLER_NAME = "proms-json"


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

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Under gunicorn every worker writes its own files; the scrape sums them all.
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
