"""Settings the service cannot start with are one sentence on stderr and exit status 2: no banner, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT
from tests.e2e.processes import PROMS, free_port

pytestmark = pytest.mark.e2e

GUNICORN = [sys.executable, "-m", "gunicorn", "--config", str(PROJECT_ROOT / "gunicorn.conf.py")]
COMMANDS = {
    "proms serve": [PROMS, "serve"],
    "gunicorn -c gunicorn.conf.py": GUNICORN,
    "proms worker": [PROMS, "worker"],
    "proms init": [PROMS, "init"],
    "proms db upgrade": [PROMS, "db", "upgrade"],
    "proms db check": [PROMS, "db", "check"],
    "proms questionnaires load": [PROMS, "questionnaires", "load"],
    "proms questionnaires check": [PROMS, "questionnaires", "check"],
    "proms demo load": [PROMS, "demo", "load"],
}
SERVING = ("proms serve", "gunicorn -c gunicorn.conf.py")

# Wrong for every command: (variables, what the one line must say).
ANY_COMMAND = {
    "a word for a number": ({"PROMS_PORT": "eighty"}, "PROMS_PORT must be a whole number, got 'eighty'"),
    "a number below its minimum": ({"PROMS_WORKER_LEASE_SECONDS": "0"}, "PROMS_WORKER_LEASE_SECONDS must be at least"),
    "a database URL for a driver that is not installed": (
        {"PROMS_DATABASE_URL": "postgres://proms:s3cret@db:5432/proms"},
        "PROMS_DATABASE_URL must start with sqlite:/// or postgresql+psycopg://",
    ),
}
# Wrong only for a node that serves HTTP.
SERVING_ONLY = {
    "jwt without an issuer": ({"PROMS_AUTH": "jwt"}, "PROMS_AUTH=jwt needs PROMS_AUTH_ISSUER"),
    "no authentication off loopback": (
        {"PROMS_AUTH": "none", "PROMS_HOST": "0.0.0.0"},
        "PROMS_AUTH=none is for local development only and needs PROMS_HOST on loopback",
    ),
    "a key file that is not there": (
        {"PROMS_AUTH": "jwt", "PROMS_AUTH_ISSUER": "https://idp.test", "PROMS_AUTH_JWKS_FILE": "/nowhere/jwks.json"},
        "PROMS_AUTH_JWKS_FILE names no file: /nowhere/jwks.json",
    ),
}
CASES = [(command, error) for command in COMMANDS for error in ANY_COMMAND] + [
    (command, error) for command in SERVING for error in SERVING_ONLY
]


def _run(command: list[str], variables: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PROMS_")}
    env.update(
        PROMS_DATABASE_URL=f"sqlite:///{tmp_path / 'proms.sqlite3'}",
        PROMS_AUTH="none",
        PROMS_PORT=str(free_port()),  # should one start after all, it disturbs nothing (and the test fails)
        PROMS_LOG_LEVEL="WARNING",
    )
    env.update(variables)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(("command", "error"), CASES, ids=[f"{command}: {error}" for command, error in CASES])
def test_a_configuration_error_is_one_line_and_exit_status_2(command: str, error: str, tmp_path: Path) -> None:
    variables, expected = {**ANY_COMMAND, **SERVING_ONLY}[error]
    result = _run(COMMANDS[command], variables, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # no banner, nothing else
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Configuration error: ")
    assert expected in result.stderr
    assert "s3cret" not in result.stderr  # a database URL is never echoed with its password
    assert not list(tmp_path.glob("*.sqlite3"))  # refused before touching the database


def test_serve_options_are_checked_as_the_variables_are(tmp_path: Path) -> None:
    result = _run([PROMS, "serve", "--workers", "0"], {}, tmp_path)
    assert result.returncode == 2
    assert result.stderr == "Configuration error: PROMS_WORKERS must be at least 1, got 0\n"
