"""The real thing: `proms serve` (gunicorn) from the checkout, driven over HTTP by a FHIR client library."""

from __future__ import annotations

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
