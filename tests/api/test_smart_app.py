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
from werkzeug.datastructures import MultiDict
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

    def launch(
        subject: str = "p1", *, name: str = "Jane Doe", expires_in: float = 600, user: str = "Practitioner/dr-who"
    ) -> FlaskClient:
        client = app.test_client()
        cookie = app.session_interface.issue(  # type: ignore[attr-defined]
            {
                "launch": {
                    "iss": EHR,
                    "subject": subject,
                    "name": name,
                    "user": user,
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


def answer_row(html: str, link_id: str) -> str:
    """The text of an item's row in a table of answers."""
    start = html.index(">", html.index(f'data-link-id="{link_id}"')) + 1
    return plain(html[start:].split("</tr>", 1)[0])


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
    assert "<strong>Saved and scored.</strong>" in result and "not scored" not in result.lower()
    assert ">9<" in result and "Mild" in result and "Lower scores are better." in result
    assert "Down 9 points since 5 Jan 2026: a reliable improvement" in result
    # The answer that raised the safety flag, with the item's full wording, and the flag waiting for review.
    row = answer_row(result, "/44260-8")
    assert "9. Thoughts that you would be better off dead or of hurting yourself in some way" in row
    assert "Safety item" in row and row.endswith("Several days")
    assert "Not reviewed:" in result and "/app/flags/" in result
    assert "<strong>Saved and scored.</strong>" not in text(client.get(result_path))  # said once, after saving
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


# safe forms: nothing unanswered is stored without the clinician saying so ---------------------------------


def _count(fhir: Fhir, query: str) -> int:
    total: int = fhir.get(f"{query}&_summary=count").get_json()["total"]
    return total


def _confirm_fields(html: str) -> list[tuple[str, str]]:
    """The fields of the "save without these answers" form, as the browser would send them."""
    form = html[html.index("data-save-anyway") : html.index("</form>", html.index("data-save-anyway"))]
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    return [*fields, ("action", "save-anyway")]


def test_an_empty_form_is_not_stored_and_says_why(launched: Launch, fhir: Fhir, library: Any) -> None:
    client = launched("p1")
    fields = form_fields(text(client.get("/app/questionnaires/phq-9")))
    response = client.post("/app/questionnaires/phq-9", data=fields)
    assert response.status_code == 422
    page = plain(text(response))
    assert "There is a problem: the answers were not stored" in page
    assert "Nothing was answered, so nothing was stored" in page
    assert "save-anyway" not in text(response) and "scored" not in page.replace("not stored", "")
    # Not even when asked to save it anyway.
    forced = client.post("/app/questionnaires/phq-9", data={**fields, "action": "save-anyway"})
    assert forced.status_code == 422
    assert _count(fhir, "QuestionnaireResponse?patient=p1") == 0


def test_a_partial_phq9_is_stored_only_when_confirmed_and_then_says_it_was_not_scored(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    phq9 = library["phq-9"]
    client = launched("p1")
    html = text(client.get("/app/questionnaires/phq-9"))
    fields = _phq9_form(html, {link_id: 1.0 for link_id in [i["linkId"] for i in phq9["item"][1:6]]}, phq9)
    checking = client.post("/app/questionnaires/phq-9", data=fields)
    assert checking.status_code == 200
    page = text(checking)
    summary = page[page.index('id="check-summary"') : page.index('class="questionnaire"')]
    said = plain(summary)
    assert "Not saved yet: 4 questions that count towards the score are not answered" in said
    # Each missing question in full, linked to its field; the safety item's absence said in words.
    assert '<a href="#f-6-0">6. Feeling bad about yourself' in summary
    assert '<a href="#f-9-0">9. Thoughts that you would be better off dead' in summary
    assert "Safety item: unanswered, so no risk was reported either way" in said
    assert "Saved without them, this measure will not be scored:" in said
    assert "PHQ-9 total score needs at least 7 of its 9 items answered; 5 were answered." in said
    assert 'id="f-6-note"' in page and 'aria-describedby="f-6-note"' in page  # marked at the field too
    assert 'value="1" checked' in page  # the answers given are kept
    assert _count(fhir, "QuestionnaireResponse?patient=p1") == 0

    # Confirming only some of what is missing is not confirming: asked again, nothing stored.
    partly = [(k, v) for k, v in _confirm_fields(page) if not (k == "confirmed" and v == "i-9")]
    assert client.post("/app/questionnaires/phq-9", data=MultiDict(partly)).status_code == 200
    assert _count(fhir, "QuestionnaireResponse?patient=p1") == 0

    saved = client.post("/app/questionnaires/phq-9", data=MultiDict(_confirm_fields(page)))
    assert saved.status_code == 303
    response_id = saved.headers["Location"].rsplit("/", 1)[-1]
    view = text(client.get(saved.headers["Location"]))
    banner = plain(view[view.index('id="saved-banner">') + 18 : view.index("</div>", view.index('id="saved-banner"'))])
    assert banner.startswith(
        "Saved, not scored: PHQ-9 total score needs at least 7 of its 9 items answered; 5 were answered."
    )
    assert "Saved and scored" not in view and "stored and scored" not in view
    assert "Not scored. PHQ-9 total score needs at least 7" in plain(view)
    assert answer_row(view, "/44260-8").endswith("Safety item Not answered : no risk was reported either way")
    stored = fhir.get(f"QuestionnaireResponse/{response_id}").get_json()
    assert stored["status"] == "completed" and len(stored["item"]) == 5  # the total is not filled in
    assert _count(fhir, f"Observation?derived-from=QuestionnaireResponse/{response_id}") == 0
    # The same response sent again (a double click) is not stored twice, and is still not said to be scored.
    again = client.post("/app/questionnaires/phq-9", data=MultiDict(_confirm_fields(page)))
    assert again.headers["Location"] == saved.headers["Location"]
    assert "Saved, not scored" in text(client.get(again.headers["Location"]))
    assert _count(fhir, "QuestionnaireResponse?patient=p1") == 1


def test_an_unanswered_item_that_leaves_the_score_made_is_confirmed_and_then_scored(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    phq9 = library["phq-9"]
    client = launched("p1")
    html = text(client.get("/app/questionnaires/phq-9"))
    weights = {link_id: 1.0 for link_id in [i["linkId"] for i in phq9["item"][1:9]]}  # items 1-8, not 9
    checking = text(client.post("/app/questionnaires/phq-9", data=_phq9_form(html, weights, phq9)))
    said = plain(checking[checking.index('id="check-summary"') : checking.index('class="questionnaire"')])
    assert "Not saved yet: 1 question that counts towards the score is not answered" in said
    assert "Saved without it, the measure is still scored from the answers given." in said
    saved = client.post("/app/questionnaires/phq-9", data=MultiDict(_confirm_fields(checking)))
    view = plain(text(client.get(saved.headers["Location"])))
    assert "Saved and scored." in view
    assert "PHQ-9 total score (0–27) 9 — Mild" in view  # eight answers of 1, prorated to nine items


def test_a_form_missing_required_answers_cannot_be_saved_anyway(launched: Launch, fhir: Fhir, library: Any) -> None:
    client = launched("p1")
    fields = form_fields(text(client.get("/app/questionnaires/qpr-15")))
    fields["i-2"] = "3"
    refused = client.post("/app/questionnaires/qpr-15", data={**fields, "action": "save-anyway"})
    assert refused.status_code == 422 and "save-anyway" not in text(refused)
    assert "This question needs an answer" in text(refused)
    assert _count(fhir, "QuestionnaireResponse?patient=p1") == 0


# the response view ---------------------------------------------------------------------------------------


def test_a_response_is_shown_with_its_questions_answers_scores_and_flags(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    first, second = seed_phq9(
        fhir, library["phq-9"], "p1", [("2026-01-05T10:00:00Z", 18, 0), ("2026-02-05T10:00:00Z", 11, 2)]
    )
    page = text(launched("p1").get(f"/app/responses/{second}"))
    said = plain(page)
    assert "<h1>Patient Health Questionnaire-9 (PHQ-9)</h1>" in page
    assert "Completed 5 Feb 2026 Status Completed Answered by not recorded" in said  # no author, no source
    assert "Saved" not in said  # no after-submit banner on a plain visit
    assert "PHQ-9 total score (0–27) 11 — Moderate Lower scores are better." in said
    assert "Down 7 points since 5 Jan 2026: a reliable improvement." in said
    rows = re.findall(r'<tr class="answer-row[^"]*" data-link-id="([^"]+)"', page)
    assert len(rows) == 10 and "/44261-6" not in rows  # every question; the calculated total is not one
    assert answer_row(page, "/44260-8") == (
        "9. Thoughts that you would be better off dead or of hurting yourself in some way ⚠ Safety item "
        "More than half the days"
    )
    assert "10. If you checked off any problems" in said and "Not answered" in said  # item 10 was not answered
    (flag,) = fhir.get("Flag?patient=p1").get_json()["entry"]
    assert f'href="/app/flags/{flag["resource"]["id"]}">Review it</a>' in page
    assert "Safety items raised" not in text(launched("p1").get(f"/app/responses/{first}"))


# reviewing a safety item in the app -------------------------------------------------------------------------


def _flag_id(fhir: Fhir, patient: str = "p1") -> str:
    (entry,) = fhir.get(f"Flag?patient={patient}").get_json()["entry"]
    flag_id: str = entry["resource"]["id"]
    return flag_id


def test_a_clinician_reviews_a_safety_item_and_it_leaves_the_dashboard(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    ids = seed_phq9(fhir, library["phq-9"], "p1", [("2026-01-05T10:00:00Z", 12, 0), ("2026-02-05T10:00:00Z", 11, 1)])
    flag_id = _flag_id(fhir)
    client = launched("p1")
    dashboard = text(client.get("/app/patient"))
    assert f'href="/app/flags/{flag_id}" class="review-link">Review it' in dashboard
    page = text(client.get(f"/app/flags/{flag_id}"))
    said = plain(page)
    assert "Safety item: PHQ-9 item 9" in said and "Not reviewed yet." in said
    assert "Question 9. Thoughts that you would be better off dead" in said
    assert "Answer given “Several days” Date 5 Feb 2026" in said
    assert f'href="/app/responses/{ids[1]}">Patient Health Questionnaire-9 (PHQ-9), 5 Feb 2026' in page
    assert "Score of that response PHQ-9 total score (0–27): 11 (Moderate)" in said
    assert "5 Jan 2026 Not at all" in said  # the same item in the earlier response
    assert 'value="reviewed" class="primary">Mark reviewed</button>' in page

    reviewed = client.post(f"/app/flags/{flag_id}", data={"csrf_token": CSRF, "action": "reviewed"})
    assert (reviewed.status_code, reviewed.headers["Location"]) == (303, f"/app/flags/{flag_id}")
    flag = fhir.get(f"Flag/{flag_id}").get_json()
    assert flag["status"] == "inactive" and flag["period"]["end"]
    (provenance,) = fhir.get(f"Provenance?target=Flag/{flag_id}").get_json()["entry"]
    agent = provenance["resource"]["agent"][0]
    assert agent["type"]["coding"][0]["code"] == "verifier"
    assert agent["who"]["identifier"]["value"] == "Practitioner/dr-who"
    assert agent["onBehalfOf"] == {"display": "client proms-app"}
    audit = fhir.get(f"AuditEvent?type=update&entity=Flag/{flag_id}&outcome=0").get_json()
    assert audit["total"] == 1
    assert audit["entry"][0]["resource"]["agent"][0]["altId"] == "Practitioner/dr-who"

    after = plain(text(client.get(f"/app/flags/{flag_id}")))
    assert "Marked reviewed." in after
    assert f"Reviewed by Practitioner/dr-who on {flag['period']['end'][8:10].lstrip('0')} " in after
    assert "Mark reviewed" not in after.replace("Marked reviewed", "")
    dashboard = text(client.get("/app/patient"))
    assert "Safety item, not reviewed" not in dashboard and "No safety items are waiting for review." in dashboard
    # Sent again (a second click): nothing changes, no second review is recorded.
    client.post(f"/app/flags/{flag_id}", data={"csrf_token": CSRF, "action": "reviewed"})
    assert fhir.get(f"Flag/{flag_id}").get_json()["meta"]["versionId"] == flag["meta"]["versionId"]
    assert fhir.get(f"Provenance?target=Flag/{flag_id}").get_json()["total"] == 1


def test_reviewing_without_the_sessions_csrf_token_is_refused(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    seed_phq9(fhir, library["phq-9"], "p1", [("2026-02-05T10:00:00Z", 11, 1)])
    flag_id = _flag_id(fhir)
    client = launched("p1")
    for form in ({"csrf_token": "forged", "action": "reviewed"}, {"action": "reviewed"}):
        refused = client.post(f"/app/flags/{flag_id}", data=form)
        assert refused.status_code == 400 and "did not come from this app" in text(refused)
    assert fhir.get(f"Flag/{flag_id}").get_json()["status"] == "active"


def test_a_patient_signed_in_to_the_app_cannot_review_a_safety_item(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    seed_phq9(fhir, library["phq-9"], "p1", [("2026-02-05T10:00:00Z", 11, 1)])
    flag_id = _flag_id(fhir)
    for user in ("Patient/p1", "RelatedPerson/carer-1"):
        client = launched("p1", user=user)
        page = text(client.get(f"/app/flags/{flag_id}"))
        assert "Mark reviewed" not in page and "Only a clinician can mark a safety item reviewed" in page
        refused = client.post(f"/app/flags/{flag_id}", data={"csrf_token": CSRF, "action": "reviewed"})
        assert refused.status_code == 403 and "clinician" in text(refused)
    assert fhir.get(f"Flag/{flag_id}").get_json()["status"] == "active"
    assert fhir.get(f"Provenance?target=Flag/{flag_id}").get_json()["total"] == 0
    refusals = fhir.get(f"AuditEvent?type=update&entity=Flag/{flag_id}&outcome=4").get_json()
    assert refusals["total"] == 2  # each refusal is on record
    assert "Safety item, not reviewed" in text(launched("p1").get("/app/patient"))


def test_another_patients_safety_item_cannot_be_seen_or_reviewed(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    seed_phq9(fhir, library["phq-9"], "p2", [("2026-02-05T10:00:00Z", 11, 1)])
    flag_id = _flag_id(fhir, "p2")
    client = launched("p1")
    assert client.get(f"/app/flags/{flag_id}").status_code == 404
    refused = client.post(f"/app/flags/{flag_id}", data={"csrf_token": CSRF, "action": "reviewed"})
    assert refused.status_code == 404
    assert fhir.get(f"Flag/{flag_id}").get_json()["status"] == "active"


def test_a_cds_cards_link_opens_the_app_at_its_safety_item(
    app: Flask, monkeypatch: pytest.MonkeyPatch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    seed_phq9(fhir, library["phq-9"], "p1", [("2026-02-05T10:00:00Z", 11, 1)])
    flag_id = _flag_id(fhir)
    monkeypatch.setattr(smart_app, "discover", lambda iss: _endpoints())
    monkeypatch.setattr(SmartClient, "read_patient", lambda self, iss, pid, token: {"resourceType": "Patient"})
    monkeypatch.setattr(SmartClient, "user_of", lambda self, token, endpoints: "Practitioner/dr-1")

    def landing(app_context: dict[str, str]) -> str:
        token = {"access_token": "t", "patient": "p1", "expires_in": 300, "appContext": json.dumps(app_context)}
        monkeypatch.setattr(SmartClient, "exchange", lambda *args: token)
        client = app.test_client()
        started = client.get(f"/app/launch?iss={EHR}&launch=L")
        state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
        location: str = client.get(f"/app/callback?code=c&state={state}").headers["Location"]
        return location

    assert landing({"patient": "p1", "flag": flag_id}) == f"/app/flags/{flag_id}"
    assert landing({"patient": "p2", "flag": flag_id}) == "/app/patient"  # a card about someone else
    assert landing({"patient": "p1", "flag": "../sign-out"}) == "/app/patient"


def test_the_dashboard_shows_who_was_asked_and_has_not_answered(
    launched: Launch, fhir: Fhir, library: dict[str, dict[str, Any]]
) -> None:
    from tests.api.tasks import task

    phq9 = "https://recovery-proms.org/fhir/Questionnaire/phq-9|1.2.0"
    asked = fhir.create(task(patient="p1", questionnaire=phq9, start=None, due="2026-12-16"))
    fhir.create(task(patient="p2", questionnaire=phq9, start=None, due=None))  # somebody else's
    assert fhir.post(f"Task/{asked['id']}/$invite", {"resourceType": "Parameters"}).status_code == 200
    page = text(launched("p1").get("/app/patient"))
    section = page[page.index('<section class="requests"') :]
    section = section[: section.index("</section>")]
    assert re.findall(r'data-task="([^"]+)"', section) == [asked["id"]]
    assert re.search(r"PHQ-9 sent \d{1,2} [A-Z][a-z]{2}( \d{4})?, not yet answered", plain(section))
