"""Run every benchmark in turn (``make bench``); each prints its own table."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "bench.submit",
    "bench.read_search",
    "bench.scoring",
    "bench.profile_requests",
    "bench.cds_patient_view",
    "bench.bulk_export",
    "bench.evaluate_measure",
)


def main() -> None:
    for module in BENCHMARKS:
        print(f"\n== {module}", flush=True)
        subprocess.run([sys.executable, "-m", module], check=True)


if __name__ == "__main__":
    main()
