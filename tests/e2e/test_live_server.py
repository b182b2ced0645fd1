"""The real thing: `proms serve` (gunicorn) from the checkout, driven over HTTP by a FHIR client library."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fhirpy import SyncFHIRClient

from tests.api.builders import QUESTIONNAIRE_URL, questionnaire, response
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(port, f"sqlite:///{tmp_path / 'live.sqlite3'}")
    subprocess.run([PROMS, "db", "upgrade"], env=env, check=True, capture_output=True)
    process = subprocess.Popen([PROMS, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_ready(base, process, lambda: process.communicate(timeout=5)[1].decode())
        yield base
    finally:
        stdout, _ = stop(process)
    assert process.returncode == 0, "gunicorn did not stop cleanly on SIGTERM"
    printed = stdout.decode()
    assert printed.count("Recovery PROM service") == 1, printed  # the banner, once for all gunicorn workers
    for where in (f"{base}/fhir", f"{base}/fhir/metadata", f"{base}/cds-services", f"{base}/readyz", "docs/api.md"):
        assert where in printed, f"the banner does not say {where}: {printed}"
    assert f"{base}/app" not in printed  # the clinician app is not configured here


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


def _raw_exchange(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send a malformed chunk) and read the whole answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("chunk_size", [b"zz", b"-1", b"1;\rx"])
def test_a_malformed_chunked_body_is_a_400_operation_outcome(live_server: str, chunk_size: bytes) -> None:
    status, headers, body = _raw_exchange(
        live_server,
        b"POST /fhir/QuestionnaireResponse HTTP/1.1\r\nHost: proms.test\r\nContent-Type: application/fhir+json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunk_size + b"\r\n{}\r\n0\r\n\r\n",
    )
    assert status == 400
    assert headers["content-type"].startswith("application/fhir+json")
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "chunked transfer coding is malformed" in outcome["issue"][0]["details"]["text"]
