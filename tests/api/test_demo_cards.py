"""With the demo data loaded, the CDS Hooks service shows every kind of card across demo-01..04 and the clinician
app shows demo-01's trends, strengths and possible priorities."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.app_sessions import COOKIE
from service.config import Settings
from service.demo import INSTRUMENT_URL, load_demo
from service.questionnaires import load_library
from tests.api.test_cds_hooks import EHR, Cds
from tests.conftest import Keys, jwt_settings

APP_EHR = "https://ehr.example.org/fhir"
DEMO_SCHEDULE = (("*", 84),)  # as `make demo` runs the service


@pytest.fixture
def settings(database_url: str, keys: Keys, tmp_path: Path) -> Settings:
    return jwt_settings(database_url, keys).with_(
        cds_issuers=(EHR,),
        cds_jwks_file=keys.jwks_file,
        smart_client_id="proms-app",
        app_secret_key="k" * 40,
        smart_iss=(APP_EHR,),
        schedule=DEMO_SCHEDULE,
    )


@pytest.fixture
def demo(app: Flask, settings: Settings) -> None:
    load_library(app.web.services, settings.questionnaires_dir)
    report = load_demo(app.web.services, today=datetime.now(UTC).date(), patients=4)
    assert report.counts.people == 4


@pytest.fixture
def cds(app: Flask, keys: Keys) -> Cds:
    return Cds(app.test_client(), keys)


def launched(app: Flask, subject: str) -> FlaskClient:
    """A browser already launched for ``subject`` (the session the SMART callback would have made)."""
    client = app.test_client()
    cookie = app.session_interface.issue(  # type: ignore[attr-defined]
        {
            "launch": {"iss": APP_EHR, "subject": subject, "name": "Demo", "user": "Practitioner/dr-who",
                       "scopes": ["launch", "patient/*.rs"], "expires_at": time.time() + 600},
            "token": {"access_token": "ehr-token"},
            "csrf": "csrf",
        }
    )  # fmt: skip
    client.set_cookie(COOKIE, cookie, path="/app")
    return client


def kind(card: Mapping[str, Any]) -> str:
    """safety | warning | overdue | requests | improved | summary."""
    if card["indicator"] == "critical":
        return "safety"
    if card["indicator"] == "warning":
        return "warning"
    context = json.loads(card["links"][0]["appContext"])
    if "tasks" in context:
        return "requests"
    return "overdue" if "questionnaires" in context else "improved" if "questionnaire" in context else "summary"


@pytest.mark.usefixtures("demo")
def test_the_personas_show_every_kind_of_card(cds: Cds) -> None:
    cards = {patient: cds.cards(patient) for patient in ("demo-01", "demo-02", "demo-03", "demo-04")}
    kinds = {kind(card) for found in cards.values() for card in found}
    assert kinds == {"safety", "warning", "summary", "overdue", "requests", "improved"}
    assert all(kind(found[-1]) == "summary" for found in cards.values())  # everyone has measures
    order = ["safety", "warning", "overdue", "requests", "improved", "summary"]  # the app's attention order
    for found in cards.values():
        assert [order.index(kind(card)) for card in found] == sorted(order.index(kind(card)) for card in found)
        assert all(len(card["summary"]) < 140 for card in found)

    improving = cards["demo-01"]
    assert "safety" not in {kind(card) for card in improving}
    (summary,) = [card for card in improving if kind(card) == "summary"]
    assert re.search(r"\*\*PHQ-9\*\* \d+ \([^)]*\), \d+ lower than on [^:]+: reliable improvement", summary["detail"])
    better = [card["summary"] for card in improving if kind(card) == "improved"]
    assert any(re.fullmatch(r"PHQ-9 \d+ \([a-z/]+\): reliably better, \d+ lower than on .+", text) for text in better)

    # demo-02: the PHQ-9's reliable deterioration into its severe band is the first card, before any K10 card.
    deteriorating = [card["summary"] for card in cards["demo-02"] if kind(card) == "warning"]
    assert re.fullmatch(
        r"PHQ-9 2\d \(severe\): reliably worse, \d+ higher than on .+; in the most severe band", deteriorating[0]
    ), deteriorating
    assert not any(text.startswith("K10 K6") or "of the K10 " in text for text in deteriorating)
    assert len([text for text in deteriorating if text.startswith("K10")]) <= 1  # one card per instrument

    safety = cards["demo-03"][0]
    assert kind(safety) == "safety"
    assert re.fullmatch(
        r"Safety: PHQ-9 item 9 answered '[A-Za-z ]+' on \d+ \w{3}( \d{4})?, not reviewed", safety["summary"]
    )
    assert [kind(card) for card in cards["demo-03"]].count("safety") == 1

    (overdue,) = [card for card in cards["demo-04"] if kind(card) == "overdue"]
    due = json.loads(overdue["links"][0]["appContext"])["questionnaires"]
    assert f"{INSTRUMENT_URL}qpr-15" in due and f"{INSTRUMENT_URL}phq-9" not in due
    for patient in ("demo-01", "demo-02", "demo-03"):
        assert "overdue" not in {kind(card) for card in cards[patient]}
    # demo-04 was asked to complete the QPR-15 again, and has not answered.
    (asked,) = [card for card in cards["demo-04"] if kind(card) == "requests"]
    assert re.fullmatch(r"QPR-15 sent \d{1,2} \w{3}( \d{4})?, not yet answered", asked["summary"]), asked["summary"]


def instrument_section(page: str, questionnaire_id: str) -> str:
    start = page.index(f'<section class="instrument" id="measure-{questionnaire_id}"')
    end = page.find('<section class="instrument"', start + 1)
    return page[start : end if end > 0 else len(page)]


@pytest.mark.usefixtures("demo")
def test_the_app_shows_demo_01s_trends_strengths_and_priorities(app: Flask) -> None:
    response = launched(app, "demo-01").get("/app/patient")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "No safety items are waiting for review." in page

    phq9 = instrument_section(page, "phq-9")
    responses = int(re.search(r"(\d+) responses,", phq9).group(1))  # type: ignore[union-attr]
    assert responses >= 3
    assert "<svg" in phq9 and phq9.count("<tr>") >= responses  # the trend chart and its table
    assert 'class="change change-improved"' in phq9

    qpr = instrument_section(page, "qpr-15")
    assert "<svg" in qpr
    strengths = qpr[qpr.index("<h4>Strengths</h4>") : qpr.index("<h4>Possible priorities</h4>")]
    priorities = qpr[qpr.index("<h4>Possible priorities</h4>") : qpr.index('class="hint"')]
    assert strengths.count("<li data-link-id=") >= 1
    assert priorities.count("<li data-link-id=") >= 1
