"""The ``proms`` command: serve, the worker, database migrations, the questionnaire library and outcome measures."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from service.config import DISTRIBUTION, PROJECT_ROOT, Settings, SettingsError, package_version
from service.dev_launch import launcher_url

if TYPE_CHECKING:
    from service.questionnaires import LoadReport

CONFIGURATION_ERROR = 2  # the exit status of every command, and of gunicorn, refused by its settings


class ConfigurationError(click.ClickException):
    """Settings the service cannot start with: one sentence on stderr, exit status 2, no traceback."""

    exit_code = CONFIGURATION_ERROR

    def __init__(self, error: SettingsError) -> None:
        super().__init__(f"Configuration error: {error}")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.message, file=file, err=file is None)


def _settings(check: Callable[[Settings], None] | None = None) -> Settings:
    """The settings from PROMS_* variables; ``check`` adds what this command needs beyond readable values."""
    try:
        settings = Settings.from_env()
        if check is not None:
            check(settings)
    except SettingsError as exc:
        raise ConfigurationError(exc) from None
    return settings


def settings_for_gunicorn() -> Settings:
    """What gunicorn.conf.py serves with, or (as `proms serve`) one line on stderr and exit status 2."""
    try:
        return _settings(Settings.check_serving)
    except ConfigurationError as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None


def banner(settings: Settings) -> str:
    """What gunicorn prints once it is ready: where everything is, and where to read on."""
    root = settings.public_root
    lines = [
        f"Recovery PROM service {package_version()} listening on {settings.host}:{settings.port} "
        "(Ctrl-C or SIGTERM stops it)",
        f"  FHIR API        {settings.base_url}  (what it supports: {settings.base_url}/metadata)",
    ]
    if settings.clinician_app_enabled:
        lines.append(f"  clinician app   {root}/app")
    if (launcher := launcher_url(settings)) is not None:
        lines.append(f"  clinician app   {launcher}  (development launcher: no EHR needed)")
    lines += [
        f"  CDS Hooks       {root}/cds-services",
        f"  operations      {root}/healthz  {root}/readyz  {root}/metrics",
        f"  docs            README.md, docs/api.md (every endpoint; contract: {root}/openapi.yaml), docs/deploy.md",
    ]
    if settings.auth_mode == "none":
        lines.append("  AUTHENTICATION IS OFF (PROMS_AUTH=none): every caller can read and change all data")
    return "\n".join(lines)


@contextmanager
def _database_errors(settings: Settings) -> Iterator[None]:
    """A database that cannot be reached is one line naming it (without its password), not a traceback."""
    from sqlalchemy.exc import OperationalError

    from service.fhir.errors import DatabaseUnavailable

    try:
        yield
    except (OperationalError, DatabaseUnavailable) as exc:
        cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) else exc
        orig = getattr(cause, "orig", None) or cause or exc
        reason = str(orig).strip().splitlines()[0]
        raise click.ClickException(f"cannot use the database at {_safe_url(settings.database_url)}: {reason}") from None


@contextmanager
def _setup_lock(settings: Settings) -> Iterator[None]:
    """Set-up jobs on one database take turns (several containers may start at once)."""
    from service.store.setup_lock import setup_lock

    def waiting() -> None:
        click.echo("waiting for another set-up job (proms init, db upgrade or questionnaires load) to finish", err=True)

    with setup_lock(settings.database_url, on_wait=waiting):
        yield


@click.group()
@click.version_option(package_name=DISTRIBUTION, prog_name="proms", message="%(prog)s %(version)s")
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
    _settings(Settings.check_serving)  # fail here, in one line, rather than in every gunicorn worker
    config = PROJECT_ROOT / "gunicorn.conf.py"
    args = [sys.executable, "-m", "gunicorn", "--config", str(config), "service.wsgi:app"]
    os.execv(sys.executable, args)


@main.command()
@click.option("--timeout", type=float, default=3.0, show_default=True, help="Seconds to wait for the answer")
def ready(timeout: float) -> None:
    """Exit 0 if this node's /readyz answers 200, 1 otherwise (the container's health check)."""
    settings = _settings()
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.port}/readyz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # this node itself, never via a proxy
    try:
        with opener.open(url, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode(errors="replace")
        raise click.ClickException(f"not ready: {url} answered {exc.code} {body}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"not ready: {url}: {getattr(exc, 'reason', exc)}") from None
    click.echo(f"ready: {url}")


@main.command()
def worker() -> None:
    """Deliver subscription notifications and run bulk exports (stops cleanly on SIGTERM)."""
    from service.jobs.worker import run_worker
    from service.observability import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    run_worker(settings)


@main.command()
def init() -> None:
    """Migrate the database and load the built-in questionnaires and outcome measures: the one-off job before the
    first start.

    Safe to run again, and from several containers at once (they take turns).
    """
    settings = _settings(_check_init)
    with _database_errors(settings), _setup_lock(settings):
        _upgrade(settings)
        report = _load(settings, settings.questionnaires_dir)
        measures = _load_measures(settings, settings.measures_dir)
        terms = _load_terminology(settings)
    _report_load(report)
    _report_load(measures, "outcome measures")
    _report_load(terms, "terminology")


def _check_init(settings: Settings) -> None:
    settings.check_migrations()
    settings.check_library()
    settings.check_measures()
    settings.check_terminology()


def _upgrade(settings: Settings) -> None:
    from service.store.migrations import upgrade

    upgrade(settings.database_url, settings.migrations_dir)
    click.echo(f"database at the latest migration: {_safe_url(settings.database_url)}")


def _load(settings: Settings, directory: Path) -> LoadReport:
    from service.questionnaires import load_library
    from service.services import build_services

    services = build_services(settings)
    try:
        return load_library(services, directory)
    finally:
        services.close()


def _load_measures(settings: Settings, directory: Path) -> LoadReport:
    from service.outcomes.library import load_measures
    from service.services import build_services

    services = build_services(settings)
    try:
        return load_measures(services, directory)
    finally:
        services.close()


def _load_terminology(settings: Settings) -> LoadReport:
    from service.services import build_services
    from service.terminology import load_terminology

    services = build_services(settings)
    try:
        return load_terminology(services, settings.terminology_dir, settings.questionnaires_dir)
    finally:
        services.close()


def _report_load(report: LoadReport, what: str = "questionnaires") -> None:
    click.echo(
        f"{what}: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.failed)} failed"
    )
    for label, message in report.failed:
        click.echo(f"  {label}: {message}", err=True)
    if report.failed:
        raise SystemExit(1)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (safe to run again, and from several containers at once)."""
    settings = _settings(Settings.check_migrations)
    with _database_errors(settings), _setup_lock(settings):
        _upgrade(settings)


@db.command("check")
def db_check() -> None:
    """Fail if the database is not at the latest migration or the models drifted from the migrations."""
    from alembic.util.exc import CommandError

    from service.store.db import create_db_engine
    from service.store.migrations import check, current_revision, head_revision

    settings = _settings(Settings.check_migrations)
    engine = create_db_engine(settings.database_url)
    with _database_errors(settings):
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
    """Store every definition in DIRECTORY (default: the built-in library); idempotent, and safe to run at once."""
    settings = _settings(None if directory is not None else Settings.check_library)
    with _database_errors(settings), _setup_lock(settings):
        report = _load(settings, _library_dir(directory, settings))
    _report_load(report)


@questionnaires.command("check")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def questionnaires_check(directory: Path | None) -> None:
    """Check every definition in DIRECTORY; exit non-zero naming each problem."""
    from service.definitions import check_library

    settings = _settings(None if directory is not None else Settings.check_library)
    problems = check_library(_library_dir(directory, settings))
    for path, issue in problems:
        where = f" at {issue.expression}" if issue.expression else ""
        click.echo(f"{path}: {issue.severity}: {issue.text}{where}", err=True)
    errors = [issue for _, issue in problems if issue.is_error]
    if errors:
        raise click.ClickException(f"{len(errors)} error(s) in the questionnaire definitions")
    click.echo("questionnaire definitions: all valid")


@main.group()
def measures() -> None:
    """The built-in outcome Measures (reliable improvement, recovery ...)."""


@measures.command("load")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def measures_load(directory: Path | None) -> None:
    """Store every Measure in DIRECTORY (default: the built-in ones); idempotent, and safe to run at once."""
    settings = _settings(None if directory is not None else Settings.check_measures)
    with _database_errors(settings), _setup_lock(settings):
        report = _load_measures(settings, directory if directory is not None else settings.measures_dir)
    _report_load(report, "outcome measures")


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
    if report.invitation:
        click.echo(f"demo-04 is asked to complete the QPR-15: {report.invitation}")


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
