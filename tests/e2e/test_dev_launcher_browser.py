"""The clinician app as `make demo` serves it, opened in Chromium through the development launcher.

The service runs as `make demo` runs it (`proms serve`, gunicorn with two workers, no authentication, loopback,
the demo people loaded, measures due every 12 weeks). The test opens the address the start-up banner prints,
picks a demo person and lets the app go through its SMART App Launch against the development EHR. Then it reads
the dashboard as a clinician would, at a desktop width and a phone width: what needs attention is on the first
screen and in the agreed order, chart text is readable, band shading darkens with severity, and axe-core finds
nothing. Screenshots go to var/artifacts/screenshots.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, axe_violations
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it: make browser)", allow_module_level=True)

ORDER = ["safety", "deteriorated", "severe", "due", "improved"]  # the attention summary's order
WIDTHS = {1280: 900, 375: 812}  # viewport width: height (a desktop, a phone)


@pytest.fixture(scope="module")
def banner_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make demo`'s service; yields the development launcher's address as its start-up banner prints it."""
    directory = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = service_env(
        port,
        f"sqlite:///{directory / 'demo.sqlite3'}",
        PROMS_SCHEDULE="*=84",
        PROMS_DEV_EHR_DIR=str(directory / "dev-ehr"),
    )
    env.pop("PROMS_BASE_URL")  # as `make demo`: the default, http://127.0.0.1:{port}/fhir
    for command in (["db", "upgrade"], ["questionnaires", "load"], ["demo", "load", "--patients", "4"]):
        subprocess.run([PROMS, *command], env=env, check=True, capture_output=True)
    out = directory / "stdout.txt"
    with out.open("wb") as stdout:
        process = subprocess.Popen([PROMS, "serve"], env=env, stdout=stdout, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, lambda: process.communicate(timeout=5)[1].decode(), timeout=30)
        deadline = time.monotonic() + 10
        while not (found := re.search(rb"clinician app +(\S+) +\(development launcher", out.read_bytes())):
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        lines = out.read_text().splitlines()
        assert lines[0].startswith("Recovery PROM service ")  # the banner, with the launcher on a line of its own
        assert f"  clinician app   {base}/dev-ehr/  (development launcher: no EHR needed)" in lines
        assert found.group(1).decode() == f"{base}/dev-ehr/"
        yield found.group(1).decode()
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def open_app(browser: Any, banner_url: str, patient: str, width: int) -> Any:
    """A new browser at this width: the launcher, a click on the person, the SMART launch, the dashboard."""
    context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type in ("error", "warning") else None)
    page.goto(banner_url)
    page.locator(f'a[data-patient="{patient}"]').click()
    page.wait_for_url(re.compile(r".*/app/patient$"))
    return page


def luminance(css_colour: str) -> float:
    channels = [int(part) / 255 for part in re.findall(r"\d+", css_colour)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("width", list(WIDTHS))
def test_demo_02s_reliable_deterioration_is_on_the_first_screen(browser: Any, banner_url: str, width: int) -> None:
    page = open_app(browser, banner_url, "demo-02", width)
    try:
        assert "demo-02" in page.locator(".patient-banner").inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"demo-02-{width}-first-screen.png"))
        page.screenshot(path=str(SCREENSHOTS / f"demo-02-{width}.png"), full_page=True)

        # The summary comes first and in the agreed order; demo-02 has no safety item, so none is mentioned.
        attention = page.locator("main > section").first
        assert attention.get_attribute("class") == "attention"
        kinds = page.locator(".attention-item").evaluate_all("items => items.map(i => i.dataset.kind)")
        assert kinds == sorted(kinds, key=ORDER.index) and "safety" not in kinds
        assert "No safety" not in attention.inner_text()
        first = page.locator(".attention-item").first
        assert first.get_attribute("data-kind") == "deteriorated"
        assert re.match(
            r"■ Reliably worse: PHQ-9 total score: 2\d \(Severe, the most severe band\)", first.inner_text()
        )
        box = first.bounding_box()
        assert box is not None and box["y"] + box["height"] <= WIDTHS[width]  # wholly within the first screenful
        assert box["y"] < WIDTHS[width]

        # Nothing wider than the screen, and all chart text at least 12 px as rendered.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        sizes = page.evaluate(
            """() => Array.from(document.querySelectorAll('.trend-chart text')).map(t => {
                   const m = t.getScreenCTM();
                   return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
               })"""
        )
        assert sizes and min(sizes) >= 12, min(sizes)
        key_sizes = page.locator(".band-key li").evaluate_all(
            "items => items.map(i => parseFloat(getComputedStyle(i).fontSize))"
        )
        assert key_sizes and min(key_sizes) >= 12
        # Band labels are whole: the key names every band in full (CORE-10's longest included).
        core10_key = page.locator('[id^="measure-core-10"] .band-key').first.inner_text()
        assert "Moderate-to-severe psychological distress" in core10_key and "…" not in core10_key

        # Shading darkens as bands get more severe, on every chart, in the colours the browser paints.
        charts = page.locator("svg.trend").evaluate_all(
            """charts => charts.map(svg => Array.from(svg.querySelectorAll('g.band')).map(g => (
                   {rank: g.dataset.rank, fill: getComputedStyle(g.querySelector('rect')).fill})))"""
        )
        ranked = [bands for bands in charts if len(bands) > 1 and all(b["rank"] != "None" for b in bands)]
        assert len(ranked) >= 3  # PHQ-9, CORE-10, K10 at least
        for bands in ranked:
            ordered = sorted(bands, key=lambda band: int(band["rank"]))
            shades = [luminance(band["fill"]) for band in ordered]
            assert all(a > b for a, b in zip(shades, shades[1:], strict=False)), ordered

        # The latest answers: full wording, worse is longer, the safety item marked in words.
        item9 = page.locator('#measure-phq-9 tr[data-link-id="/44260-8"]')
        assert "Thoughts that you would be better off dead or of hurting yourself in some way" in item9.inner_text()
        assert "Safety item" in item9.inner_text()
        bars = page.locator("#measure-phq-9 table.answers svg.distance-bar").evaluate_all(
            "bars => bars.map(b => [Number(b.dataset.distance), b.querySelectorAll('rect')[1].getBBox().width])"
        )
        assert sorted(bars) == sorted(bars, key=lambda bar: bar[1])  # a longer bar is always a worse answer

        assert axe_violations(page, f"demo-02-{width}") == []
        assert not [problem for problem in page.problems if "Content Security Policy" in problem]
    finally:
        page.context.close()


def test_demo_03s_unreviewed_safety_item_comes_first_with_its_answer(browser: Any, banner_url: str) -> None:
    page = open_app(browser, banner_url, "demo-03", 375)
    try:
        page.screenshot(path=str(SCREENSHOTS / "demo-03-375-first-screen.png"))
        first = page.locator(".attention-item").first
        assert first.get_attribute("data-kind") == "safety"
        text = first.inner_text()
        assert re.match(r"⚠ Safety item, not reviewed: PHQ-9 item 9 \(“Thoughts that you would be better off", text)
        assert re.search(r"answered “[A-Za-z ]+” on \d+ \w{3} \d{4}\.", text)
        box = first.bounding_box()
        assert box is not None and box["y"] < WIDTHS[375]
        assert axe_violations(page, "demo-03-375") == []
    finally:
        page.context.close()


def test_the_how_to_open_link_leads_to_the_launcher(browser: Any, banner_url: str) -> None:
    page = browser.new_page()
    try:
        root = banner_url.removesuffix("/dev-ehr/")
        page.goto(f"{root}/app/callback?code=x&state=not-started-here")  # a sign-in the app never started
        page.get_by_role("link", name="How to open the app").click()
        page.get_by_role("link", name="Open the development launcher").click()
        assert page.url == banner_url
        assert page.locator('a[data-patient="demo-01"]').count() == 1
    finally:
        page.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_service_outcomes_page_of_the_demo_gives_every_rate_with_its_counts(
    browser: Any, banner_url: str, width: int
) -> None:
    page = open_app(browser, banner_url, "demo-01", width)
    try:
        page.get_by_role("link", name="Service outcomes").click()
        page.wait_for_url(re.compile(r".*/app/outcomes$"))
        assert page.locator("h1").inner_text() == "Service outcomes"
        phq9 = page.locator("#score-loinc-org-44261-6")
        assert phq9.locator("h2").inner_text() == "PHQ-9 total score (0–27)"
        rates = phq9.locator("table.rates .rate-text").all_inner_texts()
        assert len(rates) == 4 and all(re.fullmatch(r"\d+ of \d+ \(\d+%\)", rate) for rate in rates), rates
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(SCREENSHOTS / f"demo-outcomes-{width}.png"), full_page=True)
        assert axe_violations(page, f"demo-outcomes-{width}") == []
        assert not [problem for problem in page.problems if "Content Security Policy" in problem]
    finally:
        page.context.close()
