"""Test harness: a fresh app per test on SQLite and (marked ``pg``) PostgreSQL, and a FHIR client helper."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from werkzeug.test import TestResponse

from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.store.migrations import upgrade

FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN_URL = os.environ.get("PROMS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BASE_URL = "http://proms.test/fhir"


def load_fixture(relative: str) -> dict[str, Any]:
    value = orjson.loads((FIXTURES / relative).read_bytes())
    assert isinstance(value, dict)
    return value


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (much faster than migrating each time)."""
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    upgrade(f"sqlite:///{path}", PROJECT_ROOT / "migrations")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A migrated PostgreSQL database of this test run's own (dropped at the end)."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(PG_ADMIN_URL)
    name = f"proms_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("PROMS_TEST_SKIP_PG") == "1":
            pytest.skip(f"PostgreSQL not reachable and PROMS_TEST_SKIP_PG=1: {exc}")
        pytest.fail(f"PostgreSQL is required for these tests and is not reachable at {PG_ADMIN_URL}: {exc}")
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    upgrade(url, PROJECT_ROOT / "migrations")
    yield url
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_pg(engine: Engine) -> None:
    """Empty every table of a test database (PostgreSQL tests share one database per run)."""
    from sqlalchemy import text

    from service.store.models import Base

    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "proms.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    return url


ISSUER = "https://auth.proms.test"
FULL_ACCESS = "system/*.cruds"


class Keys:
    """A real key pair of a test authorization server: its JWKS, and tokens it signs."""

    def __init__(self, directory: Path) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        self.jwks = {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}
        self.jwks_file = directory / "jwks.json"
        self.jwks_file.write_text(json.dumps(self.jwks))

    def token(self, scope: str = FULL_ACCESS, *, patient: str | None = None, lifetime: int = 300, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER, "aud": BASE_URL, "sub": "user-1", "client_id": "test-client",
            "iat": now, "exp": now + lifetime, "scope": scope, **claims,
        }  # fmt: skip
        if patient is not None:
            payload["patient"] = patient
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


def jwt_settings(database_url: str, keys: Keys) -> Settings:
    return Settings(
        database_url=database_url,
        base_url=BASE_URL,
        log_level="WARNING",
        auth_mode="jwt",
        auth_jwks_file=keys.jwks_file,
        auth_issuers=(ISSUER,),
    )


@pytest.fixture
def settings(database_url: str, keys: Keys) -> Settings:
    """The whole API suite runs as production does: bearer JWTs from a real key pair."""
    return jwt_settings(database_url, keys)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    if settings.database_url.startswith("postgresql"):
        truncate_pg(app.web.services.db.engine)
    app.web.services.db.dispose()


class Fhir:
    """A thin FHIR client over the Flask test client, so tests read as actions."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **(headers or {})}

    def as_token(self, token: str | None) -> Fhir:
        """This client with another bearer token (None: no Authorization header at all)."""
        other = Fhir(self.client.application.test_client())
        if token is not None:
            other.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return other

    def post(self, path: str, resource: Any, headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.post(f"/fhir/{path}", data=orjson.dumps(resource), headers=self._headers(headers))

    def put(self, path: str, resource: Any, headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.put(f"/fhir/{path}", data=orjson.dumps(resource), headers=self._headers(headers))

    def get(self, path: str, headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.get(f"/fhir/{path}", headers={"Accept": "application/fhir+json", **(headers or {})})

    def post_form(self, path: str, form: dict[str, str]) -> TestResponse:
        return self.client.post(f"/fhir/{path}", data=form)

    def delete(self, path: str) -> TestResponse:
        return self.client.delete(f"/fhir/{path}")

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        response = self.post(resource["resourceType"], resource)
        assert response.status_code == 201, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body


@pytest.fixture
def client(app: Flask, keys: Keys) -> FlaskClient:
    """A test client carrying a full-access backend token (tests of refusals use ``Fhir.as_token``)."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {keys.token()}"
    return client


@pytest.fixture
def fhir(client: FlaskClient) -> Fhir:
    return Fhir(client)
