"""Submitting responses over HTTP, against the baselines in the same run: python -m bench.submit.

For SQLite and PostgreSQL: starts the service under gunicorn (JWT authentication on, so every request is
verified and audited), POSTs realistic completed QPR-15 responses (15 answered items: validated, scored,
extracted into Observations, stored with Provenance, an outbox event and an AuditEvent, in one transaction)
with wrk at 8 and 32 connections, and serves the two baselines of bench/baselines.py under the same gunicorn
settings on the same database kind: (a) a constant JSON body, (b) fhir.resources parse + one-row insert.
Prints throughput and latency, submit throughput as a fraction of (a) and (b), start-up time and memory.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.cds_patient_view import response_to
from bench.harness import (
    Load,
    Signer,
    baseline_env,
    database,
    gunicorn,
    machine,
    measure,
    service,
    table,
    write_requests,
)
from service.config import PROJECT_ROOT

INSTRUMENT = "qpr-15"


def submissions(count: int, people: int, seed: int) -> list[bytes]:
    """``count`` completed QPR-15 responses from ``people`` people, a week apart per person."""
    questionnaire = json.loads((PROJECT_ROOT / "questionnaires" / INSTRUMENT / "questionnaire.json").read_text())
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, 9, tzinfo=UTC)
    bodies = []
    for n in range(count):
        authored = start + timedelta(days=7 * (n // people), minutes=rng.randint(0, 600))
        resource = response_to(questionnaire, f"bench-{n % people}", authored, rng)
        bodies.append(json.dumps(resource, separators=(",", ":")).encode())
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--connections", default="8,32")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=3)
    arguments = parser.parse_args()
    connection_counts = [int(c) for c in arguments.connections.split(",")]
    bodies = submissions(4000, 400, seed=20261204)
    rows: list[list[object]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        signer = Signer(directory)
        token = signer.token("http://127.0.0.1/fhir", lifetime=7200, scope="system/*.cruds")
        submit_file = write_requests(
            directory / "submit.tsv", [("POST", "/fhir/QuestionnaireResponse", body) for body in bodies]
        )
        constant_file = write_requests(directory / "constant.tsv", [("GET", "/constant", None)])
        baseline_file = write_requests(directory / "baseline.tsv", [("POST", "/parse-insert", b) for b in bodies])
        for kind in arguments.databases.split(","):
            for connections in connection_counts:
                figures: dict[str, tuple[Load, list[Load]]] = {}
                with database(kind, directory) as url:
                    with gunicorn("bench.baselines:app", baseline_env(url), "/constant") as baseline:
                        figures["a"] = measure(
                            baseline.base, constant_file, connections=connections, runs=arguments.runs,
                            seconds=arguments.seconds, warmup=arguments.warmup,
                        )  # fmt: skip
                        figures["b"] = measure(
                            baseline.base, baseline_file, connections=connections, runs=arguments.runs,
                            seconds=arguments.seconds, warmup=arguments.warmup,
                        )  # fmt: skip
                with database(kind, directory) as url:
                    with service(url, signer, PROMS_LOAD_QUESTIONNAIRES="1") as server:
                        figures["submit"] = measure(
                            server.base, submit_file, connections=connections, runs=arguments.runs,
                            seconds=arguments.seconds, warmup=arguments.warmup, token=token,
                        )  # fmt: skip
                        memory = server.worker_rss_mb()
                        notes.append(
                            f"{kind}, {connections} connections: start-up (process start to ready, library loaded) "
                            f"{server.started_in:.2f} s; worker memory after the runs "
                            f"{', '.join(f'{m:.0f}' for m in memory)} MB"
                        )
                for name, label in (("a", "(a) constant JSON"), ("b", "(b) parse + insert"), ("submit", "submit")):
                    load, runs = figures[name]
                    rows.append(
                        [
                            kind,
                            connections,
                            label,
                            f"{load.rate:,.0f}",
                            f"{load.p50:.1f}",
                            f"{load.p95:.1f}",
                            f"{load.p99:.1f}",
                            f"{load.spread(runs):.0%}",
                            load.errors,
                            f"{load.rate / figures['a'][0].rate:.0%}" if name != "a" else "",
                            f"{load.rate / figures['b'][0].rate:.0%}" if name == "submit" else "",
                        ]
                    )
    print(f"{machine()}; gunicorn workers x gthread threads as the service runs; wrk, 1 thread, on loopback")
    print(
        table(
            ["database", "conns", "endpoint", "req/s", "p50 ms", "p95 ms", "p99 ms", "spread", "errors",
             "of (a)", "of (b)"],
            rows,
        )
    )  # fmt: skip
    for note in notes:
        print("  " + note)


if __name__ == "__main__":
    main()
