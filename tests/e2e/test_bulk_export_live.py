"""Bulk export against the real thing: `proms serve` and `proms worker`, data written by a FHIR client library."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient

from tests.api.builders import questionnaire, response
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready

pytestmark = pytest.mark.e2e


@pytest.fixture
def server_and_worker(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(
        port,
        f"sqlite:///{tmp_path / 'live.sqlite3'}",
        PROMS_EXPORT_POLL_SECONDS="0.2",
        PROMS_EXPORT_SINCE_MARGIN_SECONDS="0.5",
        PROMS_WORKER_POLL_SECONDS="0.1",
    )
    subprocess.run([PROMS, "db", "upgrade"], env=env, check=True, capture_output=True)
    log_path = tmp_path / "processes.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([PROMS, "serve"], env=env, stdout=log, stderr=log)
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_until_ready(base, server, log_path.read_text)
        # Once the server has the database open, as `make run` has it open before it starts both.
        with log_path.open("ab") as log:
            worker = subprocess.Popen([PROMS, "worker"], env=env, stdout=log, stderr=log)
        yield base
    finally:
        processes = [process for process in (worker, server) if process is not None]
        for process in processes:
            stop(process)
    assert all(process.returncode == 0 for process in processes), log_path.read_text()


def test_a_fhir_client_writes_then_a_bulk_client_exports_everything(server_and_worker: str) -> None:
    client = SyncFHIRClient(f"{server_and_worker}/fhir")
    client.resource("Questionnaire", **{k: v for k, v in questionnaire().items() if k != "resourceType"}).save()
    written = set()
    for day in range(1, 11):
        body = response(patient=f"p{day % 3}", authored=f"2024-06-{day:02d}T08:00:00Z")
        qr = client.resource("QuestionnaireResponse", **{k: v for k, v in body.items() if k != "resourceType"})
        qr.save()
        written.add(qr.id)
    time.sleep(0.6)  # past the export's safety margin

    kick_off = requests.get(
        f"{server_and_worker}/fhir/$export",
        headers={"Prefer": "respond-async", "Accept": "application/fhir+json"},
        timeout=10,
    )
    assert kick_off.status_code == 202
    status_url = kick_off.headers["Content-Location"]
    deadline = time.monotonic() + 30
    while (status := requests.get(status_url, timeout=10)).status_code != 200:
        assert status.status_code in (202, 429) and time.monotonic() < deadline, status.text
        time.sleep(float(status.headers.get("Retry-After", "1")))
    manifest = status.json()
    assert manifest["requiresAccessToken"] is True

    exported: dict[str, set[str]] = {}
    for output in manifest["output"]:
        with requests.get(
            output["url"], headers={"Accept": "application/fhir+ndjson"}, stream=True, timeout=10
        ) as file:
            assert file.status_code == 200
            lines = [line for line in file.iter_lines() if line]
        assert len(lines) == output["count"]
        for line in lines:
            data = orjson.loads(line)
            get_fhir_model_class(data["resourceType"]).model_validate(data)
            exported.setdefault(data["resourceType"], set()).add(data["id"])
    assert exported["QuestionnaireResponse"] == written
    assert len(exported["Questionnaire"]) == 1
    # What the files hold is what the FHIR client reads from the server.
    some = next(iter(written))
    assert client.reference("QuestionnaireResponse", some).to_resource()["id"] == some
    assert requests.delete(status_url, timeout=10).status_code == 202
    assert requests.get(status_url, timeout=10).status_code == 404
