"""Settings read from PROMS_* environment variables, with safe defaults (no Flask import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class SettingsError(ValueError):
    """A PROMS_* variable has a value the service cannot use."""


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


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


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
    default_page_size: int = 20
    max_page_size: int = 500
    questionnaires_dir: Path = field(default=PROJECT_ROOT / "questionnaires")
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
    cors_origins: tuple[str, ...] = ()

    @property
    def audience(self) -> str:
        return self.auth_audience or self.base_url

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
            database_url=env.get("PROMS_DATABASE_URL") or defaults.database_url,
            base_url=base_url.rstrip("/"),
            host=host,
            port=port,
            workers=_int(env, "PROMS_WORKERS", defaults.workers, minimum=1),
            threads=_int(env, "PROMS_THREADS", defaults.threads, minimum=1),
            log_level=level,
            max_body_bytes=_int(env, "PROMS_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024),
            default_page_size=_int(env, "PROMS_DEFAULT_PAGE_SIZE", defaults.default_page_size, minimum=1),
            max_page_size=_int(env, "PROMS_MAX_PAGE_SIZE", defaults.max_page_size, minimum=1),
            questionnaires_dir=_path(env, "PROMS_QUESTIONNAIRES_DIR", defaults.questionnaires_dir),
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
            cors_origins=_list(env.get("PROMS_CORS_ORIGINS")),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
