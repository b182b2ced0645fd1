"""Reads by id and searches as the store grows to 10k, 100k and 1M responses: python -m bench.read_search.

For each database (SQLite and PostgreSQL): grows one store (see bench/store_seed.py) through the sizes; at
each size starts the service under gunicorn (JWT authentication on: every request is verified and writes an
AuditEvent) and measures with wrk, at 8 connections, (1) GET QuestionnaireResponse/{id} of ids spread across
the whole store and (2) the search a clinician's screen makes: ``patient`` + ``questionnaire``, newest first,
``_count=20``. Baseline (a), a constant JSON body under the same gunicorn settings, is measured in the same
run. Prints the sizes side by side: latency should stay flat as the store grows.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

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
from bench.store_seed import Store

SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="10k,100k,1M")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--warmup", type=float, default=2)
    arguments = parser.parse_args()
    rng = random.Random(20261204)
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        signer = Signer(directory)
        token = signer.token("http://127.0.0.1/fhir", lifetime=7200, scope="system/*.rs")
        constant_file = write_requests(directory / "constant.tsv", [("GET", "/constant", None)])
        for kind in arguments.databases.split(","):
            with database(kind, directory) as url:
                with gunicorn("bench.baselines:app", baseline_env(url), "/constant") as baseline:
                    constant, _ = measure(
                        baseline.base, constant_file, connections=arguments.connections, runs=arguments.runs,
                        seconds=arguments.seconds, warmup=arguments.warmup,
                    )  # fmt: skip
                rows.append([kind, "", "(a) constant JSON", f"{constant.rate:,.0f}", f"{constant.p50:.1f}",
                             f"{constant.p95:.1f}", f"{constant.p99:.1f}", "", ""])  # fmt: skip
                store = Store(url)
                print(f"{kind}: submitting the template responses ...", flush=True)
                store.submit_templates()
                for label in arguments.sizes.split(","):
                    print(f"{kind}: growing the store to {label} responses ...", flush=True)
                    store.grow_to(SIZES[label])
                    store.analyze()
                    reads = write_requests(
                        directory / "read.tsv",
                        [("GET", f"/fhir/QuestionnaireResponse/{rid}", None) for rid in store.sample_ids(2000, rng)],
                    )
                    searches = write_requests(
                        directory / "search.tsv",
                        [
                            (
                                "GET",
                                f"/fhir/QuestionnaireResponse?patient=Patient/{person}&questionnaire={url_}"
                                "&_sort=-authored&_count=20",
                                None,
                            )
                            for person, url_ in store.sample_searches(2000, rng)
                        ],  # fmt: skip
                    )
                    with service(url, signer) as server:
                        figures: dict[str, Load] = {}
                        spreads: dict[str, float] = {}
                        for name, requests_file in (("read by id", reads), ("search", searches)):
                            load, runs = measure(
                                server.base, requests_file, connections=arguments.connections,
                                runs=arguments.runs, seconds=arguments.seconds, warmup=arguments.warmup, token=token,
                            )  # fmt: skip
                            figures[name], spreads[name] = load, load.spread(runs)
                    for name, load in figures.items():
                        rows.append([kind, f"{store.size:,}", name, f"{load.rate:,.0f}", f"{load.p50:.1f}",
                                     f"{load.p95:.1f}", f"{load.p99:.1f}", f"{load.rate / constant.rate:.0%}",
                                     f"{spreads[name]:.0%} / {load.errors}"])  # fmt: skip
                store.dispose()
    print(f"{machine()}; {arguments.connections} connections; wrk, 1 thread, on loopback; medians of {arguments.runs}")
    print(table(["database", "responses", "request", "req/s", "p50 ms", "p95 ms", "p99 ms", "of (a)",
                 "spread / errors"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
