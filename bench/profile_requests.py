"""Where a request's time goes, stage by stage: python -m bench.profile_requests.

Runs the service in-process (the Flask app, JWT authentication on, SQLite or PostgreSQL) under pyinstrument
and prints, for a submission (a completed QPR-15), a read by id and a patient+questionnaire search, the share of
the request spent in each stage. Profiling slows everything down about twofold; the shares, not the times, are
the figures to compare before and after a change. ``--flame`` prints pyinstrument's full call tree as well.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from bench.cds_patient_view import response_to
from bench.harness import Signer, database, table
from service.app import create_app
from service.config import PROJECT_ROOT, Settings

BASE = "http://127.0.0.1/fhir"
# (label, function as pyinstrument names it; several functions may share a label, so that a profile of an
# earlier version of the code lines up with today's); each stage's time excludes the stages it calls.
STAGES = (
    ("bearer token check", "TokenVerifier.verify"),
    ("JSON parse + structure check", "_checked_body"),
    ("resolve the Questionnaire", "resolve_questionnaire"),
    ("validate against the Questionnaire", "validate_response"),
    ("score (FHIRPath)", "score_response"),
    ("derived rows: previous response, extraction, outbox", "_previous"),
    ("derived rows: previous response, extraction, outbox", "_plan"),
    ("derived rows: previous response, extraction, outbox", "_write_derived"),
    ("insert rows (resource, history, index rows)", "ResourceRepository.create_many"),
    ("insert rows (resource, history, index rows)", "ResourceRepository.insert"),
    ("read the row", "ResourceRepository.get_row"),
    ("read the row", "ResourceRepository.current"),
    ("search query", "search"),
    ("AuditEvent", "DatabaseAuditor.record"),
    ("AuditEvent (in the write)", "audit_write"),
    ("commit", "GroupCommit._commit"),
    ("commit", "Session.commit"),
)

WHOLE = {"AuditEvent", "AuditEvent (in the write)"}  # counted with everything they call


def stage_times(root: Any) -> dict[str, float]:
    """Seconds per stage, exclusive: a stage's time less that of the stages called within it."""
    wanted = {function: label for label, function in STAGES}
    totals: dict[str, float] = {}

    def matched_time(frame: Any) -> float:
        """Time of the outermost stage frames within (and including) ``frame``, attributing each to its stage."""
        class_name = getattr(frame, "class_name", None)
        label = wanted.get(f"{class_name}.{frame.function}" if class_name else frame.function)
        if label in WHOLE:
            totals[label] = totals.get(label, 0.0) + frame.time
            return float(frame.time)
        inner = sum(matched_time(child) for child in frame.children)
        if label is None:
            return inner
        totals[label] = totals.get(label, 0.0) + frame.time - inner
        return float(frame.time)

    matched_time(root)
    return totals


def profile(name: str, call: Callable[[], None], count: int, flame: bool) -> list[list[object]]:
    profiler = Profiler(interval=0.0002)
    started = time.perf_counter()
    profiler.start()
    for _ in range(count):
        call()
    profiler.stop()
    elapsed = time.perf_counter() - started
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    total = root.time if root is not None else elapsed
    if flame:
        print(profiler.output_text(unicode=False, color=False))
    times = stage_times(root) if root is not None else {}
    labels = list(dict.fromkeys(label for label, _ in STAGES))
    rows: list[list[object]] = [
        [name, label, f"{times[label] / count * 1000:.2f}", f"{times[label] / total:.0%}"]
        for label in labels
        if times.get(label, 0.0) / total >= 0.01
    ]
    rest = total - sum(times.values())
    rows.append(
        [name, "the rest (HTTP, Flask, routing, serialisation)", f"{rest / count * 1000:.2f}", f"{rest / total:.0%}"]
    )
    rows.append([name, "whole request (profiled)", f"{total / count * 1000:.2f}", "100%"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--flame", action="store_true", help="print pyinstrument's call tree too")
    arguments = parser.parse_args()
    rng = random.Random(20261204)
    questionnaire = json.loads((PROJECT_ROOT / "questionnaires" / "qpr-15" / "questionnaire.json").read_text())
    with tempfile.TemporaryDirectory() as folder, database(arguments.database, Path(folder)) as url:
        signer = Signer(Path(folder))
        settings = Settings(
            database_url=url,
            base_url=BASE,
            log_level="ERROR",
            auth_mode="jwt",
            auth_issuers=("https://auth.bench.local",),
            auth_jwks_file=signer.jwks_file,
            load_questionnaires_on_start=True,
        )
        app = create_app(settings)
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {signer.token(BASE, scope='system/*.cruds')}"
        start = datetime(2024, 1, 1, tzinfo=UTC)
        bodies = iter(
            json.dumps(response_to(questionnaire, f"person-{n % 100}", start + timedelta(days=n), rng)).encode()
            for n in range(10 * arguments.count)
        )
        ids: list[str] = []

        def submit() -> None:
            result = client.post("/fhir/QuestionnaireResponse", data=next(bodies), content_type="application/fhir+json")
            assert result.status_code == 201, result.get_data(as_text=True)
            ids.append(result.get_json()["id"])

        def read() -> None:
            assert client.get(f"/fhir/QuestionnaireResponse/{rng.choice(ids)}").status_code == 200

        def search() -> None:
            query = f"patient=Patient/person-{rng.randrange(100)}&questionnaire={questionnaire['url']}&_sort=-authored"
            assert client.get(f"/fhir/QuestionnaireResponse?{query}&_count=20").status_code == 200

        for call in (submit, read, search):
            for _ in range(50):  # warm-up: caches, connections, compiled statements
                call()
        rows = []
        for name, call in (("submit", submit), ("read by id", read), ("search", search)):
            rows += profile(name, call, arguments.count, arguments.flame)
        app.web.services.db.dispose()
    print(f"{arguments.database}, {arguments.count} requests each, in-process, JWT on, profiled with pyinstrument")
    print(table(["request", "stage", "ms per request", "share"], rows))


if __name__ == "__main__":
    main()
