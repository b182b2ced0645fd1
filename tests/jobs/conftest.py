"""The worker's tests: fast timings, export files under the test's folder, a loopback receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from service.config import Settings
from service.jobs.worker import Worker
from service.services import build_services
from tests.conftest import Keys, jwt_settings
from tests.jobs.receiver import Receiver


def fast(settings: Settings, tmp_path: Path) -> Settings:
    return settings.with_(
        worker_poll_seconds=0.02,
        worker_max_failures=3,
        worker_retry_base_seconds=0.05,
        worker_retry_max_seconds=0.2,
        worker_error_retry_seconds=0.3,
        worker_http_timeout_seconds=3.0,
        worker_lease_seconds=5.0,
        export_poll_seconds=0.5,
        export_since_margin_seconds=0.0,
        # The test receivers listen on loopback: allowed here as an operator allows their own integration engine.
        subscription_allowed_networks=("127.0.0.0/8",),
    )


@pytest.fixture
def settings(database_url: str, keys: Keys, tmp_path: Path) -> Settings:
    return fast(jwt_settings(database_url, keys), tmp_path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.stop()


class RunningWorker:
    def __init__(self, settings: Settings) -> None:
        self.services = build_services(settings)
        self.worker = Worker(self.services)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the worker did not stop"
        self.services.close()


@pytest.fixture
def worker(app: Flask, settings: Settings) -> Iterator[RunningWorker]:
    # The app opens the (copied) SQLite file first: two first connections racing to switch a fresh file to
    # WAL can make one of them fail.
    app.web.services.db.ping()
    running = RunningWorker(settings)
    yield running
    running.stop()
