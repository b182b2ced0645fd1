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


def test_the_outcome_measures_migration_fills_in_the_values_and_codes_of_stored_observations(database_url: str) -> None:
    """Observations stored before value_number existed get it from their JSON (integer, quantity, or none)."""
    from sqlalchemy import text

    config = alembic_config(database_url, MIGRATIONS)
    command.downgrade(config, "0007")
    engine = create_db_engine(database_url)
    rows = [
        (
            "o-int",
            '{"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}, '
            '{"system": "http://snomed.info/sct", "code": "720433000"}]}, "valueInteger": 12}',
        ),
        ("o-quantity", '{"resourceType": "Observation", "valueQuantity": {"value": 21.1, "unit": "{score}"}}'),
        ("o-panel", '{"resourceType": "Observation", "hasMember": []}'),
        ("o-text", '{"resourceType": "Observation", "valueString": "12"}'),
    ]
    with engine.begin() as connection:
        for resource_id, body in rows:
            connection.execute(
                text(
                    "INSERT INTO observation (id, version_id, last_updated, deleted, resource_json, status, "
                    "effective_key) VALUES (:id, 1, '2026-01-01', false, :body, 'final', '2026-01-01')"
                ),
                {"id": resource_id, "body": body},
            )
    try:
        command.upgrade(config, "heads")
        with engine.connect() as connection:
            found = {row.id: (row.value_number, row.code_key) for row in
                     connection.execute(text("SELECT id, value_number, code_key FROM observation"))}  # fmt: skip
        assert found == {
            "o-int": (12.0, "http://loinc.org|44261-6"),
            "o-quantity": (21.1, None),
            "o-panel": (None, None),
            "o-text": (None, None),
        }
        check(database_url, MIGRATIONS)
    finally:
        with engine.begin() as connection:  # the PostgreSQL database is shared by the run's tests
            connection.execute(text("DELETE FROM observation WHERE id LIKE 'o-%'"))
        engine.dispose()
