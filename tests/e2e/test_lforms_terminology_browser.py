"""LHC-Forms in Chromium fills a Questionnaire whose answer lists it expands from this service's terminology.

The service runs as deployed (`proms init`, then `proms serve`, no authentication, loopback). The Questionnaire
contains no value set: each item names a shipped one by canonical (`answerValueSet`) and this service as its
terminology server (SDC preferredTerminologyServer). LHC-Forms fetches ValueSet/$expand for the radio buttons of
administrative-gender, and $expand with `filter` as a person types into the jurisdiction search field. The page
and the LHC-Forms files the test suite installs (tests/node: `make node-deps`) are served at the service's own
origin through Playwright's routing, so the page's requests go to the service as a form filler's would.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from service.config import PROJECT_ROOT
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it: make browser)", allow_module_level=True)

LFORMS = PROJECT_ROOT / "tests" / "node" / "node_modules" / "lforms" / "dist" / "lforms"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition"
ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
TYPES = {".js": "application/javascript", ".css": "text/css", ".png": "image/png", ".html": "text/html"}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LHC-Forms</title>
<link rel="stylesheet" href="/lforms/webcomponent/styles.css">
</head><body><div id="form"></div>
<script src="/lforms/webcomponent/assets/lib/zone.min.js"></script>
<script src="/lforms/webcomponent/lhc-forms.js"></script>
<script src="/lforms/fhir/lformsFHIRAll.min.js"></script>
</body></html>"""


def control(code: str) -> dict[str, Any]:
    coding = {"system": "http://hl7.org/fhir/questionnaire-item-control", "code": code}
    return {"url": ITEM_CONTROL, "valueCodeableConcept": {"coding": [coding]}}


def questionnaire(fhir_base: str) -> dict[str, Any]:
    server = {"url": f"{SDC}/sdc-questionnaire-preferredTerminologyServer", "valueUrl": fhir_base}
    return {
        "resourceType": "Questionnaire",
        "status": "active",
        "extension": [server],
        "item": [
            {
                "linkId": "gender",
                "text": "Gender",
                "type": "choice",
                "answerValueSet": "http://hl7.org/fhir/ValueSet/administrative-gender",
                "extension": [control("radio-button"), server],
            },
            {
                "linkId": "country",
                "text": "Country",
                "type": "choice",
                "answerValueSet": "http://hl7.org/fhir/ValueSet/jurisdiction",
                "extension": [control("autocomplete"), server],
            },
        ],
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service after `proms init`: the origin it serves."""
    directory = tmp_path_factory.mktemp("lforms-terminology")
    port = free_port()
    env = service_env(port, f"sqlite:///{directory / 'db.sqlite3'}", PROMS_WORKERS="1")
    subprocess.run([PROMS, "init"], env=env, check=True, capture_output=True, timeout=300)
    process = subprocess.Popen([PROMS, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, lambda: process.communicate(timeout=5)[1].decode(), timeout=60)
        yield base
    finally:
        stop(process)


def _serve_files(page: Any, origin: str) -> None:
    def fulfil(route: Any) -> None:
        path = route.request.url[len(origin) :].split("?")[0]
        if path == "/lforms-page.html":
            route.fulfill(status=200, body=PAGE, headers={"Content-Type": "text/html"})
            return
        file = (LFORMS / path.removeprefix("/lforms/")).resolve()
        if not file.is_relative_to(LFORMS.resolve()) or not file.is_file():
            route.fulfill(status=404, body="")
            return
        route.fulfill(
            status=200, body=file.read_bytes(), headers={"Content-Type": TYPES.get(file.suffix, "text/plain")}
        )

    page.route(f"{origin}/lforms/**", fulfil)
    page.route(f"{origin}/lforms-page.html", fulfil)


def test_lforms_fills_answer_lists_from_this_service(service: str) -> None:
    assert (LFORMS / "webcomponent" / "lhc-forms.js").exists(), "LHC-Forms is missing: run `make node-deps`"
    from playwright.sync_api import sync_playwright

    fhir_base = f"{service}/fhir"
    gender = {"url": "http://hl7.org/fhir/ValueSet/administrative-gender"}
    expanded = requests.get(f"{fhir_base}/ValueSet/$expand", params=gender, timeout=10)
    genders = [entry["display"] for entry in expanded.json()["expansion"]["contains"]]
    assert genders == ["Male", "Female", "Other", "Unknown"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url) if "/fhir/ValueSet/" in request.url else None)
            problems: list[str] = []  # what the page reported: none expected
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            _serve_files(page, service)
            page.goto(f"{service}/lforms-page.html")
            try:
                page.wait_for_function("() => window.LForms && LForms.Util && LForms.Util.addFormToPage")
            except Exception:
                raise AssertionError(f"LHC-Forms did not load: {problems}") from None
            page.evaluate("q => LForms.Util.addFormToPage(q, 'form', {})", questionnaire(fhir_base))
            for display in genders:
                page.get_by_label(display, exact=True).wait_for()
            assert any("$expand" in url and "administrative-gender" in url for url in asked), asked

            country = page.locator("input[id^='country/']").first
            country.click()
            country.press_sequentially("austr", delay=50)
            page.get_by_text("Australia", exact=True).first.click()
            assert country.input_value() == "Australia"
            assert any("$expand" in url and "filter=austr" in url.lower() for url in asked), asked
            page.get_by_label("Female", exact=True).click()
            filled = page.evaluate("() => LForms.Util.getFormFHIRData('QuestionnaireResponse', 'R4')")
            answers = {item["linkId"]: item["answer"][0]["valueCoding"] for item in filled["item"]}
            chosen = (answers["gender"]["system"], answers["gender"]["code"])
            assert chosen == ("http://hl7.org/fhir/administrative-gender", "female")
            assert answers["country"]["system"] == "urn:iso:std:iso:3166"
            assert answers["country"]["code"] in ("AU", "AUS", "036")  # each is Australia in ISO 3166
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "lforms-terminology.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()
