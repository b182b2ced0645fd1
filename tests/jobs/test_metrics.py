"""The worker's Prometheus figures move when what they measure happens: notifications, backlog, exports, the pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from service.backlog import database_figures
from service.exports.runner import Exporter
from service.fhir.dates import utcnow
from service.observability import PoolFigures, WorkerMetrics
from service.store import exports as store
from service.store.models import ExportFile
from service.work import WorkRounds
from tests.api.builders import questionnaire, response
from tests.conftest import Fhir
from tests.jobs.receiver import Receiver
from tests.jobs.test_delivery import subscription, wait_status

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture
def metrics(app: Flask) -> WorkerMetrics:
    services = app.web.services
    watched = WorkerMetrics()
    watched.watch(lambda: database_figures(services), services.db.pool_figures)
    return watched


def reader(metrics: WorkerMetrics) -> Callable[..., float]:
    """A figure as a scrape shows it (the registry's text, parsed back), by name and labels."""

    def value(name: str, **labels: str) -> float:
        for family in text_string_to_metric_families(metrics.render().decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        raise AssertionError(f"{name}{labels} is not in the scrape")

    return value


def until(condition: Callable[[], bool], work: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the figure never moved"
        work()
        time.sleep(0.02)


def test_notifications_backlog_and_errors_move_with_delivery(
    app: Flask, fhir: Fhir, receiver: Receiver, metrics: WorkerMetrics
) -> None:
    value = reader(metrics)
    rounds = WorkRounds(app.web.services, "metrics-worker", metrics)
    assert value("proms_database_up") == 1
    for stage in ("unmatched", "undelivered"):
        assert value("proms_outbox_backlog", stage=stage) == 0
    assert value("proms_outbox_oldest_undelivered_age_seconds") == 0
    assert value("proms_subscriptions_error") == 0

    fhir.create(questionnaire())
    created = fhir.create(subscription(receiver.url, payload="id-only"))
    until(lambda: value("proms_notifications_sent_total", type="handshake") == 1, rounds.deliver_round)
    wait_status(fhir, created["id"], "active")

    receiver.status = 500  # the endpoint fails from now on
    fhir.create(response())
    time.sleep(0.05)
    assert value("proms_outbox_backlog", stage="unmatched") == 1
    assert value("proms_outbox_oldest_undelivered_age_seconds") >= 0.05
    rounds.deliver_round()  # matched to the subscription, then sent, and refused
    assert value("proms_outbox_backlog", stage="unmatched") == 0
    assert value("proms_outbox_backlog", stage="undelivered") == 1
    assert value("proms_outbox_oldest_undelivered_age_seconds") >= 0.05
    assert value("proms_notifications_failed_total", type="event-notification") == 1
    assert value("proms_notifications_sent_total", type="event-notification") == 0

    # Retried until PROMS_WORKER_MAX_FAILURES (3 here): the subscription turns error.
    until(lambda: value("proms_subscriptions_error") == 1, rounds.deliver_round)
    assert value("proms_notifications_failed_total", type="event-notification") == 3
    assert value("proms_outbox_backlog", stage="undelivered") == 1

    receiver.status = 200  # back: the errored subscription's next try succeeds
    until(lambda: value("proms_notifications_sent_total", type="event-notification") == 1, rounds.deliver_round)
    assert value("proms_subscriptions_error") == 0
    assert value("proms_outbox_backlog", stage="undelivered") == 0
    assert value("proms_outbox_oldest_undelivered_age_seconds") == 0


def test_exports_by_status_and_bytes_written_move_with_exports(app: Flask, fhir: Fhir, metrics: WorkerMetrics) -> None:
    value = reader(metrics)
    services = app.web.services
    fhir.create(questionnaire())
    for day in range(1, 6):
        fhir.create(response(authored=f"2024-07-0{day}T10:00:00Z"))
    group = fhir.create({"resourceType": "Group", "type": "person", "actual": True})
    assert all(value("proms_exports", status=status) == 0 for status in ("queued", "running", "completed", "failed"))

    for path in ("$export", f"Group/{group['id']}/$export"):
        assert fhir.get(path, headers=ASYNC).status_code == 202
    assert value("proms_exports", status="queued") == 2
    with services.db.transaction() as session:
        store.claim_job(session, now=utcnow(), owner="other-worker", lease_seconds=0.1, transaction_time=utcnow())
    assert value("proms_exports", status="queued") == 1 and value("proms_exports", status="running") == 1

    assert fhir.delete(f"Group/{group['id']}").status_code == 200  # that export will fail: its Group is gone
    time.sleep(0.15)  # the other worker's lease lapses
    exporter = Exporter(services, "metrics-worker", metrics)
    while exporter.run_next(threading.Event()):
        pass
    assert value("proms_exports", status="completed") == 1 and value("proms_exports", status="failed") == 1
    assert value("proms_exports", status="queued") == 0 and value("proms_exports", status="running") == 0
    with services.db.read_session() as session:
        stored = session.scalar(select(func.sum(ExportFile.size_bytes)))
    assert stored and value("proms_export_bytes_written_total") == stored


def test_the_pool_figures_follow_connections_in_use(app: Flask, metrics: WorkerMetrics) -> None:
    value = reader(metrics)
    engine = app.web.services.db.engine
    size = value("proms_db_pool_size")
    assert size == 5 and value("proms_db_pool_checked_out") == 0 and value("proms_db_pool_overflow") == 0
    connections = [engine.connect() for _ in range(int(size) + 2)]
    try:
        assert value("proms_db_pool_checked_out") == size + 2
        # Beyond the pool's size: these two, and the connection an earlier scrape read the database with.
        assert value("proms_db_pool_overflow") in (2, 3)
    finally:
        for connection in connections:
            connection.close()
    assert value("proms_db_pool_checked_out") == 0


def test_without_the_database_the_scrape_says_so_and_keeps_the_rest() -> None:
    def unreachable() -> Any:
        raise ConnectionError("refused")

    metrics = WorkerMetrics()
    metrics.watch(unreachable, lambda: PoolFigures(size=5, checked_out=1, overflow=0))
    metrics.export_bytes.inc(10)
    value = reader(metrics)
    assert value("proms_database_up") == 0
    assert value("proms_db_pool_checked_out") == 1 and value("proms_export_bytes_written_total") == 10
    assert "proms_outbox_backlog" not in metrics.render().decode()
