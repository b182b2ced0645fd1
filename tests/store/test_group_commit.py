"""SQLite write transactions of one process commit in groups: each block is still all-or-nothing, nothing is
acknowledged before it is committed, and one member's failure leaves the others' writes alone."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text

from service.fhir.errors import DatabaseUnavailable
from service.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'groups.sqlite3'}")
    with database.transaction() as session:
        session.execute(text("CREATE TABLE note (who TEXT UNIQUE)"))
    return database


def _notes(db: Database) -> list[str]:
    with db.read_session() as session:
        return list(session.execute(text("SELECT who FROM note ORDER BY rowid")).scalars())


def _commits(db: Database) -> list[int]:
    counted = [0]

    @event.listens_for(db.engine, "commit")
    def count(_connection: object) -> None:
        counted[0] += 1

    return counted


class Gate:
    """Holds the first writer inside its block until the others have queued behind it."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()


def _write(db: Database, who: str, outcomes: dict[str, str], gate: Gate | None = None, fail: bool = False) -> None:
    try:
        with db.transaction() as session:
            session.execute(text("INSERT INTO note (who) VALUES (:who)"), {"who": who})
            if gate is not None:
                gate.inside.set()
                assert gate.release.wait(10)
            if fail:
                raise RuntimeError(f"{who} changed its mind")
        outcomes[who] = "committed"
    except RuntimeError:
        outcomes[who] = "raised"
    except DatabaseUnavailable:
        outcomes[who] = "unavailable"


def _joined(db: Database) -> int:
    group = db._groups._open
    return group.pending if group is not None else 0


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the writers did not join one group"
        time.sleep(0.005)


def _run_group(db: Database, members: list[tuple[str, bool]]) -> dict[str, str]:
    """The first member holds the group open while the others join it; then all finish."""
    outcomes: dict[str, str] = {}
    gate = Gate()
    first = threading.Thread(target=_write, args=(db, members[0][0], outcomes, gate, members[0][1]))
    first.start()
    assert gate.inside.wait(10)
    others = [threading.Thread(target=_write, args=(db, who, outcomes, None, fail)) for who, fail in members[1:]]
    for thread in others:
        thread.start()
    # Let the others join the first member's group (they then wait for its block to end).
    _wait_until(lambda: _joined(db) == len(members))
    gate.release.set()
    for thread in [first, *others]:
        thread.join(10)
    return outcomes


def test_writers_that_arrive_together_share_one_commit(db: Database) -> None:
    commits = _commits(db)
    outcomes = _run_group(db, [("a", False), ("b", False), ("c", False), ("d", False)])
    assert outcomes == {"a": "committed", "b": "committed", "c": "committed", "d": "committed"}
    assert sorted(_notes(db)) == ["a", "b", "c", "d"]
    assert commits[0] == 1


def test_a_member_that_fails_is_rolled_back_alone(db: Database) -> None:
    outcomes = _run_group(db, [("a", False), ("b", True), ("c", False)])
    assert outcomes == {"a": "committed", "b": "raised", "c": "committed"}
    assert sorted(_notes(db)) == ["a", "c"]


def test_the_first_member_failing_leaves_the_rest_of_its_group_committed(db: Database) -> None:
    outcomes = _run_group(db, [("a", True), ("b", False), ("c", False)])
    assert outcomes == {"a": "raised", "b": "committed", "c": "committed"}
    assert sorted(_notes(db)) == ["b", "c"]


def test_a_database_error_in_one_member_is_its_own(db: Database) -> None:
    with db.transaction() as session:
        session.execute(text("INSERT INTO note (who) VALUES ('taken')"))
    outcomes: dict[str, str] = {}
    gate = Gate()
    first = threading.Thread(target=_write, args=(db, "a", outcomes, gate))
    first.start()
    assert gate.inside.wait(10)
    failures: list[BaseException] = []

    def duplicate() -> None:
        try:
            with db.transaction() as session:
                session.execute(text("INSERT INTO note (who) VALUES ('b')"))
                session.execute(text("INSERT INTO note (who) VALUES ('taken')"))  # violates UNIQUE
        except Exception as exc:  # the IntegrityError, as a transaction of its own would raise it
            failures.append(exc)

    second = threading.Thread(target=duplicate)
    second.start()
    _wait_until(lambda: _joined(db) == 2)
    gate.release.set()
    first.join(10)
    second.join(10)
    assert outcomes == {"a": "committed"}
    assert len(failures) == 1 and "UNIQUE" in str(failures[0])
    assert _notes(db) == ["taken", "a"]  # none of the failed block's rows, not even the one before the error


def test_when_the_group_cannot_commit_no_member_is_told_it_was_stored(db: Database) -> None:
    @event.listens_for(db.engine, "commit")
    def refuse(_connection: object) -> None:
        raise RuntimeError("disk full")

    outcomes = _run_group(db, [("a", False), ("b", False)])
    event.remove(db.engine, "commit", refuse)
    assert outcomes == {"a": "unavailable", "b": "unavailable"}
    assert _notes(db) == []


def test_members_see_the_writes_of_those_before_them(db: Database) -> None:
    seen: list[list[str]] = []
    outcomes: dict[str, str] = {}
    gate = Gate()
    first = threading.Thread(target=_write, args=(db, "a", outcomes, gate))
    first.start()
    assert gate.inside.wait(10)

    def reader_writer() -> None:
        with db.transaction() as session:
            seen.append(list(session.execute(text("SELECT who FROM note")).scalars()))
            session.execute(text("INSERT INTO note (who) VALUES ('b')"))

    second = threading.Thread(target=reader_writer)
    second.start()
    _wait_until(lambda: _joined(db) == 2)
    gate.release.set()
    first.join(10)
    second.join(10)
    assert seen == [["a"]]
    assert _notes(db) == ["a", "b"]


def test_a_lone_writer_commits_at_once(db: Database) -> None:
    commits = _commits(db)
    with db.transaction() as session:
        session.execute(text("INSERT INTO note (who) VALUES ('alone')"))
    assert commits[0] == 1
    assert _notes(db) == ["alone"]


@pytest.mark.pg
def test_on_postgresql_append_only_transactions_share_a_commit(pg_database: str) -> None:
    """Reads' AuditEvents only insert: on PostgreSQL they commit in groups too; other writes do not."""
    db = Database(pg_database)
    table = f"note_{uuid.uuid4().hex[:8]}"
    with db.transaction() as session:
        session.execute(text(f"CREATE TABLE {table} (who TEXT UNIQUE)"))
    try:
        commits = _commits(db)
        outcomes: dict[str, str] = {}
        gate = Gate()

        def insert(who: str, fail: bool = False, hold: bool = False) -> None:
            try:
                with db.transaction(append_only=True) as session:
                    session.execute(text(f"INSERT INTO {table} (who) VALUES (:who)"), {"who": who})
                    if hold:
                        gate.inside.set()
                        assert gate.release.wait(10)
                    if fail:
                        raise RuntimeError("changed its mind")
                outcomes[who] = "committed"
            except RuntimeError:
                outcomes[who] = "raised"

        first = threading.Thread(target=insert, args=("a",), kwargs={"hold": True})
        first.start()
        assert gate.inside.wait(10)
        others = [threading.Thread(target=insert, args=("b", True)), threading.Thread(target=insert, args=("c",))]
        for thread in others:
            thread.start()
        _wait_until(lambda: _joined(db) == 3)
        gate.release.set()
        for thread in [first, *others]:
            thread.join(10)
        assert outcomes == {"a": "committed", "b": "raised", "c": "committed"}
        assert commits[0] == 1
        with db.read_session() as session:
            assert sorted(session.execute(text(f"SELECT who FROM {table}")).scalars()) == ["a", "c"]
        with db.transaction() as session:  # an ordinary write is a transaction of its own
            session.execute(text(f"INSERT INTO {table} (who) VALUES ('d')"))
        assert commits[0] == 2
    finally:
        with db.transaction() as session:
            session.execute(text(f"DROP TABLE {table}"))
        db.dispose()


def test_commits_leave_copying_the_log_to_a_checkpoint_outside_the_write_turn(tmp_path: Path) -> None:
    import shutil
    import sqlite3

    path = tmp_path / "log.sqlite3"
    db = Database(f"sqlite:///{path}")
    with db.transaction() as session:
        session.execute(text("CREATE TABLE note (who TEXT UNIQUE)"))
        assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0  # never inside a commit
    for n in range(40):
        with db.transaction() as session:
            session.execute(text("INSERT INTO note (who) VALUES (:who)"), {"who": f"n{n}"})
    # The checkpoints (every 16 commits, each on a thread of its own) copied the log into the database file:
    # the file alone, without its log, holds at least the notes of the first checkpoint.
    deadline = time.monotonic() + 10
    found = 0
    while time.monotonic() < deadline:
        alone = tmp_path / f"alone-{uuid.uuid4().hex}.sqlite3"
        shutil.copyfile(path, alone)
        with sqlite3.connect(alone) as connection:
            try:
                found = connection.execute("SELECT count(*) FROM note").fetchone()[0]
            except sqlite3.OperationalError:  # the table itself is not in the file yet
                found = 0
        if found >= 15:
            break
        time.sleep(0.05)
    assert found >= 15
    db.dispose()
