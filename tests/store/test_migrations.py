"""Migrations are production code: they build the schema on SQLite and PostgreSQL and match the models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from service.config import PROJECT_ROOT
from service.store.db import create_db_engine
from service.store.migrations import alembic_config, check, current_revision, head_revision, upgrade
from service.store.models import Base

MIGRATIONS = PROJECT_ROOT / "migrations"


def test_upgrade_then_check_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgrade(url, MIGRATIONS)
    check(url, MIGRATIONS)  # raises if the models and the migrations disagree
    engine = create_db_engine(url)
    assert current_revision(engine) == head_revision(MIGRATIONS)
    assert set(inspect(engine).get_table_names()) >= {table.name for table in Base.metadata.sorted_tables}
    engine.dispose()


def test_migrated_database_matches_the_models_and_round_trips(database_url: str) -> None:
    check(database_url, MIGRATIONS)
    config = alembic_config(database_url, MIGRATIONS)
    command.downgrade(config, "base")
    engine = create_db_engine(database_url)
    assert "questionnaire_response" not in inspect(engine).get_table_names()
    command.upgrade(config, "heads")
    assert current_revision(engine) == head_revision(MIGRATIONS)
    check(database_url, MIGRATIONS)
    engine.dispose()
