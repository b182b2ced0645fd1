"""SQLite writers take the write lock when their transaction begins, so concurrent writers queue, not fail."""

from __future__ import annotations

import fcntl
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from service.store.db import Database


def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "lock.sqlite3"
    db = Database(f"sqlite:///{path}")
    with db.transaction() as session:
        session.execute(text("SELECT 1"))  # nothing written yet, but the lock is already held
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    with db.read_session() as session:
        session.execute(text("SELECT 1"))
        reader = sqlite3.connect(path, timeout=0, isolation_level=None)
        reader.execute("BEGIN IMMEDIATE")  # a read session does not block writers
        reader.execute("ROLLBACK")
        reader.close()
    db.dispose()


def _write_after_waiting(url: str, started: Any, done: Any) -> None:
    db = Database(url)
    started.set()
    with db.transaction() as session:
        session.execute(text("INSERT INTO turn (who) VALUES ('other process')"))
    done.set()
    db.dispose()


def test_writers_in_other_processes_queue_on_the_lock_file_beside_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'turns.sqlite3'}"
    db = Database(url)
    with db.transaction() as session:
        session.execute(text("CREATE TABLE turn (who TEXT)"))
    context = multiprocessing.get_context("spawn")
    started, done = context.Event(), context.Event()
    with db.transaction() as session:
        session.execute(text("INSERT INTO turn (who) VALUES ('this process')"))
        other = context.Process(target=_write_after_waiting, args=(url, started, done))
        other.start()
        assert started.wait(30)
        assert not done.wait(0.5)  # queued behind this transaction, not failing with "database is locked"
        with (tmp_path / "turns.sqlite3.writer-lock").open("ab") as lock_file, pytest.raises(BlockingIOError):
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the turn is taken, on the file
    assert done.wait(30)
    other.join(30)
    assert other.exitcode == 0
    with db.read_session() as session:
        assert session.execute(text("SELECT who FROM turn ORDER BY rowid")).scalars().all() == [
            "this process",
            "other process",
        ]
    db.dispose()
