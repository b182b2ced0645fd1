"""Alembic, driven from code: upgrade, the revision a database is at, and drift checks."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from service.store.db import create_db_engine, ensure_sqlite_directory


def alembic_config(database_url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, migrations_dir: Path) -> None:
    ensure_sqlite_directory(database_url)
    # "heads": independent features may add migrations on separate branches of the revision graph.
    command.upgrade(alembic_config(database_url, migrations_dir), "heads")
    if database_url.startswith("sqlite"):
        # Leave the file in WAL mode, so that the first connections of several processes never race to set it.
        engine = create_db_engine(database_url)
        with engine.connect():
            pass
        engine.dispose()


def check(database_url: str, migrations_dir: Path) -> None:
    """Raise if the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(database_url, migrations_dir))


def head_revision(migrations_dir: Path) -> str:
    """The latest revision(s), comma-separated when the graph has several heads."""
    heads = ScriptDirectory.from_config(alembic_config("sqlite://", migrations_dir)).get_heads()
    return ",".join(sorted(heads))


def current_revision(engine: Engine) -> str:
    """The revision(s) the database is at, in the same form as head_revision ('' when none)."""
    with engine.connect() as connection:
        return ",".join(sorted(MigrationContext.configure(connection).get_current_heads()))
