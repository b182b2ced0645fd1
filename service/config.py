"""Settings read from PROMS_* environment variables, with safe defaults (no Flask import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]
