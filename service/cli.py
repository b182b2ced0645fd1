"""The ``proms`` command: serve, the worker, database migrations and the questionnaire library."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from service.config import PROJECT_ROOT, Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Recovery PROM service (FHIR R4)."""


@main.command()
@click.option("--host", help="Address to bind (PROMS_HOST, default 127.0.0.1)")
@click.option("--port", type=int, help="Port to bind (PROMS_PORT, default 8080)")
@click.option("--workers", type=int, help="Worker processes (PROMS_WORKERS, default 2)")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API with gunicorn (stops cleanly on Ctrl-C or SIGTERM)."""
    for name, value in (("PROMS_HOST", host), ("PROMS_PORT", port), ("PROMS_WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value)
    _settings()  # fail here, readably, rather than in every worker
    config = PROJECT_ROOT / "gunicorn.conf.py"
    args = [sys.executable, "-m", "gunicorn", "--config", str(config), "service.wsgi:app"]
    os.execv(sys.executable, args)


@main.command()
def worker() -> None:
    """Deliver subscription notifications and run bulk exports (stops cleanly on SIGTERM)."""
    from service.jobs.worker import run_worker
    from service.observability import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    run_worker(settings)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from service.store.migrations import upgrade

    settings = _settings()
    upgrade(settings.database_url, settings.migrations_dir)
    click.echo(f"database at the latest migration: {_safe_url(settings.database_url)}")


@db.command("check")
def db_check() -> None:
    """Fail if the database is not at the latest migration or the models drifted from the migrations."""
    from alembic.util.exc import CommandError

    from service.store.db import create_db_engine
    from service.store.migrations import check, current_revision, head_revision

    settings = _settings()
    engine = create_db_engine(settings.database_url)
    current, head = current_revision(engine), head_revision(settings.migrations_dir)
    engine.dispose()
    if current != head:
        raise click.ClickException(f"database is at revision {current}, the latest is {head}: run `proms db upgrade`")
    try:
        check(settings.database_url, settings.migrations_dir)
    except CommandError as exc:
        raise click.ClickException(f"models and migrations disagree: {exc}") from None
    click.echo(f"database is current (revision {current}) and matches the models")


@main.group()
def questionnaires() -> None:
    """The questionnaire library."""


def _library_dir(directory: Path | None, settings: Settings) -> Path:
    return directory if directory is not None else settings.questionnaires_dir


@questionnaires.command("load")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def questionnaires_load(directory: Path | None) -> None:
    """Store every definition in DIRECTORY (default: the built-in library); idempotent."""
    from service.questionnaires import load_library
    from service.services import build_services

    settings = _settings()
    services = build_services(settings)
    try:
        report = load_library(services, _library_dir(directory, settings))
    finally:
        services.close()
    click.echo(
        f"questionnaires: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.failed)} failed"
    )
    for label, message in report.failed:
        click.echo(f"  {label}: {message}", err=True)
    if report.failed:
        raise SystemExit(1)


@questionnaires.command("check")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def questionnaires_check(directory: Path | None) -> None:
    """Check every definition in DIRECTORY; exit non-zero naming each problem."""
    from service.definitions import check_library

    settings = _settings()
    problems = check_library(_library_dir(directory, settings))
    for path, issue in problems:
        where = f" at {issue.expression}" if issue.expression else ""
        click.echo(f"{path}: {issue.severity}: {issue.text}{where}", err=True)
    errors = [issue for _, issue in problems if issue.is_error]
    if errors:
        raise click.ClickException(f"{len(errors)} error(s) in the questionnaire definitions")
    click.echo("questionnaire definitions: all valid")


@main.group()
def demo() -> None:
    """Synthetic demo data (tagged as synthetic; never loaded unless asked)."""


@demo.command("load")
@click.option(
    "--patients",
    type=click.IntRange(1, 99),
    default=12,
    show_default=True,
    help="How many synthetic people (Patient/demo-01, demo-02, ...)",
)
def demo_load(patients: int) -> None:
    """Store synthetic people's responses through the submission path; loading again adds nothing twice."""
    from datetime import UTC, datetime

    from service.demo import DemoError, load_demo
    from service.services import build_services

    settings = _settings()
    services = build_services(settings)
    try:
        report = load_demo(services, today=datetime.now(UTC).date(), patients=patients)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        services.close()
    counts = report.counts
    click.echo(
        f"demo data: {counts.people} people, {counts.responses} responses ({report.created} new, "
        f"{report.existing} already stored), {counts.observations} observations, {counts.flags} flags"
    )


@demo.command("remove")
def demo_remove() -> None:
    """Delete every demo response and what was derived from it (Observations, Flags, Provenance)."""
    from service.demo import remove_demo
    from service.services import build_services

    settings = _settings()
    services = build_services(settings)
    try:
        removed = remove_demo(services)
    finally:
        services.close()
    click.echo(
        f"demo data removed: {removed.people} people, {removed.responses} responses, "
        f"{removed.observations} observations, {removed.flags} flags, {removed.provenance} provenance"
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
