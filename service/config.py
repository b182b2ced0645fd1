"""Settings read from PROMS_* environment variables, with safe defaults (no Flask import)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "recovery-proms"  # the name in pyproject.toml
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
RATE_LIMIT_STORAGES = ("memory://", "redis://", "rediss://", "redis+sentinel://")
# The drivers the service installs: sqlite3 (stdlib) and psycopg 3. A bare postgresql:// would ask for psycopg2.
DATABASE_URL = re.compile(r"^(sqlite(\+pysqlite)?|postgresql\+psycopg)://")


class SettingsError(ValueError):
    """A PROMS_* variable has a value the service cannot use."""


def package_version() -> str:
    """The installed package's version (pyproject.toml), as `proms --version` and the banner show it."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0.0.0"


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw}")
    return value


def _optional_port(env: Mapping[str, str], name: str) -> int | None:
    if not env.get(name):
        return None
    port = _int(env, name, 0, minimum=1)
    if port > 65535:
        raise SettingsError(f"{name} must be a port number (1-65535), got {port}")
    return port


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def _schedule(raw: str | None) -> tuple[tuple[str, int], ...]:
    """PROMS_SCHEDULE: 'phq-9=28,k10=84' (Questionnaire id or url = days; '*' sets the default)."""
    entries: list[tuple[str, int]] = []
    for part in _list(raw):
        key, _, days = part.rpartition("=")
        if not key.strip() or not days.strip().isdigit():
            raise SettingsError(f"PROMS_SCHEDULE entries must look like phq-9=28 (days), got {part!r}")
        entries.append((key.strip(), int(days)))
    return tuple(entries)


def _database_url(raw: str) -> str:
    if not DATABASE_URL.match(raw):
        # Only the scheme is shown: the rest may hold a password.
        shown = f"'{raw.partition('://')[0]}://...'" if "://" in raw else "a value without a scheme"
        raise SettingsError(
            f"PROMS_DATABASE_URL must start with sqlite:/// or postgresql+psycopg:// (the drivers the service "
            f"installs), got {shown}"
        )
    return raw


def _check_exists(name: str, path: Path, *, directory: bool) -> None:
    if not (path.is_dir() if directory else path.is_file()):
        kind = "directory" if directory else "file"
        raise SettingsError(f"{name} names no {kind}: {path}")


def _check_key_set(name: str, path: Path) -> None:
    _check_exists(name, path, directory=False)
    try:
        keys = json.loads(path.read_text(encoding="utf-8")).get("keys")
    except (OSError, ValueError, AttributeError):
        keys = None
    if not isinstance(keys, list) or not keys:
        raise SettingsError(f"{name} is not a JSON Web Key Set with at least one key: {path}")


def _days(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    """Whole days, comma-separated, e.g. PROMS_REMINDERS=3,7."""
    days = []
    for part in _list(env.get(name)):
        if not part.isdigit() or int(part) < 1:
            raise SettingsError(f"{name} must list whole numbers of days such as 3,7, got {part!r}")
        days.append(int(part))
    return tuple(sorted(set(days)))


def _switch(env: Mapping[str, str], name: str, default: str = "off") -> bool:
    raw = (env.get(name) or default).strip().lower()
    if raw not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
        raise SettingsError(f"{name} must be on or off, got {raw!r}")
    return raw in ("on", "1", "true", "yes")


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate such as 20/minute or 100 per hour."""
    raw = env.get(name) or default
    if not re.fullmatch(r"\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*", raw):
        raise SettingsError(f"{name} must be a rate such as 20/minute, got {raw!r}")
    return raw


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """CIDR networks, comma-separated (e.g. 10.20.0.0/16,fd00::/8)."""
    networks = _list(env.get(name))
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise SettingsError(f"{name} must list networks such as 10.20.0.0/16, got {network!r}") from None
    return networks


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw) if raw else default


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///var/proms.sqlite3"
    base_url: str = "http://127.0.0.1:8080/fhir"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    threads: int = 4
    log_level: str = "INFO"
    max_body_bytes: int = 1_000_000
    max_bundle_entries: int = 200  # entries of a batch or transaction Bundle; more is a 413
    default_page_size: int = 20
    max_page_size: int = 500
    questionnaires_dir: Path = field(default=PROJECT_ROOT / "questionnaires")
    terminology_dir: Path = field(default=PROJECT_ROOT / "terminology")
    measures_dir: Path = field(default=PROJECT_ROOT / "measures")
    migrations_dir: Path = field(default=PROJECT_ROOT / "migrations")
    openapi_path: Path = field(default=PROJECT_ROOT / "openapi.yaml")
    load_questionnaires_on_start: bool = False
    # Authentication: "jwt" (SMART bearer tokens; the default) or "none" (local development, loopback only).
    auth_mode: str = "jwt"
    auth_jwks_url: str | None = None
    auth_jwks_file: Path | None = None
    auth_issuers: tuple[str, ...] = ()
    auth_audience: str | None = None  # default: the FHIR base URL
    auth_authorize_url: str | None = None
    auth_token_url: str | None = None
    # The SMART clinician app under /app: off unless a client id, a session key and trusted EHRs are set.
    smart_client_id: str | None = None
    smart_client_secret: str | None = None  # none: a public client (PKCE only)
    smart_scopes: str = "launch openid fhirUser patient/*.rs"
    smart_iss: tuple[str, ...] = ()  # the EHR FHIR base URLs allowed to launch the app
    smart_patient_identifier_system: str | None = None  # map the EHR patient by this identifier, not by id
    app_secret_key: str | None = None
    # The development launcher's files (service/api/dev_ehr.py): its signing key and pending launches.
    dev_ehr_dir: Path = Path("var/dev-ehr")
    cors_origins: tuple[str, ...] = ()
    # CDS Hooks: the CDS clients (EHRs) trusted to call the service, and where their signing keys are.
    cds_issuers: tuple[str, ...] = ()
    cds_jwks_url: str | None = None
    cds_jwks_file: Path | None = None
    # Networks subscription notifications may be sent to although they are not public (an organisation's own
    # integration engines), as CIDRs. Everything private, loopback or link-local is refused otherwise.
    subscription_allowed_networks: tuple[str, ...] = ()
    # Refused bearer tokens allowed per client address before it is answered 429 (service/api/throttle.py), and
    # where the counts live (the limits library's storage URI: memory:// per process, redis://host:6379 shared).
    auth_failure_limit: str = "20/minute"
    # Completion links that open nothing, per client address, before it is answered 429 (docs/invitations.md).
    link_failure_limit: str = "10/minute"
    rate_limit_storage: str = "memory://"
    # How many proxies (load balancers) in front of the service set X-Forwarded-For: the client's address (for the
    # audit and the throttle) is taken from that header only when this is set.
    trusted_proxies: int = 0
    # How often each measure is due, in days, by Questionnaire id or url ('*': the default, else 28).
    schedule: tuple[tuple[str, int], ...] = ()
    # Completion links (docs/invitations.md): reminders, in days after the link was made, while the Task is open;
    # Tasks made by the worker when a measure falls due (PROMS_SCHEDULE); e-mail sent by the service itself.
    reminders: tuple[int, ...] = ()
    link_show_score: bool = False  # the thank-you page shows the person their score (off: a plain thank-you)
    auto_tasks: bool = False
    smtp_host: str | None = None  # none: the service sends no e-mail (the EHR delivers links itself)
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True  # off only for a relay on loopback
    smtp_ca_file: Path | None = None  # the relay's CA, when it is not one the system trusts
    smtp_timeout_seconds: float = 10.0
    faults: str = ""  # test only: see service/faults.py
    # The outbox worker (`proms worker`): subscription notifications and bulk exports.
    worker_poll_seconds: float = 1.0  # how long an idle worker sleeps before looking for work again
    worker_max_failures: int = 5  # consecutive failed notifications before a subscription is marked error
    worker_retry_base_seconds: float = 1.0  # first retry delay; doubled after each failure
    worker_retry_max_seconds: float = 300.0
    worker_error_retry_seconds: float = 300.0  # the slow rate at which errored subscriptions are retried
    worker_http_timeout_seconds: float = 10.0
    worker_lease_seconds: float = 60.0  # a claim on a job outlives a dead worker by at most this long
    worker_metrics_port: int | None = None  # the worker's own Prometheus /metrics, on PROMS_HOST; none: not served
    # Bulk Data export: files are kept in the database, in chunks, and deleted with their export.
    export_retention_hours: float = 24.0
    export_file_max_bytes: int = 100_000_000  # a type's output is split into several files past this size
    export_chunk_rows: int = 1000  # rows read per query while streaming an export
    export_chunk_bytes: int = 256 * 1024  # a file is stored (and served) in chunks of this size
    export_poll_seconds: float = 2.0  # status polls more frequent than this get 429
    export_since_margin_seconds: float = 10.0  # see service/exports.py: what _since guarantees

    @property
    def audience(self) -> str:
        return self.auth_audience or self.base_url

    @property
    def public_root(self) -> str:
        """The public address of the whole service (the FHIR base without /fhir): /app, /cds-services live there."""
        return self.base_url.removesuffix("/fhir").rstrip("/")

    @property
    def clinician_app_enabled(self) -> bool:
        """The SMART clinician app under /app is served only with a client id, a session key and trusted EHRs."""
        return bool(self.smart_client_id and self.app_secret_key and self.smart_iss)

    def check_safe(self) -> None:
        """Refuse configurations that would expose health data: no authentication off loopback."""
        if self.auth_mode not in ("jwt", "none"):
            raise SettingsError(f"PROMS_AUTH must be jwt or none, got {self.auth_mode!r}")
        if self.auth_mode == "none" and self.host not in LOOPBACK_HOSTS:
            raise SettingsError(
                f"PROMS_AUTH=none is for local development only and needs PROMS_HOST on loopback "
                f"(127.0.0.1, ::1 or localhost), not {self.host!r}"
            )
        if self.auth_mode == "jwt":
            if not (self.auth_jwks_url or self.auth_jwks_file) or not self.auth_issuers:
                raise SettingsError(
                    "PROMS_AUTH=jwt needs PROMS_AUTH_ISSUER and PROMS_AUTH_JWKS_URL or PROMS_AUTH_JWKS_FILE "
                    "(for local development only: PROMS_AUTH=none on a loopback address)"
                )
            if self.auth_jwks_url and self.auth_jwks_file:
                raise SettingsError("Set PROMS_AUTH_JWKS_URL or PROMS_AUTH_JWKS_FILE, not both")
        if self.app_secret_key is not None and len(self.app_secret_key) < 32:
            raise SettingsError("PROMS_APP_SECRET_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        if self.smart_client_id and not self.app_secret_key:
            raise SettingsError("PROMS_SMART_CLIENT_ID needs PROMS_APP_SECRET_KEY (the clinician app's session key)")
        if not self.rate_limit_storage.startswith(RATE_LIMIT_STORAGES):
            raise SettingsError(
                f"PROMS_RATE_LIMIT_STORAGE must be memory:// or a redis:// URL, got {self.rate_limit_storage!r}"
            )
        if self.smtp_host and not self.smtp_from:
            raise SettingsError("PROMS_SMTP_HOST needs PROMS_SMTP_FROM (the address invitations are sent from)")
        if self.smtp_host and not self.smtp_starttls and self.smtp_host not in LOOPBACK_HOSTS:
            raise SettingsError("PROMS_SMTP_STARTTLS=off is only allowed for a relay on loopback")
        if self.cds_jwks_url and self.cds_jwks_file:
            raise SettingsError("Set PROMS_CDS_JWKS_URL or PROMS_CDS_JWKS_FILE, not both")

    def check_serving(self) -> None:
        """Everything a web node needs, checked before it starts: safe settings, and the files they name exist."""
        self.check_safe()
        _check_exists("PROMS_MIGRATIONS_DIR", self.migrations_dir, directory=True)  # /readyz compares revisions
        _check_exists("PROMS_OPENAPI_PATH", self.openapi_path, directory=False)
        if self.auth_mode == "jwt" and self.auth_jwks_file is not None:
            _check_key_set("PROMS_AUTH_JWKS_FILE", self.auth_jwks_file)
        if self.cds_jwks_file is not None:
            _check_key_set("PROMS_CDS_JWKS_FILE", self.cds_jwks_file)

    def check_migrations(self) -> None:
        _check_exists("PROMS_MIGRATIONS_DIR", self.migrations_dir, directory=True)

    def check_library(self) -> None:
        _check_exists("PROMS_QUESTIONNAIRES_DIR", self.questionnaires_dir, directory=True)

    def check_terminology(self) -> None:
        _check_exists("PROMS_TERMINOLOGY_DIR", self.terminology_dir, directory=True)

    def check_measures(self) -> None:
        _check_exists("PROMS_MEASURES_DIR", self.measures_dir, directory=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        port = _int(env, "PROMS_PORT", defaults.port, minimum=1)
        host = env.get("PROMS_HOST") or defaults.host
        base_url = env.get("PROMS_BASE_URL") or f"http://{host}:{port}/fhir"
        level = (env.get("PROMS_LOG_LEVEL") or defaults.log_level).upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"PROMS_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
        return cls(
            database_url=_database_url(env.get("PROMS_DATABASE_URL") or defaults.database_url),
            base_url=base_url.rstrip("/"),
            host=host,
            port=port,
            workers=_int(env, "PROMS_WORKERS", defaults.workers, minimum=1),
            threads=_int(env, "PROMS_THREADS", defaults.threads, minimum=1),
            log_level=level,
            max_body_bytes=_int(env, "PROMS_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024),
            max_bundle_entries=_int(env, "PROMS_MAX_BUNDLE_ENTRIES", defaults.max_bundle_entries, minimum=1),
            default_page_size=_int(env, "PROMS_DEFAULT_PAGE_SIZE", defaults.default_page_size, minimum=1),
            max_page_size=_int(env, "PROMS_MAX_PAGE_SIZE", defaults.max_page_size, minimum=1),
            questionnaires_dir=_path(env, "PROMS_QUESTIONNAIRES_DIR", defaults.questionnaires_dir),
            terminology_dir=_path(env, "PROMS_TERMINOLOGY_DIR", defaults.terminology_dir),
            measures_dir=_path(env, "PROMS_MEASURES_DIR", defaults.measures_dir),
            migrations_dir=_path(env, "PROMS_MIGRATIONS_DIR", defaults.migrations_dir),
            openapi_path=_path(env, "PROMS_OPENAPI_PATH", defaults.openapi_path),
            load_questionnaires_on_start=env.get("PROMS_LOAD_QUESTIONNAIRES", "") in ("1", "true", "yes"),
            auth_mode=(env.get("PROMS_AUTH") or defaults.auth_mode).lower(),
            auth_jwks_url=env.get("PROMS_AUTH_JWKS_URL") or None,
            auth_jwks_file=Path(env["PROMS_AUTH_JWKS_FILE"]) if env.get("PROMS_AUTH_JWKS_FILE") else None,
            auth_issuers=_list(env.get("PROMS_AUTH_ISSUER")),
            auth_audience=env.get("PROMS_AUTH_AUDIENCE") or None,
            auth_authorize_url=env.get("PROMS_AUTH_AUTHORIZE_URL") or None,
            auth_token_url=env.get("PROMS_AUTH_TOKEN_URL") or None,
            smart_client_id=env.get("PROMS_SMART_CLIENT_ID") or None,
            smart_client_secret=env.get("PROMS_SMART_CLIENT_SECRET") or None,
            smart_scopes=env.get("PROMS_SMART_SCOPES") or defaults.smart_scopes,
            smart_iss=tuple(url.rstrip("/") for url in _list(env.get("PROMS_SMART_ISS"))),
            smart_patient_identifier_system=env.get("PROMS_SMART_PATIENT_IDENTIFIER_SYSTEM") or None,
            app_secret_key=env.get("PROMS_APP_SECRET_KEY") or None,
            dev_ehr_dir=_path(env, "PROMS_DEV_EHR_DIR", defaults.dev_ehr_dir),
            cors_origins=_list(env.get("PROMS_CORS_ORIGINS")),
            cds_issuers=_list(env.get("PROMS_CDS_ISSUERS")),
            cds_jwks_url=env.get("PROMS_CDS_JWKS_URL") or None,
            cds_jwks_file=Path(env["PROMS_CDS_JWKS_FILE"]) if env.get("PROMS_CDS_JWKS_FILE") else None,
            subscription_allowed_networks=_networks(env, "PROMS_SUBSCRIPTION_ALLOWED_NETWORKS"),
            auth_failure_limit=_rate(env, "PROMS_AUTH_FAILURE_LIMIT", defaults.auth_failure_limit),
            link_failure_limit=_rate(env, "PROMS_LINK_FAILURE_LIMIT", defaults.link_failure_limit),
            rate_limit_storage=env.get("PROMS_RATE_LIMIT_STORAGE") or defaults.rate_limit_storage,
            trusted_proxies=_int(env, "PROMS_TRUSTED_PROXIES", defaults.trusted_proxies),
            schedule=_schedule(env.get("PROMS_SCHEDULE")),
            reminders=_days(env, "PROMS_REMINDERS"),
            auto_tasks=_switch(env, "PROMS_AUTO_TASKS"),
            link_show_score=_switch(env, "PROMS_LINK_SHOW_SCORE"),
            smtp_host=env.get("PROMS_SMTP_HOST") or None,
            smtp_port=_optional_port(env, "PROMS_SMTP_PORT") or defaults.smtp_port,
            smtp_username=env.get("PROMS_SMTP_USERNAME") or None,
            smtp_password=env.get("PROMS_SMTP_PASSWORD") or None,
            smtp_from=env.get("PROMS_SMTP_FROM") or None,
            smtp_starttls=_switch(env, "PROMS_SMTP_STARTTLS", "on"),
            smtp_ca_file=Path(env["PROMS_SMTP_CA_FILE"]) if env.get("PROMS_SMTP_CA_FILE") else None,
            smtp_timeout_seconds=_float(env, "PROMS_SMTP_TIMEOUT_SECONDS", defaults.smtp_timeout_seconds, minimum=0.1),
            faults=env.get("PROMS_FAULTS", ""),
            worker_poll_seconds=_float(env, "PROMS_WORKER_POLL_SECONDS", defaults.worker_poll_seconds, minimum=0.01),
            worker_max_failures=_int(env, "PROMS_WORKER_MAX_FAILURES", defaults.worker_max_failures, minimum=1),
            worker_retry_base_seconds=_float(
                env, "PROMS_WORKER_RETRY_BASE_SECONDS", defaults.worker_retry_base_seconds
            ),
            worker_retry_max_seconds=_float(env, "PROMS_WORKER_RETRY_MAX_SECONDS", defaults.worker_retry_max_seconds),
            worker_error_retry_seconds=_float(
                env, "PROMS_WORKER_ERROR_RETRY_SECONDS", defaults.worker_error_retry_seconds, minimum=0.01
            ),
            worker_http_timeout_seconds=_float(
                env, "PROMS_WORKER_HTTP_TIMEOUT_SECONDS", defaults.worker_http_timeout_seconds, minimum=0.1
            ),
            worker_lease_seconds=_float(env, "PROMS_WORKER_LEASE_SECONDS", defaults.worker_lease_seconds, minimum=1),
            worker_metrics_port=_optional_port(env, "PROMS_WORKER_METRICS_PORT"),
            export_retention_hours=_float(env, "PROMS_EXPORT_RETENTION_HOURS", defaults.export_retention_hours),
            export_file_max_bytes=_int(
                env, "PROMS_EXPORT_FILE_MAX_BYTES", defaults.export_file_max_bytes, minimum=1024
            ),
            export_chunk_rows=_int(env, "PROMS_EXPORT_CHUNK_ROWS", defaults.export_chunk_rows, minimum=1),
            export_chunk_bytes=_int(env, "PROMS_EXPORT_CHUNK_BYTES", defaults.export_chunk_bytes, minimum=1024),
            export_poll_seconds=_float(env, "PROMS_EXPORT_POLL_SECONDS", defaults.export_poll_seconds),
            export_since_margin_seconds=_float(
                env, "PROMS_EXPORT_SINCE_MARGIN_SECONDS", defaults.export_since_margin_seconds
            ),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
