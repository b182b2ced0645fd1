"""Reliability in process: atomic submissions, database outages as 503s, optimistic concurrency."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from service.app import create_app
from service.config import Settings
from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import Fhir, Keys, jwt_settings, truncate_pg


def _counts(fhir: Fhir) -> tuple[int, int, int, int]:
    def total(query: str) -> int:
        value: int = fhir.get(f"{query}?_summary=count").get_json()["total"]
        return value

    return total("QuestionnaireResponse"), total("Observation"), total("Provenance"), total("Flag")


@pytest.mark.parametrize(
    "broken", ["service.responses.derived.provenance", "service.responses.derived.extract_observations"]
)
def test_a_failure_inside_the_submission_leaves_nothing_behind(
    fhir: Fhir, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    fhir.create(scored_questionnaire())
    fhir.create(scored_response(("often", "never", "always")))
    before = _counts(fhir)

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(broken, fail)
    result = fhir.post("QuestionnaireResponse", scored_response(("always", "always", "always"), patient="p9"))
    assert result.status_code == 500
    monkeypatch.undo()
    assert _counts(fhir) == before
    assert fhir.get("QuestionnaireResponse?patient=p9").get_json()["total"] == 0


def test_an_unreachable_database_is_a_503_with_retry_after(keys: Keys) -> None:
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", auth_mode="none")
    client = create_app(settings).test_client()
    result = client.get("/fhir/QuestionnaireResponse")
    assert result.status_code == 503
    assert result.headers["Retry-After"]
    outcome = result.get_json()
    assert outcome["issue"][0]["code"] == "transient"
    assert "Traceback" not in result.get_data(as_text=True)
    assert client.get("/readyz").status_code == 503


@pytest.mark.pg
def test_the_service_recovers_when_its_database_connections_are_killed(pg_database: str, keys: Keys) -> None:
    app = create_app(jwt_settings(pg_database, keys))
    db = app.web.services.db
    fhir = Fhir(app.test_client())
    fhir.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {keys.token()}"
    fhir.create(scored_questionnaire())
    acknowledged = [fhir.create(scored_response(("never",) * 3))["id"]]
    with db.engine.connect() as connection:
        name = connection.execute(text("SELECT current_database()")).scalar_one()
    # Another session kills every connection the service holds (a failover, a restart, an admin).
    from sqlalchemy import create_engine

    admin = create_engine(db.engine.url.set(database="postgres"))
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        connection.commit()
    admin.dispose()
    for _attempt in range(3):
        result = fhir.post("QuestionnaireResponse", scored_response(("often",) * 3))
        if result.status_code == 201:
            acknowledged.append(result.get_json()["id"])
            break
        assert result.status_code == 503, result.get_data(as_text=True)
    else:
        raise AssertionError("the service did not recover")
    stored = fhir.get("QuestionnaireResponse").get_json()
    assert sorted(e["resource"]["id"] for e in stored["entry"]) == sorted(acknowledged)
    assert fhir.client.get("/readyz").status_code == 200
    truncate_pg(db.engine)
    db.dispose()


def test_two_clinicians_amending_the_same_version_one_wins(app: Flask, fhir: Fhir, keys: Keys) -> None:
    fhir.create(scored_questionnaire())
    stored = fhir.create(scored_response(("never",) * 3))
    token = keys.token()
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def amend(answer: str) -> None:
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        body = {**scored_response((answer,) * 3), "id": stored["id"], "status": "amended"}
        barrier.wait()
        statuses.append(
            Fhir(client).put(f"QuestionnaireResponse/{stored['id']}", body, {"If-Match": 'W/"1"'}).status_code
        )

    threads = [threading.Thread(target=amend, args=(answer,)) for answer in ("often", "always")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 412]
    current = fhir.get(f"QuestionnaireResponse/{stored['id']}").get_json()
    assert current["meta"]["versionId"] == "2"
