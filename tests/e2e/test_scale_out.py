"""Two web nodes and two workers on one PostgreSQL, as two hosts would run them: nothing shared but the database.

Each host has its own working directory, temporary directory and PROMS_* directories; both nodes answer for the
same public base URL (a balancer's, here node A's address), and the test plays the balancer, sending each request
to whichever node it likes. A clinician-app session is started on one node and used and ended on the other; an
export is started on one node and downloaded from the other; the worker running it is SIGKILLed mid-export, and
the other worker takes it over once the lease lapses and starts it again from nothing: every resource is exported
exactly once, and no piece the dead worker wrote is left behind or served.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import Engine, create_engine, func, select

from service.store.models import ExportChunk, ExportFile, ExportJob
from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import truncate_pg
from tests.e2e.auth_server import SmartEhr
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.pg]

PATIENT = {"resourceType": "Patient", "id": "ehr-2002", "name": [{"text": "Sam Okafor"}]}
RESPONSES = 40
LEASE_SECONDS = 2.0


@dataclass
class Host:
    """One machine's share of the service: a web node and a worker, with directories of their own."""

    name: str
    directory: Path
    env: dict[str, str]
    base: str
    metrics: str
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "processes.log"

    def start(self, command: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            return subprocess.Popen([PROMS, command], env=self.env, cwd=self.directory, stdout=log, stderr=log)

    def url(self, public: str) -> str:
        """A public URL (the balancer's) sent to this node instead."""
        parts = urlsplit(public)
        return urlunsplit(parts._replace(netloc=urlsplit(self.base).netloc))


@pytest.fixture
def ehr(tmp_path: Path) -> Iterator[tuple[SmartEhr, int]]:
    public_port = free_port()
    public = f"http://127.0.0.1:{public_port}"
    server = SmartEhr(free_port(), app_base=public, service_fhir_base=f"{public}/fhir")
    server.add_patient(PATIENT)
    server.start()
    yield server, public_port
    server.stop()


@pytest.fixture
def hosts(ehr: tuple[SmartEhr, int], pg_database: str, tmp_path: Path) -> Iterator[list[Host]]:
    server, public_port = ehr
    secret = secrets.token_hex(32)  # the one setting nodes must share besides the database
    made = []
    for index, name in enumerate(("a", "b")):
        directory = tmp_path / f"host-{name}"
        (directory / "tmp").mkdir(parents=True)
        port = public_port if index == 0 else free_port()  # node A answers at the balancer's address
        metrics_port = free_port()
        env = service_env(
            port,
            pg_database,
            PROMS_BASE_URL=f"http://127.0.0.1:{public_port}/fhir",
            PROMS_WORKERS="1",
            PROMS_LOG_LEVEL="WARNING",
            PROMS_AUTH="jwt",
            PROMS_AUTH_ISSUER=server.base,
            PROMS_AUTH_JWKS_URL=f"{server.base}/jwks",
            PROMS_SMART_CLIENT_ID="proms-clinician-app",
            PROMS_SMART_ISS=server.fhir_base,
            PROMS_APP_SECRET_KEY=secret,
            PROMS_DEV_EHR_DIR=str(directory / "dev-ehr"),
            PROMS_WORKER_POLL_SECONDS="0.05",
            PROMS_WORKER_LEASE_SECONDS=str(LEASE_SECONDS),
            PROMS_WORKER_METRICS_PORT=str(metrics_port),
            PROMS_EXPORT_CHUNK_ROWS="1",  # many small rounds: an export long enough to be killed in the middle
            PROMS_EXPORT_CHUNK_BYTES="4096",
            PROMS_EXPORT_POLL_SECONDS="0.2",
            PROMS_EXPORT_SINCE_MARGIN_SECONDS="0",
            TMPDIR=str(directory / "tmp"),  # gunicorn's metrics files, anything temporary
        )
        made.append(Host(name, directory, env, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"))
    try:
        for host in made:
            host.server = host.start("serve")
        for host in made:
            assert host.server is not None
            wait_until_ready(host.base, host.server, host.log.read_text)
        for host in made:
            host.worker = host.start("worker")
        yield made
    finally:
        for host in made:
            for process in (host.worker, host.server):
                if process is not None and process.poll() is None:
                    stop(process)
        engine = create_engine(pg_database)
        truncate_pg(engine)
        engine.dispose()
    for host in made:
        for process in (host.worker, host.server):
            assert process is None or process.returncode in (0, -signal.SIGKILL), host.log.read_text()[-3000:]


@pytest.fixture
def database(pg_database: str) -> Iterator[Engine]:
    engine = create_engine(pg_database)
    yield engine
    engine.dispose()


def system_token(ehr: SmartEhr) -> str:
    client = ehr.backend_client()
    with OAuth2Session(client.client_id, client.client_secret, scope="system/*.cruds") as session:
        token = session.fetch_token(f"{ehr.base}/token", grant_type="client_credentials")
    return str(token["access_token"])


def scrape(host: Host, name: str, **labels: str) -> float:
    text = requests.get(host.metrics, timeout=5).text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{wanted} is not in {host.name}'s metrics")


def launch_on_one_node_use_on_the_other(ehr: SmartEhr, a: Host, b: Host) -> None:
    browser = requests.Session()
    launch = secrets.token_urlsafe(16)
    ehr.launches[launch] = PATIENT["id"]
    started = browser.get(
        f"{a.base}/app/launch", params={"iss": ehr.fhir_base, "launch": launch}, allow_redirects=False, timeout=10
    )
    assert started.status_code == 302, started.text
    authorize = started.headers["Location"]
    assert browser.get(authorize, timeout=10).status_code == 200  # the EHR's consent page
    allowed = browser.post(authorize, data={"decision": "allow"}, allow_redirects=False, timeout=10)
    callback = allowed.headers["Location"]
    assert urlsplit(callback).path == "/app/callback"
    # The balancer sends the callback to the other node: it finds the pending launch node A stored.
    signed_in = browser.get(b.url(callback), allow_redirects=False, timeout=20)
    assert (signed_in.status_code, signed_in.headers["Location"]) == (302, "/app/patient"), signed_in.text
    for host in (a, b, a):
        page = browser.get(f"{host.base}/app/patient", allow_redirects=False, timeout=10)
        assert page.status_code == 200 and "Sam Okafor" in page.text, (host.name, page.status_code)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    signed_out = browser.post(f"{b.base}/app/sign-out", data={"csrf_token": csrf.group(1)}, allow_redirects=False)
    assert signed_out.status_code == 302
    for host in (a, b):  # ended on every node at once
        gone = browser.get(f"{host.base}/app/patient", allow_redirects=False, timeout=10)
        assert (gone.status_code, gone.headers["Location"]) == (302, "/app/launch"), host.name


def test_any_node_serves_any_request_and_a_dead_worker_s_export_is_taken_over(
    hosts: list[Host], ehr: tuple[SmartEhr, int], database: Engine
) -> None:
    a, b = hosts
    server, _ = ehr
    launch_on_one_node_use_on_the_other(server, a, b)

    headers = {"Authorization": f"Bearer {system_token(server)}", "Content-Type": "application/fhir+json"}
    fhir = requests.Session()
    fhir.headers.update(headers)
    assert fhir.post(f"{a.base}/fhir/Questionnaire", data=orjson.dumps(scored_questionnaire())).status_code == 201
    written = set()
    for number in range(RESPONSES):
        node = (a, b)[number % 2]
        body = scored_response(("often", "never", "always"), patient=f"p{number % 7}")
        created = fhir.post(f"{node.base}/fhir/QuestionnaireResponse", data=orjson.dumps(body), timeout=10)
        assert created.status_code == 201, created.text
        written.add(created.json()["id"])
    time.sleep(0.05)  # past the moment the export will answer for

    kick_off = fhir.get(f"{a.base}/fhir/$export", headers={"Prefer": "respond-async"}, timeout=10)
    assert kick_off.status_code == 202, kick_off.text
    status_url = kick_off.headers["Content-Location"]
    job_id = status_url.rsplit("/", 1)[1]

    # Find the worker running it, and kill it once it has stored part of the files.
    workers = {host.worker.pid: host for host in hosts if host.worker is not None}
    deadline = time.monotonic() + 30
    while True:
        with database.connect() as connection:
            job = connection.execute(select(ExportJob).where(ExportJob.id == job_id)).one()
            chunks = connection.scalar(select(func.count()).where(ExportChunk.job_pk == job.pk))
        if job.status == "running" and chunks and job.lease_owner:
            break
        assert job.status in ("queued", "running") and time.monotonic() < deadline, job.status
        time.sleep(0.01)
    pid = int(job.lease_owner.split(":")[1])
    dead, survivor = workers[pid], next(host for host in hosts if host.worker is not None and host.worker.pid != pid)
    assert dead.worker is not None
    os.kill(pid, signal.SIGKILL)
    dead.worker.wait(timeout=10)
    with database.connect() as connection:
        lease_until = connection.scalar(select(ExportJob.lease_until).where(ExportJob.id == job_id))
        left_behind = connection.scalar(select(func.count()).where(ExportChunk.job_pk == job.pk))
    assert left_behind  # half-written files of the dead worker are in the database...
    half = fhir.get(f"{b.base}/fhir/$export-file/{job_id}/QuestionnaireResponse/1.ndjson", timeout=10)
    assert half.status_code == 404  # ...and nobody is served them

    deadline = time.monotonic() + 60
    while (status := fhir.get(b.url(status_url), timeout=10)).status_code != 200:
        assert status.status_code in (202, 429) and time.monotonic() < deadline, status.text
        time.sleep(0.25)
    with database.connect() as connection:
        finished = connection.execute(select(ExportJob).where(ExportJob.id == job_id)).one()
        files = connection.execute(select(ExportFile).where(ExportFile.job_pk == job.pk)).all()
        stored = dict(
            connection.execute(
                select(ExportChunk.resource_type, func.sum(func.length(ExportChunk.data)))
                .where(ExportChunk.job_pk == job.pk)
                .group_by(ExportChunk.resource_type)
            ).all()
        )
    assert finished.status == "completed" and finished.finished_at >= lease_until  # not before the lease lapsed
    # Only what the survivor wrote is stored: every piece belongs to a recorded file, none is left over.
    by_type: dict[str, int] = {}
    for row in files:
        by_type[row.resource_type] = by_type.get(row.resource_type, 0) + row.size_bytes
    assert stored == by_type

    manifest = status.json()
    exported: dict[str, list[str]] = {}
    downloaded = 0
    for output in manifest["output"]:
        assert output["url"].startswith(a.base)  # the public address; fetched from node B
        with fhir.get(b.url(output["url"]), headers={"Accept": "application/fhir+ndjson"}, stream=True) as file:
            assert file.status_code == 200 and file.headers["Content-Type"] == "application/fhir+ndjson"
            body = file.content
        downloaded += len(body)
        lines = body.splitlines()
        assert len(lines) == output["count"]
        exported.setdefault(output["type"], []).extend(orjson.loads(line)["id"] for line in lines)
    assert sorted(exported["QuestionnaireResponse"]) == sorted(written)  # every one, once
    assert len(exported["Observation"]) == len(set(exported["Observation"])) == 2 * RESPONSES
    assert len(exported["Provenance"]) == RESPONSES
    assert downloaded == sum(by_type.values())
    assert manifest["error"] == []

    # The survivor's metrics saw it: every byte of the finished export is its own.
    assert scrape(survivor, "proms_export_bytes_written_total") == downloaded
    assert scrape(survivor, "proms_exports", status="completed") == 1
    assert scrape(survivor, "proms_exports", status="running") == 0
