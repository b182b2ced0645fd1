"""The real thing: `proms serve` (gunicorn) from the checkout, driven over HTTP by a FHIR client library."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fhirpy import SyncFHIRClient

from tests.api.builders import QUESTIONNAIRE_URL, questionnaire, response

pytestmark = pytest.mark.e2e
PROMS = str(Path(sys.executable).parent / "proms")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PROMS_DATABASE_URL": f"sqlite:///{tmp_path / 'live.sqlite3'}",
        "PROMS_PORT": str(port),
        "PROMS_WORKERS": "2",
        "PROMS_LOG_LEVEL": "WARNING",
        "PROMS_BASE_URL": f"{base}/fhir",
        "PROMS_AUTH": "none",
    }
    subprocess.run([PROMS, "db", "upgrade"], env=env, check=True, capture_output=True)
    process = subprocess.Popen([PROMS, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass  # not listening yet, or workers still starting
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {process.communicate(timeout=5)[1].decode()}")
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0, "gunicorn did not stop cleanly on SIGTERM"
    assert f"FHIR API at {base}/fhir" in stdout.decode()


def test_fhir_client_creates_reads_and_pages_through_a_search(live_server: str) -> None:
    client = SyncFHIRClient(f"{live_server}/fhir")
    q = client.resource("Questionnaire", **{k: v for k, v in questionnaire().items() if k != "resourceType"})
    q.save()
    assert q.id
    created = []
    for day in range(1, 12):
        body = response(authored=f"2024-05-{day:02d}T08:00:00Z")
        qr = client.resource("QuestionnaireResponse", **{k: v for k, v in body.items() if k != "resourceType"})
        qr.save()
        created.append(qr.id)
    read = client.reference("QuestionnaireResponse", created[0]).to_resource()
    assert read["questionnaire"] == f"{QUESTIONNAIRE_URL}|1.0.0"
    search = client.resources("QuestionnaireResponse").search(patient="p1").sort("authored").limit(4)
    assert search.count() == 11
    seen = [resource.id for resource in search.fetch_all()]
    assert seen == created  # three pages of 4, 4, 3, in authored order, none twice
    bad = requests.post(
        f"{live_server}/fhir/QuestionnaireResponse",
        data=b'{"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": "urn:none"}',
        headers={"Content-Type": "application/fhir+json"},
        timeout=5,
    )
    assert bad.status_code == 422
    assert bad.json()["resourceType"] == "OperationOutcome"
    metrics = requests.get(f"{live_server}/metrics", timeout=5).text
    assert 'proms_http_requests_total{method="POST",route="/fhir/<resource_type>",status="201"}' in metrics
