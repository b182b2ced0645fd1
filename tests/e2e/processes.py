"""Running the service's own processes in end-to-end tests: a free port, `proms serve` until ready, a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

PROMS = str(Path(sys.executable).parent / "proms")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(port: int, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a service on loopback; ``settings`` (PROMS_* names) add to or override the defaults."""
    base = f"http://127.0.0.1:{port}"
    return {
        **os.environ,
        "PROMS_DATABASE_URL": database_url,
        "PROMS_PORT": str(port),
        "PROMS_WORKERS": "2",
        "PROMS_LOG_LEVEL": "WARNING",
        "PROMS_BASE_URL": f"{base}/fhir",
        "PROMS_AUTH": "none",
        **settings,
    }


def wait_until_ready(base: str, process: subprocess.Popen[bytes], why: Callable[[], str], timeout: float = 60) -> None:
    """Poll /readyz until the service answers 200; fail with ``why()`` if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass  # not listening yet, or its workers still starting
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the service did not start: {why()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> tuple[bytes, bytes]:
    """SIGTERM, as an orchestrator stops it; returns what it printed. Killed (and failed) if it hangs."""
    process.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return stdout or b"", stderr or b""
