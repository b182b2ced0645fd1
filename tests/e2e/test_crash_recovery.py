"""Fault tests against the real server: workers killed mid-request, clients retrying; nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select

from service.store.models import ObservationRow, QuestionnaireResponseRow
from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import truncate_pg
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready

pytestmark = pytest.mark.e2e
SUBMISSIONS = 24
CLIENTS = 4


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_database")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Workers also die at points inside the submission transaction, not only between requests.
    faults = "after-response=0.04,after-observations=0.04,before-commit=0.04"
    env = service_env(port, url, PROMS_LOG_LEVEL="ERROR", PROMS_FAULTS=faults)
    subprocess.run([PROMS, "db", "upgrade"], env=env, check=True, capture_output=True)
    process = subprocess.Popen([PROMS, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_ready(base, process, lambda: "see the service's exit status")
    yield base, url, process
    stop(process)
    if request.param == "postgresql":
        engine = create_engine(url)
        truncate_pg(engine)
        engine.dispose()


def _submit_until_acknowledged(base: str, identifier: str) -> str:
    body = scored_response(("often", "never", "always"), patient=f"p-{identifier}")
    body["identifier"] = {"system": "urn:crash-test", "value": identifier}
    deadline = time.monotonic() + 120
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            result = requests.post(
                f"{base}/fhir/QuestionnaireResponse", json=body,
                headers={"Content-Type": "application/fhir+json"}, timeout=5,
            )  # fmt: skip
            if result.status_code in (200, 201):
                return str(result.json()["id"])
            assert result.status_code >= 500, result.text  # a client error would be a real bug
        except requests.RequestException:
            pass  # connection dropped by a dying worker: retry, as an interface engine does
        time.sleep(0.05 * min(attempt, 10))
    raise AssertionError(f"{identifier} was not acknowledged within two minutes of retries")


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def test_killed_workers_lose_nothing_acknowledged_and_store_nothing_twice(
    served: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    base, url, process = served
    requests.post(f"{base}/fhir/Questionnaire", json=scored_questionnaire(), timeout=10).raise_for_status()
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(numbers: list[int]) -> None:
        for number in numbers:
            identifier = f"crash-{number}"
            response_id = _submit_until_acknowledged(base, identifier)
            with lock:
                acknowledged[identifier] = response_id

    def killer() -> None:
        chooser = random.Random(7)
        while not stop.wait(0.6):
            pids = _workers(process.pid)
            if pids:
                os.kill(chooser.choice(pids), signal.SIGKILL)

    threads = [threading.Thread(target=client, args=(list(range(i, SUBMISSIONS, CLIENTS)),)) for i in range(CLIENTS)]
    kill_thread = threading.Thread(target=killer)
    kill_thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    kill_thread.join()

    assert len(acknowledged) == SUBMISSIONS
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(QuestionnaireResponseRow.identifier_value, QuestionnaireResponseRow.id).where(
                QuestionnaireResponseRow.deleted.is_(False)
            )
        ).all()
        per_response = dict(
            connection.execute(
                select(ObservationRow.derived_from_id, func.count()).group_by(ObservationRow.derived_from_id)
            ).all()
        )
    engine.dispose()
    stored = {identifier: response_id for identifier, response_id in rows}
    assert len(rows) == SUBMISSIONS  # none stored twice
    assert stored == acknowledged  # every acknowledged response is there, under the id the client was given
    # None half-written: each response has its panel and total Observation, and no Observation is orphaned.
    assert all(per_response.get(response_id) == 2 for response_id in stored.values())
    assert set(per_response) == set(stored.values())
