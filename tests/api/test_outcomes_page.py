"""The clinician app's outcomes page: the figures $evaluate-measure reports for a Group or the whole service, as
charts with their counts, tables and CSV, for a launch whose scopes allow reading Observations beyond the patient.

The population is test_outcome_measures' hand-built one (its docstring works the PHQ-9 counts out by hand).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.app_sessions import COOKIE
from service.config import Settings
from tests.api.test_outcome_measures import GROUP, PHQ9_TOTAL, build_population, counts, evaluate, stratum
from tests.conftest import Fhir, Keys, jwt_settings

EHR = "https://ehr.example.org/fhir"
SERVICE_SCOPES = ["launch", "patient/*.rs", "user/Observation.rs", "user/Group.rs"]
PAGE = f"/app/outcomes?group={GROUP}&start=2026-01-01&end=2026-06-30"
PHQ9_ANCHOR = "score-loinc-org-44261-6"
MEASURES = ("paired-outcomes", "reliable-improvement", "reliable-deterioration", "clinically-significant-improvement")


@pytest.fixture
def settings(database_url: str, keys: Keys, tmp_path: Path) -> Settings:
    return jwt_settings(database_url, keys).with_(
        smart_client_id="proms-app", app_secret_key="k" * 40, smart_iss=(EHR,)
    )


Launch = Callable[..., FlaskClient]


@pytest.fixture
def launched(app: Flask) -> Launch:
    def launch(scopes: list[str]) -> FlaskClient:
        client = app.test_client()
        cookie = app.session_interface.issue(  # type: ignore[attr-defined]
            {
                "launch": {"iss": EHR, "subject": "a", "name": "Jane Doe", "user": "Practitioner/dr-who",
                           "scopes": scopes, "expires_at": time.time() + 600},
                "token": {"access_token": "secret-ehr-token"},
                "csrf": "csrf",
            }
        )  # fmt: skip
        client.set_cookie(COOKIE, cookie, path="/app")
        return client

    return launch


def section(html: str, anchor: str) -> str:
    found = re.search(rf'<section class="outcome" id="{anchor}".*?</section>', html, re.S)
    assert found, f"no section {anchor}"
    return found.group(0)


def table_rows(html: str) -> dict[str, tuple[str, str, str]]:
    """measure id -> (numerator, denominator, rate text) from a score's table."""
    rows = {}
    for measure, cells in re.findall(r'<tr data-measure="([^"]+)">(.*?)</tr>', html, re.S):
        texts = [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
        ]
        rows[measure] = tuple(texts) if len(texts) == 3 else ("", "", texts[0])
    return rows


def test_the_page_shows_the_figures_the_measure_reports_give(launched: Launch, app: Flask, fhir: Fhir) -> None:
    build_population(app, fhir)
    response = launched(SERVICE_SCOPES).get(PAGE)
    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    assert "<h1>Service outcomes</h1>" in html
    assert f'<option value="{GROUP}" selected>' in html
    phq9 = section(html, PHQ9_ANCHOR)
    assert "<h2" in phq9 and "PHQ-9 total score (0–27)" in phq9
    rows = table_rows(phq9)
    # The hand-worked counts (test_outcome_measures), each rate with its denominator.
    assert rows == {
        "paired-outcomes": ("5", "6", "5 of 6 (83%)"),
        "reliable-improvement": ("2", "5", "2 of 5 (40%)"),
        "reliable-deterioration": ("1", "5", "1 of 5 (20%)"),
        "clinically-significant-improvement": ("1", "4", "1 of 4 (25%)"),
    }
    # ... and the same figures $evaluate-measure reports for the same Group and period.
    for measure in MEASURES:
        _, denominator, numerator = counts(stratum(evaluate(fhir, measure, f"&subject=Group/{GROUP}"), *PHQ9_TOTAL))
        assert rows[measure][:2] == (str(numerator), str(denominator)), measure
    # The chart says the same in its text, and names itself for assistive technology.
    chart = re.search(r'<svg[^>]*class="chart rates".*?</svg>', phq9, re.S)
    assert chart and 'role="img"' in chart.group(0)
    assert "Reliable improvement: 2 of 5 (40%)" in chart.group(0)
    assert 'data-numerator="1" data-denominator="4"' in chart.group(0)
    # The QPR-15 has no reliable-change threshold: its paired outcomes count, the rest say why they do not.
    qpr = table_rows(section(html, "score-qpr-qpr-15-total"))
    assert qpr["paired-outcomes"] == ("1", "1", "1 of 1 (100%)")
    assert qpr["reliable-improvement"][2] == "Not counted: no reliable-change threshold"


def test_the_whole_service_is_the_default_and_a_period_picks_the_scores(
    launched: Launch, app: Flask, fhir: Fhir
) -> None:
    build_population(app, fhir)
    html = launched(SERVICE_SCOPES).get("/app/outcomes?start=2026-01-01&end=2026-06-30").get_data(as_text=True)
    assert '<option value="" selected>Everyone in the service</option>' in html
    assert table_rows(section(html, PHQ9_ANCHOR))["reliable-improvement"] == ("3", "6", "3 of 6 (50%)")  # g too
    later = launched(SERVICE_SCOPES).get("/app/outcomes?start=2026-07-01&end=2026-12-31").get_data(as_text=True)
    assert table_rows(section(later, PHQ9_ANCHOR))["paired-outcomes"] == ("0", "1", "0 of 1 (0%)")  # a's 3 only


def test_the_csv_holds_the_same_figures(launched: Launch, app: Flask, fhir: Fhir) -> None:
    build_population(app, fhir)
    response = launched(SERVICE_SCOPES).get(PAGE.replace("/app/outcomes?", "/app/outcomes.csv?"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    phq9 = {row["measure"]: row for row in rows if row["score_code"] == "44261-6"}
    assert {name: (row["numerator"], row["denominator"], row["rate"]) for name, row in phq9.items()} == {
        "Paired outcomes": ("5", "6", "0.8333"),
        "Reliable improvement": ("2", "5", "0.4000"),
        "Reliable deterioration": ("1", "5", "0.2000"),
        "Clinically significant improvement": ("1", "4", "0.2500"),
    }
    assert {row["subject"] for row in rows} == {f"Group/{GROUP}"}
    assert phq9["Reliable improvement"]["initial_population"] == "6"


def test_the_evaluation_is_audited_as_the_clinician(launched: Launch, app: Flask, fhir: Fhir) -> None:
    build_population(app, fhir)
    assert launched(SERVICE_SCOPES).get(PAGE).status_code == 200
    events = fhir.get("AuditEvent?type=operation-evaluate-measure&agent=proms-app").get_json()
    (event,) = [entry["resource"] for entry in events["entry"]]
    assert event["agent"][0]["altId"] == "Practitioner/dr-who"
    entities = {entity["what"]["reference"] for entity in event["entity"] if "what" in entity}
    assert f"Group/{GROUP}" in entities
    assert sorted(e for e in entities if e.startswith("Patient/")) == [f"Patient/{p}" for p in "abcdef"]


def test_a_launch_without_service_wide_scopes_is_told_what_it_needs(launched: Launch, app: Flask, fhir: Fhir) -> None:
    build_population(app, fhir)
    response = launched(["launch", "patient/*.rs"]).get(PAGE)
    assert response.status_code == 403
    assert "patient-scoped" in response.get_data(as_text=True)
    no_groups = launched(["launch", "user/Observation.rs"]).get(PAGE)
    assert no_groups.status_code == 403 and "Group" in no_groups.get_data(as_text=True)
    everyone = launched(["launch", "user/Observation.rs"]).get("/app/outcomes?start=2026-01-01&end=2026-06-30")
    assert everyone.status_code == 200  # the whole service needs no Group scope; no groups to choose from
    assert "<option" in everyone.get_data(as_text=True) and f'value="{GROUP}"' not in everyone.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "words"),
    [("start=January&end=2026-06-30", "is not a date"), ("start=2026-07-01&end=2026-06-30", "after"),
     ("group=../x", "no such group"), ("group=nobody", "Group/nobody is not known")],
)  # fmt: skip
def test_a_bad_choice_is_an_error_page(launched: Launch, app: Flask, fhir: Fhir, query: str, words: str) -> None:
    response = launched(SERVICE_SCOPES).get(f"/app/outcomes?{query}")
    assert response.status_code in (400, 404)
    assert words in response.get_data(as_text=True)


def test_without_a_launch_the_outcomes_page_goes_to_the_launch_page(app: Flask) -> None:
    response = app.test_client().get("/app/outcomes")
    assert (response.status_code, response.headers["Location"]) == (302, "/app/launch")


def test_the_page_links_to_it_from_every_app_page(launched: Launch, app: Flask, fhir: Fhir) -> None:
    build_population(app, fhir)
    html = launched(SERVICE_SCOPES).get("/app/patient").get_data(as_text=True)
    assert '<a href="/app/outcomes">Service outcomes</a>' in html
