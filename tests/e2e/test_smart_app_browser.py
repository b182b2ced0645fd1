"""The clinician app in a real browser: an EHR launch against a real authorization server, the dashboard, a form.

Three processes talk over loopback: the service (`proms serve`, gunicorn, two workers), a small EHR whose
authorization server is built from Authlib's server components (tests/e2e/auth_server.py), and Debian's
Chromium driven by Playwright. The service runs as in production, with PROMS_AUTH=jwt trusting the EHR's
issuer and JWKS: the test seeds data through the FHIR API with a client-credentials token from the EHR,
and the app itself reads the store through the use cases with the launched patient's grant.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.e2e.auth_server import SmartEhr
from tests.e2e.browser import AXE, CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, axe_violations
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready
from tests.unit.app_ui.builders import answered, choice_ids, questionnaire
from tests.unit.app_ui.conftest import phq9_weights

pytestmark = pytest.mark.e2e

ARTIFACTS = SCREENSHOTS
MRN = "urn:oid:2.16.840.1.113883.19.5.99999.1"
PATIENT = {
    "resourceType": "Patient",
    "id": "ehr-1001",
    "identifier": [{"system": MRN, "value": "mrn-1001"}],
    "name": [{"text": "Alex Rivera"}],
}
SUBJECT = "mrn-1001"  # responses are filed under the MRN: the app maps the EHR patient to it
TODAY = datetime.now(UTC).date()

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it: make browser)", allow_module_level=True)


def days_ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def shown(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return free_port(), free_port()


@pytest.fixture(scope="module")
def ehr(ports: tuple[int, int]) -> Iterator[SmartEhr]:
    service_port, ehr_port = ports
    base = f"http://127.0.0.1:{service_port}"
    server = SmartEhr(ehr_port, app_base=base, service_fhir_base=f"{base}/fhir")
    server.add_patient(PATIENT)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(ehr: SmartEhr, ports: tuple[int, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = ports[0]
    base = f"http://127.0.0.1:{port}"
    directory = tmp_path_factory.mktemp("smart-app")
    env = service_env(
        port,
        f"sqlite:///{directory / 'proms.sqlite3'}",
        PROMS_AUTH="jwt",
        PROMS_AUTH_ISSUER=ehr.base,
        PROMS_AUTH_JWKS_URL=f"{ehr.base}/jwks",
        PROMS_SMART_CLIENT_ID="proms-clinician-app",
        PROMS_SMART_ISS=ehr.fhir_base,
        PROMS_SMART_PATIENT_IDENTIFIER_SYSTEM=MRN,
        PROMS_APP_SECRET_KEY=secrets.token_hex(32),
        PROMS_SCHEDULE="phq-9=28,k10=84",
        # The outcomes page counts people beyond the launched patient: the launch asks for user/ read scopes too.
        PROMS_SMART_SCOPES="launch openid fhirUser patient/*.rs user/Observation.rs user/Group.rs",
    )  # two workers: sessions must work whichever worker a request lands on
    subprocess.run([PROMS, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([PROMS, "questionnaires", "load"], env=env, check=True, capture_output=True)
    process = subprocess.Popen([PROMS, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_ready(base, process, lambda: process.communicate(timeout=5)[1].decode(), timeout=30)
        yield base
    finally:
        banner, errors = stop(process)
    # With authentication on there is no development launcher, and the banner does not offer one.
    assert b"/dev-ehr" not in banner and b"development launcher" not in banner
    log = errors.decode()
    # Nothing the EHR issued, and no answer, ends up in the service's log.
    assert not any(token["access_token"] in log for token in ehr.issued)
    assert "Agree strongly" not in log and "code_verifier" not in log


@pytest.fixture(scope="module")
def system_token(ehr: SmartEhr) -> str:
    """A backend token from the EHR's client-credentials grant (the service trusts the EHR's issuer)."""
    client = ehr.backend_client()
    with OAuth2Session(client.client_id, client.client_secret, scope="system/*.cruds") as session:
        token = session.fetch_token(f"{ehr.base}/token", grant_type="client_credentials")
    return str(token["access_token"])


def post(service: str, token: str, resource: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        f"{service}/fhir/{resource['resourceType']}",
        data=json.dumps(resource),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def search(service: str, token: str, query: str) -> dict[str, Any]:
    response = requests.get(f"{service}/fhir/{query}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


QPR_STRENGTHS = ["qpr-4", "qpr-12", "qpr-9"]
QPR_PRIORITIES = ["qpr-6", "qpr-22", "qpr-1"]


@pytest.fixture(scope="module")
def seeded(service: str, system_token: str) -> dict[str, Any]:
    """PHQ-9 18 -> 11 (reliably better) -> 19 with item 9 raised (reliably worse); one QPR-15 ten days ago."""
    phq9 = questionnaire("phq-9")
    for index, (days, total, item9) in enumerate([(120, 18, 0), (90, 11, 0), (60, 19, 1)]):
        response = answered(
            phq9, phq9_weights(total, item9), authored=f"{days_ago(days)}T10:00:00Z", response_id=str(index),
            subject=SUBJECT,
        )  # fmt: skip
        post(service, system_token, {k: v for k, v in response.items() if k != "id"})
    qpr = questionnaire("qpr-15")
    weights = dict.fromkeys(choice_ids(qpr), 2.0) | {
        "qpr-4": 4.0, "qpr-12": 4.0, "qpr-9": 3.0, "qpr-6": 0.0, "qpr-22": 0.0, "qpr-1": 1.0,
    }  # fmt: skip
    response = answered(qpr, weights, authored=f"{days_ago(10)}T10:00:00Z", response_id="q", subject=SUBJECT)
    post(service, system_token, {k: v for k, v in response.items() if k != "id"})
    return {"phq9": phq9, "qpr": qpr}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def page(browser: Any, ehr: SmartEhr, service: str, seeded: dict[str, Any]) -> Iterator[Any]:
    """A clinician in the EHR opens the app from Alex Rivera's chart and allows it access."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.csp_problems = []
    tab.on("console", lambda m: tab.csp_problems.append(m.text) if "Content Security Policy" in m.text else None)
    tab.goto(f"{ehr.base}/ehr/patients/ehr-1001")
    tab.get_by_role("link", name="Open Recovery measures").click()
    tab.get_by_role("button", name="Allow").click()
    tab.wait_for_url(f"{service}/app/patient")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield tab
    context.close()


def test_an_ehr_launch_shows_the_patients_scores_bands_change_strengths_and_priorities(
    page: Any, ehr: SmartEhr, browser: Any, service: str
) -> None:
    assert AXE.exists(), "axe-core is missing: run `make node-deps`"
    page.screenshot(path=str(ARTIFACTS / "ehr-dashboard-1280.png"), full_page=True)
    assert requests.get(f"{service}/dev-ehr/", timeout=10).status_code == 404  # authentication is on
    # The launch gave the app Alex Rivera, mapped by MRN, and the clinician from the verified id_token.
    banner = page.locator(".patient-banner").inner_text()
    assert "Alex Rivera" in banner and f"ID {SUBJECT}" in banner
    (token,) = [t for t in ehr.issued if "patient" in t]
    assert token["patient"] == "ehr-1001" and "id_token" in token
    assert token["access_token"] not in page.content()
    (cookie,) = page.context.cookies(f"{service}/app/patient")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/app"

    # Safety first: before anything else in the main content, in words and not only in colour.
    main = page.locator("main")
    first_section = main.locator("section").first
    assert first_section.get_attribute("class") == "attention"
    first_item = first_section.locator(".attention-item").first
    assert first_item.get_attribute("data-kind") == "safety"
    said = first_item.inner_text()
    assert said.startswith("⚠ Safety item, not reviewed: PHQ-9 item 9 (“Thoughts that you would be better off dead")
    assert "answered “Several days”" in said and shown(days_ago(60)) in said

    phq9 = page.locator("#measure-phq-9")
    assert phq9.locator(".latest-value").inner_text() == "19"
    assert phq9.locator(".latest .band-name").inner_text() == "Moderately severe"
    assert phq9.locator(".change").inner_text() == (
        f"■ Up 8 points since {shown(days_ago(90))}: a reliable deterioration."  # the chart's marker, as a key
    )
    chart = phq9.locator("svg.trend")
    assert chart.get_attribute("role") == "img"
    assert chart.locator("g.band").count() == 5
    assert [chart.locator(f'g.point[data-change="{c}"]').count() for c in ("none", "improved", "deteriorated")] == [
        1, 1, 1,
    ]  # fmt: skip
    assert chart.locator('g.point[data-change="improved"] text').text_content() == "better"
    assert chart.locator('g.point[data-change="deteriorated"] text').text_content() == "worse"
    score = phq9.locator(".score")
    assert "reliable improvement" in score.locator("figcaption").inner_text()
    score.get_by_text("All results as a table").click()  # the text alternative, one click or keypress away
    rows = score.locator("table tbody tr")
    assert [rows.nth(i).locator("td").nth(1).inner_text() for i in range(3)] == ["19", "11", "18"]

    qpr = page.locator("#measure-qpr-15")
    assert qpr.locator(".latest-value").inner_text() == "30"
    assert [item.get_attribute("data-link-id") for item in qpr.locator(".strengths li").all()] == QPR_STRENGTHS
    assert [item.get_attribute("data-link-id") for item in qpr.locator(".priorities li").all()] == QPR_PRIORITIES
    assert qpr.locator("table.answers tbody tr").count() == 15

    due = page.locator(".attention .attention-due")
    assert due.count() == 2  # QPR-15, done 10 days ago, is not due: it is only listed below with its next date
    assert (
        due.nth(0)
        .inner_text()
        .startswith(f"Overdue: Patient Health Questionnaire-9 (PHQ-9), was due {shown(days_ago(32))}, 32 days ago")
    )
    assert (
        due.nth(1)
        .inner_text()
        .startswith("Due: Kessler Psychological Distress Scale (K10), Australian version, scheduled, not completed yet")
    )
    assert "— Next due" in page.locator('.start-list li[data-questionnaire="qpr-15"]').inner_text()

    assert axe_violations(page, "ehr-dashboard") == []

    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state())
    small = phone.new_page()
    small.goto(f"{service}/app/patient")
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scrolling
    small.screenshot(path=str(ARTIFACTS / "ehr-dashboard-390.png"), full_page=True)
    phone.close()
    assert page.csp_problems == []


def test_a_measure_completed_in_the_page_is_stored_and_scored(
    page: Any, service: str, system_token: str, ehr: SmartEhr
) -> None:
    page.goto(f"{service}/app/patient")
    page.locator(".start-list").get_by_role(
        "link", name="Questionnaire about the Process of Recovery, 15 items"
    ).click()
    page.wait_for_url(f"{service}/app/questionnaires/qpr-15")
    assert page.locator("[data-refresh]").is_hidden()  # the form script ran under the CSP
    # Keyboard only for the first question: into the radio group, then arrow keys to "Agree".
    page.focus("#f-2-0")
    page.keyboard.press("Space")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    assert page.is_checked("#f-2-3")
    for index in range(3, 16):  # every other question but the last
        page.check(f"#f-{index}-3")
    page.get_by_role("button", name="Submit answers").click()
    page.wait_for_load_state()
    summary = page.locator("#error-summary")
    assert "the answers were not stored" in summary.inner_text()
    assert summary.get_by_role("link").inner_text() == (
        "15. I can find the time to do the things I enjoy: This question needs an answer"
    )
    assert page.locator("#f-16-error").text_content() == "Error: This question needs an answer"
    assert page.is_checked("#f-2-3") and page.is_checked("#f-15-3")  # nothing typed is lost
    page.screenshot(path=str(ARTIFACTS / "ehr-form-errors.png"), full_page=True)
    assert axe_violations(page, "form-errors") == []

    assert page.evaluate("document.activeElement.id") == "error-summary"  # announced and focused first
    summary.get_by_role("link").click()
    page.check("#f-16-3")
    page.get_by_role("button", name="Submit answers").click()
    page.wait_for_url(f"{service}/app/responses/*")
    result = page.locator("main")
    assert result.locator("#saved-banner").inner_text() == "Saved and scored. The answers below were stored and scored."
    assert result.locator("h1").inner_text() == "Questionnaire about the Process of Recovery, 15 items (QPR-15)"
    assert result.locator(".latest-value").inner_text() == "45"
    assert result.locator(".change").inner_text() == (
        f"Up 15 points since {shown(days_ago(10))} (the measure has no reliable-change threshold)."
    )
    page.screenshot(path=str(ARTIFACTS / "ehr-result.png"), full_page=True)
    assert axe_violations(page, "result") == []

    # Stored and scored through the submission path, as the API would have done it.
    response_id = page.url.rsplit("/", 1)[-1]
    stored = search(service, system_token, f"QuestionnaireResponse/{response_id}")
    assert stored["subject"] == {"reference": f"Patient/{SUBJECT}"}
    assert stored["author"] == {"reference": f"{ehr.fhir_base}/Practitioner/dr-chen"}
    total = next(item for item in stored["item"] if item["linkId"] == "qpr-15-total")
    assert total["answer"] == [{"valueInteger": 45}]
    observations = search(service, system_token, f"Observation?derived-from=QuestionnaireResponse/{response_id}")
    assert observations["total"] == 2
    responses = search(service, system_token, f"QuestionnaireResponse?patient={SUBJECT}&_summary=count")
    assert responses["total"] == 5

    page.get_by_role("link", name="Back to the dashboard").click()
    assert page.locator("#measure-qpr-15 .score table tbody tr").count() == 2
    assert page.csp_problems == []


def test_the_outcomes_page_gives_each_rate_with_its_counts_as_a_chart_and_a_table(page: Any, service: str) -> None:
    """Alex Rivera is everyone measured in the past year: PHQ-9 18 -> 11 -> 19, first 18 and last 19 (up 1)."""
    page.goto(f"{service}/app/patient")
    page.get_by_role("link", name="Service outcomes").click()
    page.wait_for_url(f"{service}/app/outcomes")
    phq9 = page.locator("#score-loinc-org-44261-6")
    rows = phq9.locator("table.rates tbody tr")
    assert [rows.nth(i).locator("th").inner_text() for i in range(4)] == [
        "Paired outcomes", "Reliable improvement", "Reliable deterioration", "Clinically significant improvement",
    ]  # fmt: skip
    # Paired; up 1 from the first to the last is no reliable change; 18 is a case, 19 still is: not recovered.
    assert phq9.locator("table.rates .rate-text").all_inner_texts() == [
        "1 of 1 (100%)", "0 of 1 (0%)", "0 of 1 (0%)", "0 of 1 (0%)",
    ]  # fmt: skip
    chart = phq9.locator("svg.chart.rates")
    assert chart.get_attribute("role") == "img"
    assert chart.locator("g.rate text").first.text_content() == "Paired outcomes: 1 of 1 (100%)"
    sizes = chart.locator("text").evaluate_all("ts => ts.map(t => parseFloat(getComputedStyle(t).fontSize))")
    assert min(sizes) >= 12
    qpr = page.locator("#score-qpr-qpr-15-total")
    assert qpr.locator("tr[data-measure=reliable-improvement] .rate-text").inner_text() == (
        "Not counted: no reliable-change threshold"
    )
    download = page.get_by_role("link", name="Download these figures as CSV").get_attribute("href")
    assert download is not None and download.startswith("/app/outcomes.csv?")
    page.screenshot(path=str(ARTIFACTS / "ehr-outcomes-1280.png"), full_page=True)
    assert axe_violations(page, "ehr-outcomes") == []
    assert page.csp_problems == []
