"""The development launcher: the real SMART App Launch flow against the built-in development EHR, and only with
authentication off on loopback.

HTTP the app makes to the development EHR (discovery, the token exchange, the Patient read, the JWKS) is routed
to the same Flask app in-process; tests/e2e/test_smart_app_browser.py drives the same flow over real sockets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Flask
from flask.testing import FlaskClient
from requests.structures import CaseInsensitiveDict

from service import dev_launch
from service.app import create_app
from service.config import Settings, SettingsError
from service.demo import IDENTIFIER_SYSTEM
from tests.conftest import Keys, jwt_settings
from tests.unit.app_ui.builders import answered, questionnaire
from tests.unit.app_ui.conftest import phq9_weights

ROOT = "http://127.0.0.1:8080"
ISS = f"{ROOT}/dev-ehr/fhir"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """As `make demo` runs the service: no authentication, on loopback."""
    return Settings(
        database_url=database_url,
        base_url=f"{ROOT}/fhir",
        log_level="WARNING",
        auth_mode="none",
        dev_ehr_dir=tmp_path / "dev-ehr",
    )


@pytest.fixture
def people(app: Flask) -> None:
    """demo-02 (a demo response, as `proms demo load` stores them) with a PHQ-9 of 22."""
    client = app.test_client()
    phq9 = questionnaire("phq-9")
    assert client.put("/fhir/Questionnaire/phq-9", json=phq9).status_code == 201
    response = answered(phq9, phq9_weights(22), authored="2026-03-01T10:00:00Z", response_id="x", subject="demo-02")
    del response["id"]
    response["subject"]["display"] = "Ravi Hughes"
    response["identifier"] = {"system": IDENTIFIER_SYSTEM, "value": "demo-02-phq-9-01"}
    created = client.post(
        "/fhir/QuestionnaireResponse", json=response, headers={"Content-Type": "application/fhir+json"}
    )
    assert created.status_code == 201, created.get_data(as_text=True)


@pytest.fixture
def loopback(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Requests the app sends to its own address land on the app itself; every other address is unreachable."""
    sent: list[str] = []
    client = app.test_client()

    def send(adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        sent.append(f"{request.method} {url}")
        if not url.startswith(ROOT):
            raise requests.ConnectionError(f"unreachable in tests: {url}")
        parts = urlsplit(url)
        answer = client.open(
            parts.path, query_string=parts.query, method=request.method, data=request.body,
            headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
        )  # fmt: skip
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response._content = answer.get_data()
        response.url, response.request, response.encoding = url, request, "utf-8"
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", lambda self: client.get(urlsplit(self.uri).path).get_json())
    yield sent


def local(location: str) -> str:
    """A redirect to this service, as a path the test client can follow."""
    assert location.startswith(ROOT) or location.startswith("/"), location
    return location.removeprefix(ROOT)


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@pytest.mark.usefixtures("people")
def test_a_demo_person_opens_the_app_through_the_smart_launch(app: Flask, loopback: list[str]) -> None:
    browser = app.test_client()
    picker = browser.get("/dev-ehr/")
    assert picker.status_code == 200 and picker.headers["Cache-Control"] == "no-store"
    page = picker.get_data(as_text=True)
    assert "Ravi Hughes" in page and 'href="/dev-ehr/launch?patient=demo-02"' in page

    # The picker starts an EHR launch: the app's launch URL with iss and a single-use launch id.
    started = browser.get("/dev-ehr/launch?patient=demo-02")
    assert started.status_code == 302
    launch = query_of(started.headers["Location"])
    assert started.headers["Location"].startswith(f"{ROOT}/app/launch?") and launch["iss"] == ISS

    # The app discovers the EHR and sends the browser to its authorization endpoint, with PKCE (S256).
    to_authorize = browser.get(local(started.headers["Location"]))
    assert to_authorize.status_code == 302, to_authorize.get_data(as_text=True)
    request = query_of(to_authorize.headers["Location"])
    assert to_authorize.headers["Location"].startswith(f"{ROOT}/dev-ehr/authorize?")
    assert request["code_challenge_method"] == "S256" and request["aud"] == ISS and request["launch"]
    assert request["client_id"] == dev_launch.CLIENT_ID
    assert f"GET {ISS}/.well-known/smart-configuration" in loopback

    # The development EHR grants access for the made-up clinician and returns a code to the app's callback.
    to_callback = browser.get(local(to_authorize.headers["Location"]))
    assert to_callback.status_code == 302
    assert to_callback.headers["Location"].startswith(f"{ROOT}/app/callback?")
    assert query_of(to_callback.headers["Location"])["state"] == request["state"]

    # The callback exchanges the code (with the verifier), verifies the id_token, reads the EHR's Patient.
    done = browser.get(local(to_callback.headers["Location"]))
    assert (done.status_code, done.headers["Location"]) == (302, "/app/patient"), done.get_data(as_text=True)
    assert f"POST {ROOT}/dev-ehr/token" in loopback and f"GET {ISS}/Patient/demo-02" in loopback
    dashboard = browser.get("/app/patient").get_data(as_text=True)
    assert "Ravi Hughes" in dashboard and "ID demo-02" in dashboard
    assert "Most severe band:" in dashboard and "PHQ-9 total score</a>: <strong>22</strong>" in dashboard

    # The launch id was single-use.
    again = browser.get(local(to_authorize.headers["Location"]))
    assert again.status_code == 400 and "choose the person again" in again.get_data(as_text=True)


def _authorize(client: FlaskClient, app: Flask, verifier: str, **changes: str) -> dict[str, str]:
    """An authorization request as the app makes it, answered: the query the EHR redirects back with."""
    started = client.get("/dev-ehr/launch?patient=demo-02")
    launch = query_of(started.headers["Location"])["launch"]
    query = {
        "response_type": "code", "client_id": dev_launch.CLIENT_ID, "redirect_uri": f"{ROOT}/app/callback",
        "scope": "launch openid fhirUser patient/*.rs", "state": "s", "aud": ISS, "launch": launch,
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256", **changes,
    }  # fmt: skip
    response = client.get(f"/dev-ehr/authorize?{urlencode(query)}")
    if response.status_code == 400:
        return {"error": "refused", "page": response.get_data(as_text=True)}
    assert response.status_code == 302, response.get_data(as_text=True)
    return query_of(response.headers["Location"])


def _token(client: FlaskClient, code: str, verifier: str | None) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": f"{ROOT}/app/callback",
            "client_id": dev_launch.CLIENT_ID, **({"code_verifier": verifier} if verifier else {})}  # fmt: skip
    return client.post("/dev-ehr/token", data=form)


def test_the_token_endpoint_holds_to_pkce_and_single_use_codes(app: Flask) -> None:
    client = app.test_client()
    verifier = "v" * 64
    assert _token(client, _authorize(client, app, verifier)["code"], None).get_json()["error"] == "invalid_request"
    wrong = _token(client, _authorize(client, app, verifier)["code"], "w" * 64)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    code = _authorize(client, app, verifier)["code"]
    token = _token(client, code, verifier)
    assert token.status_code == 200, token.get_data(as_text=True)
    body = token.get_json()
    assert body["patient"] == "demo-02" and body["token_type"].lower() == "bearer" and body["id_token"]
    assert _token(client, code, verifier).get_json()["error"] == "invalid_grant"  # used once only
    assert (
        "Unsupported &#39;code_challenge_method&#39;"
        in _authorize(client, app, verifier, code_challenge_method="plain")["page"]
    )
    assert "choose the person again" in _authorize(client, app, verifier, launch="made-up-launch-id")["page"]
    assert "aud must be this EHR" in _authorize(client, app, verifier, aud="https://elsewhere.example/fhir")["page"]

    # The EHR's Patient read: only with a token, and only for that token's patient.
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    patient = client.get("/dev-ehr/fhir/Patient/demo-02", headers=bearer)
    assert patient.status_code == 200 and patient.get_json() == {"resourceType": "Patient", "id": "demo-02"}
    assert client.get("/dev-ehr/fhir/Patient/demo-03", headers=bearer).status_code == 403
    assert client.get("/dev-ehr/fhir/Patient/demo-02").status_code == 401
    configuration = client.get("/dev-ehr/fhir/.well-known/smart-configuration").get_json()
    assert configuration["code_challenge_methods_supported"] == ["S256"]
    assert configuration["authorization_endpoint"] == f"{ROOT}/dev-ehr/authorize"


def test_a_patient_id_that_is_not_a_fhir_id_is_refused(app: Flask) -> None:
    response = app.test_client().get("/dev-ehr/launch?" + urlencode({"patient": "../etc/passwd"}))
    assert response.status_code == 400 and "for example demo-02" in response.get_data(as_text=True)


def test_the_launch_page_and_error_pages_lead_to_the_launcher(app: Flask) -> None:
    page = app.test_client().get("/app/launch").get_data(as_text=True)
    assert 'href="http://127.0.0.1:8080/dev-ehr/"' in page
    assert f"Sign in to {ISS}" not in page  # the launcher is an EHR launch; no standalone sign-in to it
    expired = app.test_client().get("/app/callback?code=x&state=y")
    assert expired.status_code == 400 and 'href="/app/launch"' in expired.get_data(as_text=True)


def test_only_loopback_callers_reach_it(app: Flask) -> None:
    remote = app.test_client()
    remote.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert remote.get("/dev-ehr/").status_code == 404


# refusals: never with authentication on, never off loopback --------------------------------------------------


def test_with_authentication_on_there_is_no_launcher(database_url: str, keys: Keys, tmp_path: Path) -> None:
    settings = jwt_settings(database_url, keys).with_(
        host="127.0.0.1", base_url=f"{ROOT}/fhir", dev_ehr_dir=tmp_path / "dev-ehr"
    )
    assert dev_launch.launcher_url(settings) is None
    app = create_app(settings)
    try:
        client = app.test_client()
        for path in ("/dev-ehr/", "/dev-ehr/launch?patient=demo-02", "/dev-ehr/fhir/.well-known/smart-configuration"):
            assert client.get(path).status_code == 404, path
        assert client.post("/dev-ehr/token", data={"grant_type": "authorization_code"}).status_code == 404
        not_set_up = client.get("/app/launch")
        assert not_set_up.status_code == 503  # the app needs a real EHR then
        assert "dev-ehr" not in not_set_up.get_data(as_text=True)
        assert 'href="/app/launch"' not in not_set_up.get_data(as_text=True)  # no link to itself
        assert not (tmp_path / "dev-ehr").exists()  # not even its keys
    finally:
        app.web.services.close()


def test_off_loopback_there_is_no_launcher(database_url: str, tmp_path: Path) -> None:
    exposed = Settings(database_url=database_url, auth_mode="none", host="0.0.0.0", base_url="http://0.0.0.0:8080/fhir")
    assert not dev_launch.available(exposed) and dev_launch.launcher_url(exposed) is None
    with pytest.raises(SettingsError, match="loopback"):
        create_app(exposed)  # and without authentication the service itself refuses to start
    # Listening on loopback behind a proxy that publishes it elsewhere: still no launcher.
    proxied = Settings(
        database_url=database_url, auth_mode="none", host="127.0.0.1",
        base_url="https://proms.example.org/fhir", dev_ehr_dir=tmp_path / "dev-ehr", log_level="WARNING",
    )  # fmt: skip
    assert not dev_launch.available(proxied)
    app = create_app(proxied)
    try:
        assert app.test_client().get("/dev-ehr/").status_code == 404
        assert app.test_client().get("/app/launch").status_code == 503
    finally:
        app.web.services.close()


def test_the_banner_names_the_launcher_only_where_it_exists() -> None:
    assert dev_launch.launcher_url(Settings(auth_mode="none")) == "http://127.0.0.1:8080/dev-ehr/"
    assert dev_launch.launcher_url(
        Settings(auth_mode="none", host="localhost", base_url="http://localhost:9/fhir")
    ) == ("http://localhost:9/dev-ehr/")
    assert dev_launch.launcher_url(Settings(auth_mode="jwt")) is None
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/dev-ehr/fhir", dev_launch.fhir_base(Settings()))
