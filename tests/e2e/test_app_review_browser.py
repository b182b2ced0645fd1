"""The clinician app's forms, response view and safety review in Chromium, as `make demo` serves it.

The service runs as `make demo` runs it (no authentication, loopback, the demo people loaded) and the app is opened
through the development launcher, so every page comes through the real SMART launch. A clinician completes a PHQ-9
for demo-01 three ways (nothing answered, too little to score, everything) and reads what was stored; then reviews
demo-03's unreviewed safety item in the app and checks that neither the dashboard nor the CDS cards still show it.
Screenshots of the new pages at 1280 and 375 px, and their axe-core reports, go to var/artifacts/screenshots.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import pytest
import requests

from tests.e2e.browser import CHROMIUM, SCREENSHOTS, axe_violations

# `make demo`'s service and the browser are the launcher test's module fixtures, made available here (and asked for
# by name): this module gets a service of its own, so reviewing demo-03's safety item changes nothing there.
from tests.e2e.test_dev_launcher_browser import banner_url, browser, open_app  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it: make browser)", allow_module_level=True)

PHQ9_ITEM9 = "/44260-8"


def root(launcher: str) -> str:
    return launcher.removesuffix("/dev-ehr/")


def stored_responses(launcher: str, patient: str) -> int:
    found = requests.get(
        f"{root(launcher)}/fhir/QuestionnaireResponse?patient={patient}&_summary=count", timeout=10
    ).json()
    total: int = found["total"]
    return total


def cds_cards(launcher: str, patient: str) -> list[dict[str, Any]]:
    """The EHR's patient-view call, as it would make it when the patient's record opens."""
    hook = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dev-clinician", "patientId": patient},
    }
    response = requests.post(f"{root(launcher)}/cds-services/recovery-proms", json=hook, timeout=10)
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    return cards


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def at_width(page: Any, width: int, height: int = 812) -> Any:
    """The same signed-in session in a new window of another width (a phone, say)."""
    context = page.context.browser.new_context(
        viewport={"width": width, "height": height}, storage_state=page.context.storage_state()
    )
    other = context.new_page()
    other.goto(page.url)
    return other


def test_a_phq9_with_nothing_or_too_little_answered_is_not_stored_or_said_to_be_scored(
    request: pytest.FixtureRequest,
) -> None:
    launcher: str = request.getfixturevalue("banner_url")
    page = open_app(request.getfixturevalue("browser"), launcher, "demo-01", 1280)
    try:
        before = stored_responses(launcher, "demo-01")
        page.goto(f"{root(launcher)}/app/questionnaires/phq-9")
        page.get_by_role("button", name="Submit answers").click()
        summary = page.locator("#error-summary")
        assert "Nothing was answered, so nothing was stored" in summary.inner_text()
        assert page.get_by_role("button", name=re.compile("Save without")).count() == 0
        assert stored_responses(launcher, "demo-01") == before

        for item in range(1, 6):  # "Several days" for items 1-5, nothing for 6-10
            page.check(f"#f-{item}-1")
        page.get_by_role("button", name="Submit answers").click()
        check = page.locator("#check-summary")
        assert check.locator("h2").inner_text() == (
            "Not saved yet: 4 questions that count towards the score are not answered"
        )
        assert page.evaluate("document.activeElement.id") == "check-summary"  # read first
        assert check.locator(".missing-list a").all_inner_texts()[-1].startswith("9. Thoughts that you would be")
        assert "Safety item: unanswered" in check.locator(".missing-list li").last.inner_text()
        assert "PHQ-9 total score needs at least 7 of its 9 items answered; 5 were answered." in check.inner_text()
        assert stored_responses(launcher, "demo-01") == before  # nothing stored yet
        shoot(page, "form-check-1280")
        assert axe_violations(page, "form-check-1280") == []
        check.get_by_role("link", name="6. Feeling bad about yourself").click()  # each one leads to its question
        assert page.evaluate("document.activeElement.id") == "f-6-0"

        page.get_by_role("button", name="Save without these answers").click()
        page.wait_for_url(re.compile(r".*/app/responses/[0-9a-f-]+$"))
        banner = page.locator("#saved-banner").inner_text()
        assert banner.startswith(
            "Saved, not scored: PHQ-9 total score needs at least 7 of its 9 items answered; 5 were answered."
        )
        main = page.locator("main").inner_text()
        assert "Saved and scored" not in main and "stored and scored" not in main
        assert page.locator(".result.not-scored").count() == 1 and page.locator(".latest-value").count() == 0
        assert page.locator(f'tr[data-link-id="{PHQ9_ITEM9}"] td').inner_text() == (
            "Not answered: no risk was reported either way"
        )
        assert stored_responses(launcher, "demo-01") == before + 1
        shoot(page, "response-not-scored-1280")
        assert axe_violations(page, "response-not-scored-1280") == []
    finally:
        page.context.close()


def test_a_full_phq9_is_saved_and_scored_and_its_response_shows_item_9(request: pytest.FixtureRequest) -> None:
    launcher: str = request.getfixturevalue("banner_url")
    page = open_app(request.getfixturevalue("browser"), launcher, "demo-01", 1280)
    try:
        page.goto(f"{root(launcher)}/app/questionnaires/phq-9")
        for item in range(1, 11):
            page.check(f"#f-{item}-1")  # "Several days" (item 10: "Somewhat difficult")
        page.get_by_role("button", name="Submit answers").click()
        page.wait_for_url(re.compile(r".*/app/responses/[0-9a-f-]+$"))
        assert page.locator("#saved-banner").inner_text() == (
            "Saved and scored. The answers below were stored and scored."
        )
        score = page.locator(".result").first
        assert score.locator(".latest-value").inner_text() == "9"
        assert score.locator(".band-name").inner_text() == "Mild"
        assert score.locator(".direction").inner_text() == "Lower scores are better."
        row = page.locator(f'tr[data-link-id="{PHQ9_ITEM9}"]')
        assert "Thoughts that you would be better off dead or of hurting yourself in some way" in row.inner_text()
        assert "Safety item" in row.inner_text() and row.locator("td").inner_text() == "Several days"
        flagged = page.locator('.attention-item[data-status="active"]')
        assert flagged.count() == 1 and flagged.get_by_role("link", name="Review it").count() == 1
        shoot(page, "response-view-1280")
        assert axe_violations(page, "response-view-1280") == []

        phone = at_width(page, 375)
        try:
            assert phone.locator("#saved-banner").count() == 0  # said once, right after saving
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            shoot(phone, "response-view-375")
            assert axe_violations(phone, "response-view-375") == []
        finally:
            phone.context.close()
    finally:
        page.context.close()


def test_demo_03s_safety_item_reviewed_in_the_app_leaves_the_dashboard_and_the_cds_cards(
    request: pytest.FixtureRequest,
) -> None:
    launcher: str = request.getfixturevalue("banner_url")
    (safety,) = [card for card in cds_cards(launcher, "demo-03") if card["indicator"] == "critical"]
    assert safety["summary"].startswith("Safety: PHQ-9 item 9 answered")
    page = open_app(request.getfixturevalue("browser"), launcher, "demo-03", 375)
    try:
        item = page.locator(".attention-safety")
        item.get_by_role("link", name=re.compile("^Review it")).click()
        page.wait_for_url(re.compile(r".*/app/flags/[0-9a-f-]+$"))
        assert page.url.endswith(f"/app/flags/{safety['uuid']}")  # the card's uuid is the Flag's id
        assert page.locator("h1").inner_text() == "Safety item: PHQ-9 item 9"
        assert page.locator("#flag-state").inner_text().endswith("Not reviewed yet.")
        detail = page.locator(".flag-detail").inner_text()
        assert "Thoughts that you would be better off dead or of hurting yourself in some way" in detail
        assert re.search(r"Answer given\s+“[A-Za-z ]+”", detail) and "Score of that response" in detail
        assert page.locator("table.earlier tbody tr").count() >= 1  # demo-03's earlier answers to item 9
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        shoot(page, "flag-page-375")
        assert axe_violations(page, "flag-page-375") == []
        wide = at_width(page, 1280, 900)
        try:
            shoot(wide, "flag-page-1280")
            assert axe_violations(wide, "flag-page-1280") == []
        finally:
            wide.context.close()

        page.get_by_role("button", name="Mark reviewed").click()
        page.wait_for_url(re.compile(r".*/app/flags/[0-9a-f-]+$"))
        assert page.locator("#reviewed-banner").inner_text().startswith("Marked reviewed.")
        state = page.locator("#flag-state").inner_text()
        assert re.fullmatch(
            r"Reviewed by \S+/Practitioner/dev-clinician on \d+ \w{3} \d{4} at \d\d:\d\d UTC\.", state
        ), state
        assert page.get_by_role("button", name="Mark reviewed").count() == 0
        shoot(page, "flag-page-reviewed-375")
        assert axe_violations(page, "flag-page-reviewed-375") == []

        page.get_by_role("link", name="Back to the dashboard").click()
        assert page.locator(".attention-safety").count() == 0
        assert page.locator(".quiet").inner_text() == "No safety items are waiting for review."
        cards = cds_cards(launcher, "demo-03")
        assert [card for card in cards if card["indicator"] == "critical"] == []
        assert not any("Safety" in card["summary"] for card in cards)
    finally:
        page.context.close()
