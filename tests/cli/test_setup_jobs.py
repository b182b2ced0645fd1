"""The one-off set-up jobs (`proms init`, `db upgrade`, `questionnaires load`) may start at once: they take turns."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from service.config import PROJECT_ROOT
from service.store.db import create_db_engine
from service.store.migrations import current_revision, head_revision
from service.store.models import QuestionnaireRow
from service.store.setup_lock import setup_lock
from tests.conftest import PG_ADMIN_URL
from tests.e2e.processes import PROMS

pytestmark = pytest.mark.slow

WAITING = "waiting for another set-up job"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nothing has touched: no tables, no migrations."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'proms.sqlite3'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"proms_setup_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _library() -> set[tuple[str, str]]:
    paths = (PROJECT_ROOT / "questionnaires").glob("*/questionnaire.json")
    definitions = [json.loads(path.read_text()) for path in paths]
    return {(definition["url"], definition["version"]) for definition in definitions}


def _start(command: list[str], env: dict[str, str], stderr: Path) -> subprocess.Popen[str]:
    with stderr.open("w") as handle:  # the job writes to its own copy of the file descriptor
        return subprocess.Popen([PROMS, *command], env=env, stdout=subprocess.PIPE, stderr=handle, text=True)


def _kill(jobs: list[subprocess.Popen[str]]) -> None:
    for job in jobs:
        job.kill()
        job.communicate()


def _wait_for(paths: list[Path], text: str, jobs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(text in path.read_text() for path in paths):
        for job, path in zip(jobs, paths, strict=True):
            assert job.poll() is None, f"a job ended while another held the lock: {path.read_text()}"
        assert time.monotonic() < deadline, [path.read_text() for path in paths]
        time.sleep(0.1)


def test_two_init_jobs_started_together_take_turns_and_leave_the_database_whole(
    empty_database: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PROMS_DATABASE_URL": empty_database, "PROMS_LOG_LEVEL": "WARNING"}
    stderr_files = [tmp_path / f"job{n}.err" for n in (1, 2)]
    # A third job holds the lock while both start, so that they surely overlap: each must wait, then find the
    # other's work done rather than racing it (without the lock, one fails on a table the other just created).
    with setup_lock(empty_database):
        jobs = [_start(["init"], env, path) for path in stderr_files]
        try:
            _wait_for(stderr_files, WAITING, jobs)
            engine = create_db_engine(empty_database)
            assert current_revision(engine) == ""  # neither started while the lock was held
            engine.dispose()
        except BaseException:
            _kill(jobs)
            raise
    outputs = [job.communicate(timeout=180)[0] for job in jobs]
    for job, output, path in zip(jobs, outputs, stderr_files, strict=True):
        assert job.returncode == 0, output + path.read_text()
        assert "database at the latest migration" in output

    count = len(_library())
    reports = sorted(line for output in outputs for line in output.splitlines() if line.startswith("questionnaires:"))
    assert reports == [
        f"questionnaires: 0 created, 0 updated, {count} unchanged, 0 failed",
        f"questionnaires: {count} created, 0 updated, 0 unchanged, 0 failed",
    ]
    measures = sorted(
        line for output in outputs for line in output.splitlines() if line.startswith("outcome measures:")
    )
    assert measures == [
        "outcome measures: 0 created, 0 updated, 4 unchanged, 0 failed",
        "outcome measures: 4 created, 0 updated, 0 unchanged, 0 failed",
    ]
    engine = create_db_engine(empty_database)
    try:
        assert current_revision(engine) == head_revision(PROJECT_ROOT / "migrations")
        with engine.connect() as connection:
            query = select(QuestionnaireRow.url, QuestionnaireRow.version, QuestionnaireRow.version_id)
            stored = [(url, version, version_id) for url, version, version_id in connection.execute(query)]
    finally:
        engine.dispose()
    assert sorted((url, version) for url, version, _ in stored) == sorted(_library())  # each one, once
    assert {version_id for _, _, version_id in stored} == {1}  # stored once, never re-written by the second job


def test_upgrade_and_load_wait_for_the_lock_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'proms.sqlite3'}"
    env = {**os.environ, "PROMS_DATABASE_URL": url, "PROMS_LOG_LEVEL": "WARNING"}
    subprocess.run([PROMS, "db", "upgrade"], env=env, check=True, capture_output=True)
    stderr_files = [tmp_path / "upgrade.err", tmp_path / "load.err"]
    with setup_lock(url):
        commands = (["db", "upgrade"], ["questionnaires", "load"])
        jobs = [_start(command, env, path) for command, path in zip(commands, stderr_files, strict=True)]
        try:
            _wait_for(stderr_files, WAITING, jobs)
        except BaseException:
            _kill(jobs)
            raise
    for job in jobs:
        output = job.communicate(timeout=120)[0]
        assert job.returncode == 0, output
