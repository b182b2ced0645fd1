"""The `proms worker` process: killed with SIGKILL mid-delivery and restarted, it loses nothing; SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.config import Settings
from tests.api.builders import questionnaire, response
from tests.conftest import Fhir
from tests.jobs.receiver import Receiver
from tests.jobs.test_delivery import subscription, wait_status

PROMS = str(Path(sys.executable).parent / "proms")


def worker_env(settings: Settings, *, level: str = "WARNING", metrics_port: int | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PROMS_DATABASE_URL": settings.database_url,
        "PROMS_BASE_URL": settings.base_url,
        "PROMS_LOG_LEVEL": level,
        "PROMS_WORKER_POLL_SECONDS": "0.02",
        "PROMS_WORKER_LEASE_SECONDS": "1.5",
        "PROMS_WORKER_RETRY_BASE_SECONDS": "0.05",
        "PROMS_WORKER_HTTP_TIMEOUT_SECONDS": "10",
        "PROMS_EXPORT_SINCE_MARGIN_SECONDS": "0",
        "PROMS_SUBSCRIPTION_ALLOWED_NETWORKS": ",".join(settings.subscription_allowed_networks),
    }
    if metrics_port is not None:
        env["PROMS_WORKER_METRICS_PORT"] = str(metrics_port)
    return env


def start_worker(
    settings: Settings, log: Path, *, level: str = "WARNING", metrics_port: int | None = None
) -> subprocess.Popen[bytes]:
    env = worker_env(settings, level=level, metrics_port=metrics_port)
    with log.open("ab") as output:
        return subprocess.Popen([PROMS, "worker"], env=env, stdout=output, stderr=output)


def first_occurrences(numbers: list[int]) -> list[int]:
    seen: list[int] = []
    for number in numbers:
        if number not in seen:
            seen.append(number)
    return seen


def test_worker_killed_mid_delivery_and_restarted_loses_nothing(
    fhir: Fhir, receiver: Receiver, settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    fhir.create(questionnaire())
    created = fhir.create(subscription(receiver.url, payload="id-only"))
    receiver.stall_on_event, receiver.stall_seconds = 2, 4.0
    process = start_worker(settings, log)
    try:
        wait_status(fhir, created["id"], "active", timeout=20)
        for day in range(1, 5):
            fhir.create(response(authored=f"2024-04-0{day}T09:00:00Z"))
        assert receiver.stalling.wait(timeout=10), "the worker never got to event 2"
        process.send_signal(signal.SIGKILL)  # mid-delivery: event 2 was sent, never acknowledged
        process.wait(timeout=10)
        receiver.stall_on_event = None
        process = start_worker(settings, log)
        receiver.wait_for(lambda: set(receiver.event_numbers()) >= {1, 2, 3, 4}, timeout=20)
        assert first_occurrences(receiver.event_numbers()) == [1, 2, 3, 4]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0, f"the worker did not stop cleanly on SIGTERM: {log.read_text()[-2000:]}"


def test_repeated_sigterms_to_a_busy_worker_stop_it_in_time(
    fhir: Fhir, receiver: Receiver, settings: Settings, tmp_path: Path
) -> None:
    """Signals arrive while the worker is busy delivering and logging every delivery: its handler only sets the
    stop event (no I/O that could deadlock on a lock the interrupted code holds), so it stops cleanly, promptly."""
    log = tmp_path / "worker.log"
    fhir.create(questionnaire())
    created = fhir.create(subscription(receiver.url, payload="id-only"))
    for day in range(1, 29):
        fhir.create(response(authored=f"2024-04-{day:02d}T09:00:00Z"))
    process = start_worker(settings, log, level="INFO")
    try:
        wait_status(fhir, created["id"], "active", timeout=20)
        receiver.wait_for(lambda: len(receiver.event_numbers()) >= 2, timeout=20)  # busy delivering
        for _ in range(6):
            process.send_signal(signal.SIGTERM)
            time.sleep(0.005)
        started = time.monotonic()
        process.wait(timeout=15)
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"the worker did not stop cleanly: {log.read_text()[-2000:]}"
    assert "worker stopped" in log.read_text()


def test_the_worker_serves_its_metrics_on_its_own_port_and_refuses_a_bad_one(
    fhir: Fhir, settings: Settings, tmp_path: Path
) -> None:
    import requests

    from service.config import SettingsError
    from tests.e2e.processes import free_port

    for wrong in ("0", "70000", "metrics"):
        with pytest.raises(SettingsError, match="PROMS_WORKER_METRICS_PORT"):
            Settings.from_env({"PROMS_WORKER_METRICS_PORT": wrong})
    assert Settings.from_env({}).worker_metrics_port is None  # not served unless asked for

    log = tmp_path / "worker.log"
    port = free_port()
    fhir.create(questionnaire())
    assert fhir.get("$export", headers={"Prefer": "respond-async"}).status_code == 202
    process = start_worker(settings, log, metrics_port=port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                scrape = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                if 'proms_exports{status="completed"} 1.0' in scrape.text:
                    break
            except requests.ConnectionError:
                pass  # not listening yet
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        assert scrape.status_code == 200 and scrape.headers["Content-Type"].startswith("text/plain")
        for name in (
            "proms_outbox_backlog",
            "proms_outbox_oldest_undelivered_age_seconds",
            "proms_notifications_sent_total",
            "proms_notifications_failed_total",
            "proms_subscriptions_error",
            "proms_export_bytes_written_total",
            "proms_db_pool_checked_out",
            "proms_db_pool_overflow",
        ):
            assert f"\n{name}" in scrape.text, name  # fmt: skip
        # A second worker asked for the same port says why it cannot start.
        second = subprocess.run(
            [PROMS, "worker"], env=worker_env(settings, metrics_port=port), capture_output=True, text=True, timeout=30
        )
        assert second.returncode != 0 and f"cannot serve its metrics on 127.0.0.1:{port}" in second.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0, log.read_text()[-2000:]
