"""The service's gunicorn worker takes a new connection only while one of its threads is free."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.workers.gthread import ThreadWorker

from service import serving
from service.serving import FreeThreadWorker


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> FreeThreadWorker:
    handed: list[Any] = []
    monkeypatch.setattr(ThreadWorker, "enqueue_req", lambda self, conn: handed.append(conn))
    monkeypatch.setattr(ThreadWorker, "finish_request", lambda self, conn, fs: None)
    instance = FreeThreadWorker.__new__(FreeThreadWorker)
    instance._busy = 0
    instance._refusing_since = None
    instance.cfg = SimpleNamespace(threads=2)
    instance.worker_connections = 1000
    instance.nr_conns = 0
    return instance


def _accepting(worker: FreeThreadWorker) -> bool:
    return bool(worker.nr_conns < worker.worker_connections)  # gthread's own test in its loop


def test_a_worker_stops_accepting_while_every_thread_is_busy(worker: FreeThreadWorker) -> None:
    assert _accepting(worker)
    for _ in range(2):
        worker.nr_conns += 1
        worker.enqueue_req(object())
    assert not _accepting(worker)  # both threads busy: the other workers take the next connections
    worker.finish_request(object(), Future())
    assert _accepting(worker)  # a thread is free again
    worker.nr_conns = 1000
    assert not _accepting(worker)  # and the configured limit still holds


def test_a_busy_worker_still_lets_a_waiting_connection_in_after_a_short_while(
    worker: FreeThreadWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(2):
        worker.nr_conns += 1
        worker.enqueue_req(object())
    clock = [100.0]
    monkeypatch.setattr(serving.time, "monotonic", lambda: clock[0])
    assert not _accepting(worker)
    clock[0] += serving.MAX_REFUSAL_SECONDS / 2
    assert not _accepting(worker)
    clock[0] += serving.MAX_REFUSAL_SECONDS / 2 + 0.001
    assert _accepting(worker)  # refused long enough: one connection is let in
    assert not _accepting(worker)  # and the wait starts again
    clock[0] += serving.MAX_REFUSAL_SECONDS + 0.001
    assert _accepting(worker)


def test_the_service_runs_this_worker() -> None:
    from service.config import PROJECT_ROOT

    assert 'worker_class = "service.serving.FreeThreadWorker"' in (PROJECT_ROOT / "gunicorn.conf.py").read_text()
