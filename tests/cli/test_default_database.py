"""The embedded default needs no set-up: a SQLite path whose folder does not exist yet is created."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from service.cli import main


def test_db_upgrade_creates_the_folder_of_the_sqlite_file(tmp_path: Path) -> None:
    target = tmp_path / "not" / "there" / "proms.sqlite3"
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"PROMS_DATABASE_URL": f"sqlite:///{target}"})
    assert result.exit_code == 0, result.output
    assert target.exists()
