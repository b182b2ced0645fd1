"""The clinician app over HTTP: launch, access to the launched patient only, and completing a measure in the page."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from service.api import smart_app
from service.api.app_sessions import COOKIE
from service.api.smart_launch import SmartClient, SmartEndpoints
from service.app import create_app
from service.config import Settings
from service.store.models import AppSession
from tests.conftest import Fhir, Keys, jwt_settings
from tests.unit.app_ui.builders import answered, choice_ids, questionnaire
from tests.unit.app_ui.conftest import phq9_weights

EHR = "https://ehr.example.org/fhir"
MRN = "urn:oid:2.16.840.1.113883.19.5"
CSRF = "csrf-token-for-tests"


@pytest.fixture
def settings(database_url: str, keys: Keys, tmp_path: Path) -> Settings:
    return jwt_settings(database_url, keys).with_(
        smart_client_id="proms-app",
        app_secret_key="k" * 40,
        smart_iss=(EHR,),
        schedule=(("phq-9", 28), ("k10", 84)),
    )


@pytest.fixture
def library(fhir: Fhir) -> dict[str, dict[str, Any]]:
    """Some of the built-in instruments, stored under their own ids as `proms questionnaires load` does."""
    loaded = {}
    for slug in ("phq-9", "qpr-15", "k10"):
        loaded[slug] = questionnaire(slug)
        assert fhir.put(f"Questionnaire/{slug}", loaded[slug]).status_code == 201
    return loaded


Launch = Callable[..., FlaskClient]


@pytest.fixture
def launched(app: Flask) -> Launch:
    """A browser-like client already launched for a patient (the session the callback would have made)."""

    def launch(subject: str = "p1", *, name: str = "Jane Doe", expires_in: float = 600) -> FlaskClient:
        client = app.test_client()
        cookie = app.session_interface.issue(  # type: ignore[attr-defined]
            {
                "launch": {
                    "iss": EHR,
                    "subject": subject,
                    "name": name,
                    "user": "Practitioner/dr-who",
                    "scopes": ["launch", "patient/*.rs"],
                    "expires_at": time.time() + expires_in,
                },
                "token": {"access_token": "secret-ehr-token"},
                "csrf": CSRF,
            }
        )
        client.set_cookie(COOKIE, cookie, path="/app")
        return client

    return launch


def stored_sessions(app: Flask) -> list[AppSession]:
    with app.web.services.db.read_session() as session:
        return list(session.scalars(select(AppSession)))


def seed_phq9(fhir: Fhir, phq9: dict[str, Any], subject: str, totals: list[tuple[str, int, int]]) -> list[str]:
    ids = []
    for index, (authored, total, item9) in enumerate(totals):
        response = answered(
            phq9, phq9_weights(total, item9), authored=authored, response_id=f"{subject}-{index}", subject=subject
        )
        del response["id"]
        ids.append(fhir.create(response)["id"])
    return ids


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def plain(html: str) -> str:
    """The page's text as a reader gets it: no tags, single spaces."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


# access -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/app/patient", "/app/questionnaires/phq-9", "/app/responses/x"])
def test_without_a_launch_every_page_goes_to_the_launch_page(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/app/launch"
    assert app.test_client().post(path).headers.get("Location") in ("/app/launch", None)


def test_an_expired_launch_goes_back_to_the_launch_page(launched: Launch) -> None:
    response = launched(expires_in=-1).get("/app/patient")
    assert (response.status_code, response.headers["Location"]) == (302, "/app/launch")


def test_the_launch_page_says_to_open_the_app_from_the_ehr(app: Flask) -> None:
    response = app.test_client().get("/app/launch")
    assert response.status_code == 200
    assert "Open this app from a patient" in text(response)
    assert "/app/launch?iss=https" in text(response)


def test_an_ehr_that_is_not_trusted_cannot_launch_the_app(app: Flask) -> None:
    response = app.test_client().get("/app/launch?iss=https://evil.example/fhir&launch=x")
    assert response.status_code == 400
    assert "not one this service is set up to trust" in text(response)
    assert COOKIE not in response.headers.get("Set-Cookie", "")


def test_without_its_settings_the_app_says_what_to_set(database_url: str, keys: Keys) -> None:
    app = create_app(jwt_settings(database_url, keys))
    response = app.test_client().get("/app/patient")
    assert response.status_code == 503
    assert "PROMS_SMART_CLIENT_ID" in text(response)
    app.web.services.db.dispose()


def test_a_callback_the_app_did_not_start_is_refused(app: Flask) -> None:
    response = app.test_client().get("/app/callback?code=abc&state=forged")
    assert response.status_code == 400
    assert "does not match one the app started" in text(response)


def test_pages_carry_a_strict_csp_and_are_not_cached(launched: Launch, library: Any) -> None:
    response = launched().get("/app/patient")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script>" not in text(response) and " style=" not in text(response)


# launch (the EHR's side faked here; tests/e2e drives a real authorization server) ------------------------


def _endpoints() -> SmartEndpoints:
    return SmartEndpoints(
        "https://ehr.example.org/authorize", "https://ehr.example.org/token", "https://ehr.example.org", None
    )


def test_an_ehr_launch_redirects_to_the_authorization_server_with_pkce(
    app: Flask, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setattr(smart_app, "discover", lambda iss: _endpoints())
    response = app.test_client().get(f"/app/launch?iss={EHR}&launch=launch-123")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://ehr.example.org/authorize"
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["response_type"] == "code" and query["client_id"] == "proms-app"
    assert query["redirect_uri"] == "http://proms.test/app/callback"
    assert query["scope"] == "launch openid fhirUser patient/*.rs"
    assert (query["aud"], query["launch"], query["code_challenge_method"]) == (EHR, "launch-123", "S256")
    assert len(query["code_challenge"]) == 43 and query["state"]
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/app" in cookie and "Secure" not in cookie
    assert "Expires" not in cookie  # gone when the browser closes; the server ends it sooner
    # The verifier stays on the server, in the database: the cookie is only a random session id, and the
    # database keys the session by a keyed hash of that id, never the id itself.
    (stored,) = stored_sessions(app)
    pending = json.loads(stored.data)["pending"]
    assert pending["state"] == query["state"] and len(pending["code_verifier"]) == 64
    assert pending["code_verifier"] not in cookie
    session_id = cookie.split(";", 1)[0].split("=", 1)[1]
    assert len(session_id) >= 43 and session_id not in stored.id


def test_a_standalone_launch_asks_for_a_patient_to_be_chosen(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smart_app, "discover", lambda iss: _endpoints())
    location = app.test_client().get(f"/app/launch?iss={EHR}").headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["scope"] == ["launch/patient openid fhirUser patient/*.rs"] and "launch" not in query


def test_behind_tls_the_session_cookie_is_secure(
    database_url: str, keys: Keys, tmp_path: Path, monkeypatch: Any
) -> None:
    settings = jwt_settings(database_url, keys).with_(
        base_url="https://proms.example.org/fhir", smart_client_id="proms-app", app_secret_key="k" * 40,
        smart_iss=(EHR,),
    )  # fmt: skip
    app = create_app(settings)
    monkeypatch.setattr(smart_app, "discover", lambda iss: _endpoints())
    response = app.test_client().get(f"/app/launch?iss={EHR}")
    assert "Secure" in response.headers["Set-Cookie"]
    assert "redirect_uri=https%3A%2F%2Fproms.example.org%2Fapp%2Fcallback" in response.headers["Location"]
    app.web.services.db.dispose()


def test_the_callback_maps_the_patient_by_identifier_and_starts_a_new_session(
    app: Flask, monkeypatch: pytest.MonkeyPatch, settings: Settings, fhir: Fhir, library: Any
) -> None:
    mapped = settings.with_(smart_patient_identifier_system=MRN)
    app.web = dataclasses.replace(app.web, services=dataclasses.replace(app.web.services, settings=mapped))
    monkeypatch.setattr(smart_app, "discover", lambda iss: _endpoints())
    exchanged: list[tuple[str, str]] = []

    def exchange(self: SmartClient, endpoint: str, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        exchanged.append((code, verifier))
        return {
            "access_token": "ehr-access-token",
            "patient": "ehr-42",
            "scope": "launch patient/*.rs",
            "expires_in": 300,
        }

    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": "mrn-7"}],
        "name": [{"text": "Ann Other"}],
    }
    monkeypatch.setattr(SmartClient, "exchange", exchange)
    monkeypatch.setattr(SmartClient, "read_patient", lambda self, iss, pid, token: patient)
    monkeypatch.setattr(SmartClient, "user_of", lambda self, token, endpoints: "Practitioner/dr-1")
    seed_phq9(fhir, library["phq-9"], "mrn-7", [("2026-01-10T10:00:00Z", 7, 0)])
    client = app.test_client()
    started = client.get(f"/app/launch?iss={EHR}&launch=L")
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    before = client.get_cookie(COOKIE, path="/app")
    assert before is not None
    response = client.get(f"/app/callback?code=the-code&state={state}")
    assert (response.status_code, response.headers["Location"]) == (302, "/app/patient")
    after = client.get_cookie(COOKIE, path="/app")
    assert after is not None and after.value != before.value  # a fresh session id after sign-in
    assert exchanged[0][0] == "the-code" and len(exchanged[0][1]) == 64
    page = text(client.get("/app/patient"))
    assert "Ann Other" in page and "ID mrn-7" in page and "Mild" in page
    assert "ehr-access-token" not in page and "ehr-access-token" not in after.value
    # The old session id no longer opens anything.
    stale = app.test_client()
    stale.set_cookie(COOKIE, before.value, path="/app")
    assert stale.get("/app/patient").status_code == 302


# the dashboard ------------------------------------------------------------------------------------------


def test_the_dashboard_shows_the_launched_patients_measures_and_nobody_elses(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    phq9 = library["phq-9"]
    seed_phq9(fhir, phq9, "p1", [("2026-01-05T10:00:00Z", 18, 0), ("2026-02-05T10:00:00Z", 11, 1)])
    seed_phq9(fhir, phq9, "p2", [("2026-02-06T10:00:00Z", 22, 0)])
    qpr = library["qpr-15"]
    weights = dict.fromkeys(choice_ids(qpr), 2.0) | {"qpr-5": 4.0, "qpr-7": 0.0}
    fhir.create(
        {k: v for k, v in answered(qpr, weights, authored="2026-02-07T10:00:00Z", response_id="x").items() if k != "id"}
    )
    page = text(launched("p1").get("/app/patient"))
    # What needs attention comes first, in a fixed order: the safety item (with the answer), then what is due.
    attention = page[page.index('<section class="attention"') : page.index("</section>")]
    assert page.index('<section class="attention"') < page.index('id="measure-phq-9"')
    kinds = re.findall(r'data-kind="([a-z]+)"', attention)
    assert kinds == ["safety", "due", "due", "due"]  # PHQ-9 and QPR-15 overdue (most first), K10 never done
    said = plain(attention)
    assert (
        "Safety item, not reviewed: PHQ-9 item 9 (“Thoughts that you would be better off dead or of hurting yourself "
        "in some way”) answered “Several days” on 5 Feb 2026."
    ) in said
    assert "Overdue: Patient Health Questionnaire-9 (PHQ-9), was due 5 Mar 2026" in said  # every 28 days
    assert "Due: Kessler Psychological Distress Scale (K10), Australian version, scheduled, not completed yet" in said
    # Then the reliable improvement, after the attention summary and before the measures.
    improved = page.index('<section class="improvements"')
    assert page.index('<section class="attention"') < improved < page.index('id="measure-phq-9"')
    said_later = plain(page).replace(" :", ":")  # plain() leaves a space where the link's closing tag was
    assert (
        "Reliably better: PHQ-9 total score: 11 (Moderate) on 5 Feb 2026, down 7 points since 5 Jan 2026." in said_later
    )
    assert "No safety items are waiting" not in page
    assert 'data-change="improved"' in page and "Down 7 points since 5 Jan 2026: a reliable improvement" in page
    assert "Moderately severe" in page and ">11<" in page
    assert 'data-link-id="qpr-5"' in page and "Possible priorities" in page
    strengths = page[page.index("<h4>Strengths</h4>") : page.index("<h4>Possible priorities</h4>")]
    assert "I am able to assert myself" in strengths
    assert "Kessler Psychological Distress Scale (K10), Australian version — Due now: not completed yet" in plain(page)
    # The PHQ-9 answers: full wording, the safety item marked in words, the distance from the best answer.
    row = page[page.index('data-link-id="/44260-8"') :]
    row = row[: row.index("</tr>")]
    assert "9.</span> Thoughts that you would be better off dead or of hurting yourself in some way" in row
    assert "Safety item</strong>" in row and "1 of 3" in plain(row)
    assert 'data-value="22"' not in page and "6 Feb 2026" not in page  # p2's result
    other = text(launched("p2").get("/app/patient"))
    assert 'data-value="22"' in other and "Safety item, not reviewed" not in other and "qpr-5" not in other
    assert "No safety items are waiting for review." in other


def test_another_patients_response_is_not_shown(launched: Launch, fhir: Fhir, library: Any) -> None:
    (theirs,) = seed_phq9(fhir, library["phq-9"], "p2", [("2026-02-06T10:00:00Z", 22, 0)])
    response = launched("p1").get(f"/app/responses/{theirs}")
    assert response.status_code == 404
    assert "22" not in text(response).replace("404", "")
    audit = fhir.get("AuditEvent?patient=p1&type=read&outcome=4&agent=proms-app").get_json()
    assert audit["total"] == 1  # the refusal is on record


def test_reading_the_dashboard_is_audited_with_the_app_and_the_user(launched: Launch, fhir: Fhir, library: Any) -> None:
    seed_phq9(fhir, library["phq-9"], "p1", [("2026-01-05T10:00:00Z", 3, 0)])
    assert launched("p1").get("/app/patient").status_code == 200
    events = fhir.get("AuditEvent?patient=p1&type=search-type&agent=proms-app").get_json()
    searched = {
        e["resource"]["entity"][0]["what"]["reference"].split("/")[0]
        for e in events["entry"]
        if "what" in e["resource"]["entity"][0]
    }
    assert events["total"] >= 3 and searched == {"Patient"}
    assert all(e["resource"]["agent"][0]["altId"] == "Practitioner/dr-who" for e in events["entry"])


# completing a measure in the page ------------------------------------------------------------------------


def _phq9_form(html: str, weights: dict[str, float], phq9: dict[str, Any]) -> dict[str, str]:
    """The form a person fills in: for each item the option of that weight (its position in the item's options)."""
    fields = form_fields(html)
    for index, item in enumerate(phq9["item"]):
        if item["linkId"] in weights:
            position = [o["extension"][0]["valueDecimal"] for o in item["answerOption"]].index(weights[item["linkId"]])
            fields[f"i-{index}"] = str(position)
    return fields


def test_a_completed_form_is_stored_scored_and_shown_at_once(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    phq9 = library["phq-9"]
    seed_phq9(fhir, phq9, "p1", [("2026-01-05T10:00:00Z", 18, 0)])
    client = launched("p1")
    page = client.get("/app/questionnaires/phq-9")
    assert page.status_code == 200
    html = text(page)
    assert "<legend>1. Little interest or pleasure in doing things" in html
    assert 'name="i-11"' not in html  # the total is calculated, never asked
    fields = _phq9_form(html, phq9_weights(9, item9=1), phq9)
    with caplog.at_level(logging.DEBUG):
        submitted = client.post("/app/questionnaires/phq-9", data=fields)
    assert submitted.status_code == 303
    result_path = submitted.headers["Location"]
    response_id = result_path.rsplit("/", 1)[-1]
    result = text(client.get(result_path))
    assert ">9<" in result and "Mild" in result
    assert "Down 9 points since 5 Jan 2026: a reliable improvement" in result
    assert "Safety item:" in result and "better off dead" in result
    assert 'answered <strong class="flag-answer">“Several days”</strong>' in result
    stored = fhir.get(f"QuestionnaireResponse/{response_id}").get_json()
    assert stored["subject"] == {"reference": "Patient/p1"} and stored["status"] == "completed"
    assert stored["author"] == {"reference": "Practitioner/dr-who"}
    phq9_version = questionnaire("phq-9")["version"]
    assert stored["questionnaire"] == f"https://recovery-proms.org/fhir/Questionnaire/phq-9|{phq9_version}"
    assert stored["identifier"]["value"] == fields["submission_id"]
    total = next(item for item in stored["item"] if item["linkId"] == "/44261-6")
    assert total["answer"] == [{"valueInteger": 9}]  # scored by the server
    observations = fhir.get(f"Observation?derived-from=QuestionnaireResponse/{response_id}").get_json()
    assert observations["total"] == 2  # the panel and the total
    created = fhir.get(f"AuditEvent?entity=QuestionnaireResponse/{response_id}&type=create").get_json()
    assert created["total"] == 1
    assert created["entry"][0]["resource"]["agent"][0]["who"]["identifier"]["value"] == "proms-app"
    logged = caplog.text
    assert CSRF not in logged and "LA6569-3" not in logged and "secret-ehr-token" not in logged
    # Submitting the same form again (a double click) stores nothing new.
    again = client.post("/app/questionnaires/phq-9", data=fields)
    assert again.headers["Location"] == result_path


def test_validation_errors_are_shown_next_to_their_questions_and_nothing_is_stored(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    client = launched("p1")
    html = text(client.get("/app/questionnaires/qpr-15"))
    fields = form_fields(html)
    fields["i-2"] = "3"  # only the first question answered; all fifteen are required
    response = client.post("/app/questionnaires/qpr-15", data=fields)
    assert response.status_code == 422
    page = text(response)
    assert "There is a problem: the answers were not stored" in page
    assert '<a href="#f-3-0">2. I feel able to take chances in life: This question needs an answer</a>' in page
    assert 'id="f-3-error"' in page and 'aria-describedby="f-3-error" aria-invalid="true"' in page
    assert 'id="f-2-error"' not in page
    assert 'value="3" checked' in page  # the answer given is kept
    assert fhir.get("QuestionnaireResponse?patient=p1&_summary=count").get_json()["total"] == 0


def test_an_answer_that_cannot_be_read_is_reported_without_submitting(
    launched: Launch, fhir: Fhir, library: Any
) -> None:
    client = launched("p1")
    fields = form_fields(text(client.get("/app/questionnaires/phq-9")))
    fields["i-1"] = "9"  # not one of the options
    response = client.post("/app/questionnaires/phq-9", data=fields)
    assert response.status_code == 422 and "Choose one of the options shown" in text(response)
    assert fhir.get("QuestionnaireResponse?_summary=count").get_json()["total"] == 0


def test_a_form_post_without_the_sessions_csrf_token_is_refused(launched: Launch, fhir: Fhir, library: Any) -> None:
    client = launched("p1")
    fields = form_fields(text(client.get("/app/questionnaires/phq-9")))
    fields["csrf_token"] = "forged"
    response = client.post("/app/questionnaires/phq-9", data=fields)
    assert response.status_code == 400 and "did not come from this app" in text(response)
    assert client.post("/app/sign-out", data={"csrf_token": "forged"}).status_code == 400


def test_only_active_questionnaires_can_be_started(launched: Launch, fhir: Fhir, library: Any) -> None:
    draft = {**questionnaire("k6"), "status": "draft"}
    assert fhir.put("Questionnaire/k6", draft).status_code == 201
    client = launched("p1")
    assert client.get("/app/questionnaires/k6").status_code == 404
    assert client.get("/app/questionnaires/no-such-thing").status_code == 404


def test_signing_out_ends_the_session(launched: Launch, library: Any) -> None:
    client = launched("p1")
    response = client.post("/app/sign-out", data={"csrf_token": CSRF})
    assert (response.status_code, response.headers["Location"]) == (302, "/app/launch")
    assert client.get("/app/patient").status_code == 302


# sessions live in the database: any node, expiry, an unavailable database ----------------------------------


def test_a_session_works_on_every_node_and_sign_out_ends_it_on_every_node(
    app: Flask, settings: Settings, launched: Launch, library: Any
) -> None:
    other_node = create_app(settings)  # another web node on the same database, sharing nothing else
    try:
        client = launched("p1", name="Jane Doe")
        cookie = client.get_cookie(COOKIE, path="/app")
        assert cookie is not None
        elsewhere = other_node.test_client()
        elsewhere.set_cookie(COOKIE, cookie.value, path="/app")
        page = elsewhere.get("/app/patient")
        assert page.status_code == 200 and "Jane Doe" in text(page)
        assert elsewhere.post("/app/sign-out", data={"csrf_token": CSRF}).status_code == 302
        assert client.get("/app/patient").status_code == 302  # signed out here too
        assert stored_sessions(app) == []
    finally:
        other_node.web.services.close()


def test_an_expired_session_is_never_served_and_the_worker_deletes_it(app: Flask, library: Any) -> None:
    from service.api.app_sessions import EXPIRES
    from service.work import WorkRounds

    launch = {"iss": EHR, "subject": "p1", "name": "Jane Doe", "scopes": [], "expires_at": time.time() + 600}
    interface: Any = app.session_interface
    live = app.test_client()
    live.set_cookie(COOKIE, interface.issue({"launch": launch, "csrf": CSRF}), path="/app")
    expired = app.test_client()
    expired.set_cookie(COOKIE, interface.issue({"launch": launch, EXPIRES: time.time() - 1}), path="/app")
    assert live.get("/app/patient").status_code == 200
    assert expired.get("/app/patient").status_code == 302  # the session's own expiry, whatever the launch says
    assert len(stored_sessions(app)) == 2
    WorkRounds(app.web.services).tidy_up()
    assert len(stored_sessions(app)) == 1
    assert live.get("/app/patient").status_code == 200


def test_while_the_database_is_unavailable_the_app_answers_503_and_keeps_the_session(
    app: Flask, launched: Launch, library: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.api import app_sessions
    from service.fhir.errors import DatabaseUnavailable

    client = launched("p1")

    def unavailable(*_: Any) -> bytes:
        raise DatabaseUnavailable()

    with monkeypatch.context() as patched:
        patched.setattr(app_sessions, "load_session", unavailable)
        response = client.get("/app/patient")
        assert response.status_code == 503 and "Set-Cookie" not in response.headers
        assert "database is unavailable" in text(response)
    assert client.get("/app/patient").status_code == 200  # back: the same session, still signed in
