"""Hardening: request limits, security headers, CORS, safe configuration, SMART discovery, fuzzed input."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.config import Settings, SettingsError
from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import Fhir, Keys, jwt_settings


def _nested(depth: int) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": "leaf", "answer": [{"valueInteger": 1}]}
    for level in range(depth):
        item = {"linkId": f"g{level}", "item": [item]}
    return item


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(item=[_nested(40)]), "nested more than"),
        (lambda r: r.update(item=[{"linkId": str(i)} for i in range(60_000)]), "more than"),
        (lambda r: r.update(text={"status": "generated", "div": "x" * 200_000}), "longer than"),
    ],
)
def test_oversized_structures_are_refused_before_any_work(fhir: Fhir, change: Any, message: str) -> None:
    fhir.create(scored_questionnaire())
    body = scored_response(("never",) * 3)
    change(body)
    result = fhir.client.post(
        "/fhir/QuestionnaireResponse", data=orjson.dumps(body), content_type="application/fhir+json"
    )
    if result.status_code == 413:
        return  # over the body-size limit first: refused all the same
    assert result.status_code == 400
    assert message in result.get_json()["issue"][0]["details"]["text"]
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 0


def test_security_headers(client: FlaskClient) -> None:
    result = client.get("/fhir/QuestionnaireResponse")
    assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert result.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in result.headers
    assert "Strict-Transport-Security" not in result.headers  # plain HTTP in this test


def test_cors_only_for_configured_origins(database_url: str, keys: Keys) -> None:
    app = create_app(jwt_settings(database_url, keys).with_(cors_origins=("https://ehr.example",)))
    client = app.test_client()
    allowed = client.options("/fhir/QuestionnaireResponse", headers={"Origin": "https://ehr.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ehr.example"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    other = client.options("/fhir/QuestionnaireResponse", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    app.web.services.db.dispose()


def test_hsts_behind_tls(database_url: str, keys: Keys) -> None:
    app = create_app(jwt_settings(database_url, keys).with_(base_url="https://proms.example/fhir"))
    result = app.test_client().get("/fhir/metadata")
    assert result.headers["Strict-Transport-Security"].startswith("max-age=")
    app.web.services.db.dispose()


def test_no_authentication_is_refused_off_loopback(tmp_path: Path) -> None:
    unsafe = Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", auth_mode="none", host="0.0.0.0")
    with pytest.raises(SettingsError, match="loopback"):
        create_app(unsafe)
    with pytest.raises(SettingsError, match="PROMS_AUTH_ISSUER"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}"))


def test_development_mode_is_loud(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", auth_mode="none"))
    assert "AUTHENTICATION IS OFF" in caplog.text
    assert "proms_auth_disabled 1.0" in app.test_client().get("/metrics").get_data(as_text=True)


def test_smart_configuration_and_capability_security(database_url: str, keys: Keys) -> None:
    configured = jwt_settings(database_url, keys).with_(
        auth_authorize_url="https://auth.proms.test/authorize", auth_token_url="https://auth.proms.test/token"
    )
    app = create_app(configured)
    client = app.test_client()
    discovery = client.get("/fhir/.well-known/smart-configuration").get_json()
    assert discovery["issuer"] == "https://auth.proms.test"
    assert discovery["token_endpoint"] == "https://auth.proms.test/token"
    assert "permission-v2" in discovery["capabilities"]
    security = client.get("/fhir/metadata").get_json()["rest"][0]["security"]
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris == {"authorize": "https://auth.proms.test/authorize", "token": "https://auth.proms.test/token"}
    app.web.services.db.dispose()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
QR_SHAPED = st.fixed_dictionaries(
    {"resourceType": st.just("QuestionnaireResponse")},
    optional={
        "status": st.sampled_from(["completed", "amended", "in-progress", "bogus"]) | JSON_VALUES,
        "questionnaire": st.just("http://proms.test/Questionnaire/distress3|1.0.0") | JSON_VALUES,
        "subject": st.just({"reference": "Patient/p1"}) | JSON_VALUES,
        "authored": st.sampled_from(["2024-01-01", "2024-13-01", "x"]) | JSON_VALUES,
        "item": st.lists(
            st.fixed_dictionaries(
                {"linkId": st.sampled_from(["a", "b", "c", "total", "zz"]) | JSON_VALUES},
                optional={"answer": st.lists(st.dictionaries(st.sampled_from(
                    ["valueCoding", "valueInteger", "valueString", "item"]), JSON_VALUES, max_size=2), max_size=2)},
            ),
            max_size=5,
        ) | JSON_VALUES,
    },
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=QR_SHAPED)
def test_fuzzed_responses_never_cause_a_server_error_or_a_half_write(fhir_sqlite: Fhir, body: dict[str, Any]) -> None:
    before = fhir_sqlite.get("QuestionnaireResponse?_summary=count").get_json()["total"]
    before_observations = fhir_sqlite.get("Observation?_summary=count").get_json()["total"]
    result = fhir_sqlite.post("QuestionnaireResponse", body)
    assert result.status_code < 500, result.get_data(as_text=True)
    after = fhir_sqlite.get("QuestionnaireResponse?_summary=count").get_json()["total"]
    assert after == before + (1 if result.status_code == 201 else 0)
    if result.status_code != 201:
        assert fhir_sqlite.get("Observation?_summary=count").get_json()["total"] == before_observations


QUERY_TEXT = st.text(alphabet=string.printable, max_size=30)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(["patient", "subject", "authored", "_count", "_sort", "status", "identifier",
                             "questionnaire", "_include", "_revinclude", "_page", "_elements", "code", "date",
                             "author", "_lastUpdated", "derived-from", "category", "patient:exact", "x"]),
            QUERY_TEXT,
        ),
        max_size=4,
    ),
    resource_type=st.sampled_from(["QuestionnaireResponse", "Observation", "Questionnaire"]),
)  # fmt: skip
def test_fuzzed_search_parameters_never_cause_a_server_error(
    fhir_sqlite: Fhir, params: list[tuple[str, str]], resource_type: str
) -> None:
    from urllib.parse import urlencode

    result = fhir_sqlite.get(f"{resource_type}?{urlencode(params)}")
    assert result.status_code in (200, 400, 403), result.get_data(as_text=True)
    assert result.get_json()["resourceType"] in ("Bundle", "OperationOutcome")


@pytest.fixture
def fhir_sqlite(sqlite_template: Path, tmp_path: Path, keys: Keys) -> Fhir:
    """One app for all the examples of a fuzz test (hypothesis reuses function-scoped fixtures)."""
    import shutil

    path = tmp_path / "fuzz.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = create_app(jwt_settings(f"sqlite:///{path}", keys))
    fhir = Fhir(app.test_client())
    fhir.client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {keys.token()}"
    fhir.create(scored_questionnaire())
    fhir.create(scored_response(("often", "never", "always")))
    return fhir
