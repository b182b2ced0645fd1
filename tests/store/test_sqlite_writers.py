"""SQLite writers take the write lock when their transaction begins, so concurrent writers queue, not fail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
