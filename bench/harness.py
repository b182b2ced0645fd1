"""What the HTTP benchmarks share: databases, gunicorn on a free loopback port, wrk with one Lua script, tables.

Every figure comes from wrk (Debian package ``wrk``) driving a real gunicorn over loopback, so the HTTP
stack, the worker model and the database are all in what is measured. Each measurement is the median of
several runs after a warm-up; comparisons are ratios to baselines served by the same gunicorn settings in
the same run, so that they survive a noisy machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from service.config import PROJECT_ROOT
from service.store.migrations import upgrade

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk.lua"
ISSUER = "https://auth.bench.local"
PG_ADMIN = os.environ.get("PROMS_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKERS = int(os.environ.get("PROMS_BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("PROMS_BENCH_THREADS", "4"))
WORKER_CLASS = os.environ.get("PROMS_BENCH_WORKER_CLASS", "service.serving.FreeThreadWorker")  # the service's


# databases ------------------------------------------------------------------------------------------------


@contextmanager
def scratch_database(server_url: str | None, folder: Path) -> Iterator[str]:
    """A new, empty database, removed afterwards: a SQLite file in ``folder``, or a database created on the
    PostgreSQL server ``server_url`` names."""
    if server_url is None:
        yield f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(server_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"proms_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A new, migrated database of ``kind`` (sqlite or postgresql), removed afterwards."""
    with scratch_database(PG_ADMIN if kind == "postgresql" else None, folder) as url:
        upgrade(url, PROJECT_ROOT / "migrations")
        yield url


# tokens -----------------------------------------------------------------------------------------------------


class Signer:
    """A key pair standing in for the authorization server: the service verifies its tokens from a JWKS file."""

    def __init__(self, directory: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks_file = directory / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [{**public, "kid": "bench", "use": "sig", "alg": "RS256"}]}))

    def token(self, audience: str, lifetime: int = 3600, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
        return jwt.encode({**payload, **claims}, self.key, algorithm="RS256", headers={"kid": "bench"})


# servers ----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    started_in: float  # seconds from process start to the first successful ready check

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each gunicorn worker (children of the master process)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        sizes = []
        for pid in children:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sizes


@contextmanager
def gunicorn(app: str, env: dict[str, str], ready_path: str, *, config: Path | None = None) -> Iterator[Server]:
    """gunicorn serving ``app`` with WORKERS x THREADS (the service's worker class) on a free loopback port."""
    port = free_port()
    args = [sys.executable, "-m", "gunicorn"]
    if config is not None:
        args += ["--config", str(config)]
    args += [
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(WORKERS),
        "--worker-class",
        WORKER_CLASS,  # the service's own (gunicorn.conf.py), for the baselines too
        "--threads",
        str(THREADS),
        "--keep-alive",
        "5",
        "--log-level",
        "warning",
        app,
    ]
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), **env}
    log = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(args, env=environment, stdout=log, stderr=log, cwd=PROJECT_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + ready_path, timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"{app} did not start:\n{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.02)
        yield Server(process, base, time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def baseline_env(database_url: str) -> dict[str, str]:
    """The baselines' environment. gunicorn reads the service's gunicorn.conf.py for them too (same worker class,
    keep-alive, logging), and that file checks the service's settings: a loopback host with authentication off
    satisfies it; the baselines themselves authenticate nothing."""
    return {"BENCH_BASELINE_DB": database_url, "PROMS_AUTH": "none", "PROMS_HOST": "127.0.0.1"}


def service_env(database_url: str, signer: Signer, base: str = "http://127.0.0.1/fhir", **extra: str) -> dict[str, str]:
    """The service as production runs it: JWT authentication (so every request is verified and audited)."""
    return {
        "PROMS_DATABASE_URL": database_url,
        "PROMS_BASE_URL": base,
        "PROMS_LOG_LEVEL": "WARNING",
        "PROMS_AUTH": "jwt",
        "PROMS_AUTH_ISSUER": ISSUER,
        "PROMS_AUTH_JWKS_FILE": str(signer.jwks_file),
        "PROMS_WORKERS": str(WORKERS),
        "PROMS_THREADS": str(THREADS),
        **extra,
    }


@contextmanager
def service(database_url: str, signer: Signer, **extra: str) -> Iterator[Server]:
    with gunicorn(
        "service.wsgi:app",
        service_env(database_url, signer, **extra),
        "/readyz",
        config=PROJECT_ROOT / "gunicorn.conf.py",
    ) as server:
        yield server


# load -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    rate: float  # requests per second
    p50: float  # milliseconds
    p95: float
    p99: float
    errors: int  # socket errors and non-2xx/3xx answers

    @staticmethod
    def median(runs: Sequence[Load]) -> Load:
        return Load(
            statistics.median(run.rate for run in runs),
            statistics.median(run.p50 for run in runs),
            statistics.median(run.p95 for run in runs),
            statistics.median(run.p99 for run in runs),
            sum(run.errors for run in runs),
        )

    def spread(self, runs: Sequence[Load]) -> float:
        """(max - min) / median of the throughput over the runs: how reproducible the figure is."""
        rates = [run.rate for run in runs]
        return (max(rates) - min(rates)) / self.rate if self.rate else 0.0


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench installs it)")
    return found


def write_requests(path: Path, lines: Sequence[tuple[str, str, bytes | None]]) -> Path:
    """The request file wrk.lua cycles through: one ``METHOD<TAB>path<TAB>body`` per line (compact JSON)."""
    with path.open("wb") as out:
        for method, target, body in lines:
            if body is not None and (b"\n" in body or b"\t" in body):
                raise ValueError("request bodies must be compact JSON on one line")
            out.write(f"{method}\t{target}\t".encode() + (body or b"") + b"\n")
    return path


def wrk(base: str, requests_file: Path, *, connections: int, seconds: float, token: str = "") -> Load:
    """One wrk run (one thread: the load generator should not take a core from the server)."""
    command = [
        require_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        base,
        "--",
        str(requests_file),
        token,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(line for line in reversed(result.stdout.splitlines()) if line.startswith("{"))
    figures = json.loads(line)
    return Load(
        figures["requests"] / (figures["duration_us"] / 1e6),
        figures["p50_us"] / 1000,
        figures["p95_us"] / 1000,
        figures["p99_us"] / 1000,
        figures["errors"] + figures["non2xx"],
    )


def measure(
    base: str,
    requests_file: Path,
    *,
    connections: int,
    runs: int,
    seconds: float,
    warmup: float,
    token: str = "",
) -> tuple[Load, list[Load]]:
    """Warm up, then the median of ``runs`` runs."""
    if warmup > 0:
        wrk(base, requests_file, connections=connections, seconds=warmup, token=token)
    results = [wrk(base, requests_file, connections=connections, seconds=seconds, token=token) for _ in range(runs)]
    return Load.median(results), results


# output -----------------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pasteable into bench/README.md)."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def machine() -> str:
    cores = os.cpu_count()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in meminfo if line.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    return f"{time.strftime('%Y-%m-%d')}, commit {commit.stdout.strip() or '?'}, {cores} cores, {memory} GiB"
