"""Outcome reports over 10,000 people and 100,000 responses: python -m bench.evaluate_measure.

For each database (PostgreSQL and SQLite): grows a store (bench/store_seed.py) of 20 template people who answered
the PHQ-9 and the GAD-7 five times each (200 responses through the real submission path), copied until it holds
100,000 responses of 10,000 people, and stores a Group of all of them. Then starts the service under gunicorn (JWT
authentication on: every call is verified and audited) and times Measure/$evaluate-measure one call at a time:
reliable improvement as a summary report for the Group and for the whole service, and as a subject-list report for
the Group. Prints p50, p95 and the slowest call of each, the report's size and the web workers' memory.
Target: p50 under 2 s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench.harness import Signer, database, machine, service, table
from bench.store_seed import Store

PEOPLE_TARGET = 10_000
RESPONSES_TARGET = 100_000
INSTRUMENTS = ("phq-9", "gad-7")
TEMPLATE_PEOPLE = 20
RESPONSES_EACH = 5  # per person and instrument: 10 responses per person
PERIOD = "periodStart=2024-01-01&periodEnd=2025-12-31"
GROUP = "bench-everyone"


def seed(url: str, responses: int) -> Store:
    store = Store(url, instruments=INSTRUMENTS, template_people=TEMPLATE_PEOPLE, responses_each=RESPONSES_EACH)
    print("submitting the template responses ...", flush=True)
    store.submit_templates()
    print(f"growing the store to {responses:,} responses ...", flush=True)
    store.grow_to(responses)
    store.analyze()
    return store


def store_group(base: str, token: str, store: Store) -> None:
    members = [{"entity": {"reference": f"Patient/{subject}"}} for subject in store.subjects()]
    group = {"resourceType": "Group", "id": GROUP, "type": "person", "actual": True, "member": members}
    answer = requests.put(
        f"{base}/fhir/Group/{GROUP}",
        data=json.dumps(group),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        timeout=120,
    )
    if answer.status_code not in (200, 201):
        raise SystemExit(f"storing the Group failed: {answer.status_code} {answer.text[:500]}")


def time_calls(base: str, token: str, query: str, runs: int, warmup: int) -> tuple[list[float], int, dict[str, int]]:
    """Latencies in ms of ``runs`` calls after ``warmup`` ones, the last report's size, its PHQ-9 counts."""
    url = f"{base}/fhir/Measure/reliable-improvement/$evaluate-measure?{PERIOD}{query}"
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    body = b""
    for index in range(warmup + runs):
        started = time.perf_counter()
        answer = requests.get(url, headers=headers, timeout=300)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise SystemExit(f"$evaluate-measure failed: {answer.status_code} {answer.text[:500]}")
        body = answer.content
        if index >= warmup:
            latencies.append(elapsed)
    report = json.loads(body)
    counts: dict[str, int] = {}
    for stratum in report["group"][0]["stratifier"][0]["stratum"]:
        if any(coding.get("code") == "44261-6" for coding in stratum["value"]["coding"]):
            counts = {p["code"]["coding"][0]["code"]: p["count"] for p in stratum.get("population", [])}
    return latencies, len(body), counts


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--responses", type=int, default=RESPONSES_TARGET)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    arguments = parser.parse_args()
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        signer = Signer(directory)
        token = signer.token("http://127.0.0.1/fhir", lifetime=7200, scope="system/*.cruds")
        for kind in arguments.databases.split(","):
            with database(kind, directory) as url:
                print(f"{kind}:", flush=True)
                store = seed(url, arguments.responses)
                people = store.people()
                with service(url, signer) as server:
                    store_group(server.base, token, store)
                    for label, query in (
                        ("Group, summary", f"&subject=Group/{GROUP}"),
                        ("whole service, summary", ""),
                        ("Group, subject-list", f"&subject=Group/{GROUP}&reportType=subject-list"),
                    ):
                        latencies, size, counts = time_calls(
                            server.base, token, query, arguments.runs, arguments.warmup
                        )
                        rows.append([
                            kind, f"{people:,}", f"{store.size:,}", label,
                            f"{statistics.median(latencies):,.0f}", f"{percentile(latencies, 0.95):,.0f}",
                            f"{max(latencies):,.0f}", f"{size / 1024:,.0f} KiB",
                            f"{counts.get('numerator', 0):,} of {counts.get('denominator', 0):,}",
                        ])  # fmt: skip
                    memory = ", ".join(f"{rss:.0f}" for rss in server.worker_rss_mb())
                    print(f"{kind}: web worker memory after the runs: {memory} MB", flush=True)
                store.dispose()
    print()
    print(f"Measure/$evaluate-measure (reliable improvement), {arguments.runs} calls each after "
          f"{arguments.warmup} warm-up calls, one at a time; {machine()}")  # fmt: skip
    print(table(["database", "people", "responses", "report", "p50 ms", "p95 ms", "max ms", "size",
                 "PHQ-9 improved"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
