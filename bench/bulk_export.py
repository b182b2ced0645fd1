"""Bulk export of 100,000 responses by `proms worker`: python -m bench.bulk_export [--count N] [--database-url URL].

Stores N QuestionnaireResponses (about 1.8 KB each) in a scratch database, straight into the table (this
measures the export, not submission), kicks off a system-level export through the WSGI app, runs a
`proms worker` process until the manifest is ready (the files are stored in the database, in chunks), downloads
the files through the WSGI app as a stream, and prints the wall time, the throughput, the output size, the
download time and the worker's peak resident memory, which must stay under 200 MB however many resources there
are (exit status 1 otherwise). ``--database-url`` names a PostgreSQL server to create the scratch database on.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import insert

from bench.harness import scratch_database
from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.store.db import Database
from service.store.migrations import upgrade
from service.store.models import QuestionnaireResponseRow

PEAK_LIMIT_MB = 200
QUESTIONNAIRE = "http://bench.local/Questionnaire/phq-9-like|1.0.0"
BATCH = 5000


def _response(number: int, when: datetime) -> dict[str, Any]:
    resource_id = str(uuid.UUID(int=number))
    return {
        "resourceType": "QuestionnaireResponse",
        "id": resource_id,
        "meta": {"versionId": "1", "lastUpdated": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
        "questionnaire": QUESTIONNAIRE,
        "status": "completed",
        "subject": {"reference": f"Patient/p{number % 5000}"},
        "authored": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "item": [
            {"linkId": str(item), "text": f"Over the last two weeks, question {item}?",
             "answer": [{"valueCoding": {"system": "http://loinc.org", "code": f"LA6568-{item % 4}",
                                         "display": "Several days"}}]}
            for item in range(1, 10)
        ],
    }  # fmt: skip


def store_responses(database_url: str, count: int) -> None:
    db = Database(database_url)
    start = datetime(2024, 1, 1)
    rows = []
    for number in range(1, count + 1):
        when = start + timedelta(seconds=number)
        body = _response(number, when)
        rows.append(
            {
                "id": body["id"],
                "version_id": 1,
                "last_updated": when,
                "deleted": False,
                "resource_json": orjson.dumps(body).decode(),
                "questionnaire_url": QUESTIONNAIRE.split("|")[0],
                "questionnaire_version": "1.0.0",
                "status": "completed",
                "subject_type": "Patient",
                "subject_id": f"p{number % 5000}",
                "authored_low": when,
                "authored_high": when,
                "authored_key": when,
                "identifier_system_key": "",
            }
        )
        if len(rows) == BATCH or number == count:
            with db.transaction() as session:
                session.execute(insert(QuestionnaireResponseRow), rows)
            rows = []
    db.dispose()


def run(count: int, server_url: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="proms-bench-") as directory:
        folder = Path(directory)
        with scratch_database(server_url, folder) as url:
            return measure(count, url, folder)


def measure(count: int, url: str, folder: Path) -> int:
    upgrade(url, PROJECT_ROOT / "migrations")
    began = time.perf_counter()
    store_responses(url, count)
    print(f"stored {count:,} responses in {time.perf_counter() - began:.1f} s")

    settings = Settings(database_url=url, auth_mode="none", log_level="WARNING", export_poll_seconds=0)
    app = create_app(settings)
    client = app.test_client()
    kick_off = client.get("/fhir/$export?_type=QuestionnaireResponse", headers={"Prefer": "respond-async"})
    assert kick_off.status_code == 202, kick_off.get_data(as_text=True)
    status_path = kick_off.headers["Content-Location"].split(settings.base_url.removesuffix("/fhir"), 1)[1]

    env = {
        **os.environ,
        "PROMS_DATABASE_URL": url,
        "PROMS_LOG_LEVEL": "WARNING",
        "PROMS_WORKER_POLL_SECONDS": "0.05",
        "PROMS_EXPORT_SINCE_MARGIN_SECONDS": "0",
    }
    began = time.perf_counter()
    worker = subprocess.Popen([str(Path(sys.executable).parent / "proms"), "worker"], env=env)
    while (status := client.get(status_path)).status_code != 200:
        if worker.poll() is not None:
            print("the worker stopped early", file=sys.stderr)
            return 1
        time.sleep(0.1)
    elapsed = time.perf_counter() - began
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    # ru_maxrss of waited-for children: the worker is the only child this process has had (kilobytes on Linux).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    manifest = status.get_json()
    exported = sum(output["count"] for output in manifest["output"])
    began = time.perf_counter()
    size = 0
    for output in manifest["output"]:
        download = client.get(output["url"].removeprefix(settings.base_url.removesuffix("/fhir")), buffered=False)
        size += sum(len(chunk) for chunk in download.response)  # streamed: never the whole file in memory
        download.close()
    downloaded = time.perf_counter() - began
    app.web.services.db.dispose()
    print(f"exported {exported:,} resources in {len(manifest['output'])} file(s), {size / 1e6:.1f} MB")
    print(f"wall time (worker start to manifest): {elapsed:.1f} s ({exported / elapsed:,.0f} resources/s)")
    print(f"download of every file, streamed from the database: {downloaded:.1f} s")
    print(f"worker peak memory (max RSS): {peak_mb:.0f} MB (limit {PEAK_LIMIT_MB} MB)")
    if exported != count:
        print(f"expected {count:,} resources", file=sys.stderr)
        return 1
    return 0 if peak_mb < PEAK_LIMIT_MB else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument(
        "--database-url", help="a PostgreSQL server to create a scratch database on (default: a temporary SQLite file)"
    )
    arguments = parser.parse_args()
    raise SystemExit(run(arguments.count, arguments.database_url))


if __name__ == "__main__":
    main()
