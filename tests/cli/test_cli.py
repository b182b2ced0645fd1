"""The `proms` command: database and questionnaire-library subcommands, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main
from tests.api.builders import questionnaire


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PROMS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "PROMS_LOG_LEVEL": "WARNING"}


def _library(root: Path, definitions: dict[str, dict]) -> Path:  # type: ignore[type-arg]
    for name, resource in definitions.items():
        (root / name).mkdir(parents=True)
        (root / name / "questionnaire.json").write_text(json.dumps(resource))
    return root


def test_db_upgrade_and_check(env: dict[str, str]) -> None:
    runner = CliRunner()
    before = runner.invoke(main, ["db", "check"], env=env)
    assert before.exit_code != 0
    assert "proms db upgrade" in before.output
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    after = runner.invoke(main, ["db", "check"], env=env)
    assert after.exit_code == 0, after.output
    assert "current" in after.output


def test_questionnaires_load_is_idempotent(env: dict[str, str], tmp_path: Path) -> None:
    library = _library(
        tmp_path / "library",
        {
            "mood": {**questionnaire(), "id": "mood", "copyright": "CC0"},
            "mood2": {**questionnaire(version="2.0.0"), "id": "mood", "copyright": "CC0"},
        },
    )
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    first = runner.invoke(main, ["questionnaires", "load", str(library)], env=env)
    assert first.exit_code == 0, first.output
    assert "2 created, 0 updated, 0 unchanged, 0 failed" in first.output
    second = runner.invoke(main, ["questionnaires", "load", str(library)], env=env)
    assert "0 created, 0 updated, 2 unchanged, 0 failed" in second.output


def test_questionnaires_load_reports_a_bad_file(env: dict[str, str], tmp_path: Path) -> None:
    library = tmp_path / "library"
    (library / "broken").mkdir(parents=True)
    (library / "broken" / "questionnaire.json").write_text('{"resourceType": "Questionnaire", "status": 3}')
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    result = runner.invoke(main, ["questionnaires", "load", str(library)], env=env)
    assert result.exit_code == 1
    assert "broken" in result.output
    assert "1 failed" in result.output


def test_questionnaires_check_names_each_problem(env: dict[str, str], tmp_path: Path) -> None:
    duplicate = questionnaire(copyright="CC0")
    duplicate["item"].append({"linkId": "1", "text": "again", "type": "integer"})
    no_copyright = questionnaire()
    library = _library(tmp_path / "library", {"dup": duplicate, "nocopy": no_copyright})
    (library / "notjson").mkdir()
    (library / "notjson" / "questionnaire.json").write_text("{oops")
    result = CliRunner().invoke(main, ["questionnaires", "check", str(library)], env=env)
    assert result.exit_code != 0
    assert "Duplicate linkId '1'" in result.output
    assert "copyright is missing" in result.output
    assert "not valid JSON" in result.output


def test_questionnaires_check_passes_a_good_library(env: dict[str, str], tmp_path: Path) -> None:
    library = _library(tmp_path / "library", {"mood": questionnaire(copyright="CC0")})
    result = CliRunner().invoke(main, ["questionnaires", "check", str(library)], env=env)
    assert result.exit_code == 0, result.output


def test_built_in_library_passes_check(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["questionnaires", "check"], env=env)
    assert result.exit_code == 0, result.output


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"PROMS_PORT": "eighty"})
    assert result.exit_code != 0
    assert "PROMS_PORT must be a whole number" in result.output


def test_the_built_in_library_loads(env: dict[str, str]) -> None:
    from service.config import PROJECT_ROOT

    count = len(list((PROJECT_ROOT / "questionnaires").glob("*/questionnaire.json")))
    assert count >= 11
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    first = runner.invoke(main, ["questionnaires", "load"], env=env)
    assert first.exit_code == 0, first.output
    assert f"{count} created, 0 updated, 0 unchanged, 0 failed" in first.output
    again = runner.invoke(main, ["questionnaires", "load"], env=env)
    assert f"0 created, 0 updated, {count} unchanged, 0 failed" in again.output


def test_version_is_the_package_version_the_capability_statement_shows() -> None:
    import tomllib
    from importlib.metadata import version

    from service.app import create_app
    from service.config import PROJECT_ROOT, Settings

    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"proms {declared}\n"
    assert version("recovery-proms") == declared
    app = create_app(Settings(database_url="sqlite://", auth_mode="none", log_level="ERROR"))
    statement = app.test_client().get("/fhir/metadata").get_json()
    assert statement["software"]["version"] == declared
    app.web.services.close()


def test_the_banner_says_where_everything_is() -> None:
    from service.cli import banner
    from service.config import Settings

    settings = Settings(base_url="https://proms.example.org/fhir", auth_mode="jwt")
    text = banner(settings)
    assert "https://proms.example.org/fhir" in text
    assert "https://proms.example.org/fhir/metadata" in text
    assert "https://proms.example.org/cds-services" in text
    assert "docs/api.md" in text and "README.md" in text and "docs/deploy.md" in text
    assert "/app" not in text  # the clinician app is off without its settings
    assert "AUTHENTICATION IS OFF" not in text

    with_app = banner(
        settings.with_(smart_client_id="proms", app_secret_key="k" * 32, smart_iss=("https://ehr.example.org/fhir",))
    )
    assert "https://proms.example.org/app" in with_app
    assert "AUTHENTICATION IS OFF" in banner(settings.with_(auth_mode="none"))
    assert "dev-ehr" not in banner(settings.with_(auth_mode="none"))  # not loopback: no development launcher
    local = Settings(auth_mode="none")  # as make run and make demo serve
    assert (
        "  clinician app   http://127.0.0.1:8080/dev-ehr/  (development launcher: no EHR needed)"
        in banner(local).splitlines()
    )


def test_ready_fails_when_nothing_answers(tmp_path: Path) -> None:
    from tests.e2e.processes import free_port

    result = CliRunner().invoke(main, ["ready", "--timeout", "1"], env={"PROMS_PORT": str(free_port())})
    assert result.exit_code == 1
    assert "not ready" in result.output


def test_the_built_in_outcome_measures_load_once(env: dict[str, str]) -> None:
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    first = runner.invoke(main, ["measures", "load"], env=env)
    assert first.exit_code == 0, first.output
    assert "outcome measures: 4 created, 0 updated, 0 unchanged, 0 failed" in first.output
    again = runner.invoke(main, ["measures", "load"], env=env)
    assert "outcome measures: 0 created, 0 updated, 4 unchanged, 0 failed" in again.output


def test_a_measure_the_service_cannot_evaluate_is_refused_by_name(env: dict[str, str], tmp_path: Path) -> None:
    from service.config import PROJECT_ROOT

    good = json.loads((PROJECT_ROOT / "measures" / "reliable-improvement" / "measure.json").read_text())
    library = tmp_path / "measures"
    for name, resource in {"ours": good, "theirs": {**good, "id": "x", "url": "https://example.org/Measure/x"}}.items():
        (library / name).mkdir(parents=True)
        (library / name / "measure.json").write_text(json.dumps(resource))
    runner = CliRunner()
    runner.invoke(main, ["db", "upgrade"], env=env)
    result = runner.invoke(main, ["measures", "load", str(library)], env=env)
    assert result.exit_code == 1
    assert "outcome measures: 1 created, 0 updated, 0 unchanged, 1 failed" in result.output
    assert "theirs: " in result.output and "not one of the outcome Measures this service evaluates" in result.output
