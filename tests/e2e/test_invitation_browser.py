"""A person answers a PHQ-9 on their phone through a completion link, in Chromium at 375 px.

The service runs as `proms serve` runs it (gunicorn, no authentication, loopback, the questionnaire library loaded)
with e-mail sent through a real SMTP server on loopback that requires STARTTLS. A Task is created, `$invite` e-mails
its link, the page is answered by touch and by keyboard, and the Task is found completed with the response scored
and its Observations stored; the same link is then gone (410), an expired link too, and a guessed token is unknown
(404). The worker's reminder round e-mails one reminder, once. Screenshots and the axe-core report of the page go
to var/artifacts/screenshots.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select, update

from service.config import Settings
from service.invitations.reminders import send_task_notices
from service.services import build_services
from service.store.models import TaskInvitation
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, axe_violations
from tests.e2e.processes import PROMS, free_port, service_env, stop, wait_until_ready
from tests.jobs.smtp import SmtpServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it: make browser)", allow_module_level=True)

PHQ9 = "https://recovery-proms.org/fhir/Questionnaire/phq-9|1.2.0"
SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/answer/[A-Za-z0-9_-]{43}")


class Service:
    def __init__(self, base: str, database_url: str, smtp: SmtpServer, env: dict[str, str]) -> None:
        self.base, self.fhir, self.database_url, self.smtp, self.env = base, f"{base}/fhir", database_url, smtp, env

    def task(self, patient: str) -> str:
        task = {
            "resourceType": "Task", "status": "requested", "intent": "order",
            "code": {"coding": [{"system": SDC_TEMP, "code": "complete-questionnaire"}]},
            "for": {"reference": f"Patient/{patient}"}, "requester": {"display": "Community mental health team"},
            "input": [{"type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire"}]}, "valueCanonical": PHQ9}],
        }  # fmt: skip
        created = requests.post(f"{self.fhir}/Task", json=task, timeout=10)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def invite(self, task_id: str, **parameters: dict[str, Any]) -> str:
        body: dict[str, Any] = {"resourceType": "Parameters"}
        if parameters:
            body["parameter"] = [{"name": name, **value} for name, value in parameters.items()]
        made = requests.post(f"{self.fhir}/Task/{task_id}/$invite", json=body, timeout=10)
        assert made.status_code == 200, made.text
        return str(next(p["valueUrl"] for p in made.json()["parameter"] if p["name"] == "link"))

    def settings(self) -> Settings:
        return Settings.from_env(self.env)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    directory = tmp_path_factory.mktemp("invitations")
    smtp = SmtpServer(directory)
    port = free_port()
    database_url = f"sqlite:///{directory / 'proms.sqlite3'}"
    env = service_env(
        port, database_url,
        PROMS_REMINDERS="3", PROMS_SMTP_HOST="127.0.0.1", PROMS_SMTP_PORT=str(smtp.port),
        PROMS_SMTP_FROM="measures@proms.test", PROMS_SMTP_CA_FILE=str(smtp.cert_file),
    )  # fmt: skip
    for command in (["db", "upgrade"], ["questionnaires", "load"]):
        subprocess.run([PROMS, *command], env=env, check=True, capture_output=True)
    process = subprocess.Popen([PROMS, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, process, lambda: process.communicate(timeout=5)[1].decode(), timeout=30)
        yield Service(base, database_url, smtp, env)
    finally:
        stop(process)
        smtp.stop()


@pytest.fixture(scope="module")
def phone() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 375, "height": 812}, has_touch=True, is_mobile=True)
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text) if m.type in ("error", "warning") else None)
        yield page
        browser.close()


def _plain(message: Any) -> str:
    return next(p.get_payload(decode=True).decode() for p in message.walk() if p.get_content_type() == "text/plain")


def test_a_person_answers_a_phq9_by_touch_and_keyboard_and_the_link_is_then_spent(service: Service, phone: Any) -> None:
    task_id = service.task("invited-1")
    link = service.invite(task_id, email={"valueString": "person@example.test"})
    ((recipients, message),) = service.smtp.messages
    assert recipients == ["person@example.test"]
    assert LINK.findall(_plain(message)) == [link]

    response = phone.goto(link)
    assert response.status == 200
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the phone
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(SCREENSHOTS / "invitation-phq9-375.png"), full_page=True)
    assert axe_violations(phone, "invitation-phq9-375") == []
    # Items 1-4 by touch: 1 "Several days", 2 "Several days", 3 "Not at all", 4 "More than half the days".
    for field, option in ((1, 1), (2, 1), (3, 0), (4, 2)):
        phone.locator(f'label[for="f-{field}-{option}"]').tap()
    # Items 5-9 by keyboard: focus the first option, Space picks it, an arrow moves to (and picks) the next.
    for field, option in ((5, 0), (6, 1), (7, 0), (8, 0), (9, 0)):
        phone.locator(f"#f-{field}-0").focus()
        phone.keyboard.press("Space")
        for _ in range(option):
            phone.keyboard.press("ArrowRight")
    assert phone.locator("#f-6-1").is_checked() and phone.locator("#f-4-2").is_checked()
    phone.get_by_role("button", name="Finish and send").focus()
    phone.keyboard.press("Enter")
    phone.wait_for_url(re.compile(r".*/answer/thank-you$"))
    assert phone.get_by_role("heading", name="Thank you").is_visible()
    assert phone.problems == []

    task = requests.get(f"{service.fhir}/Task/{task_id}", timeout=10).json()
    assert task["status"] == "completed"
    answered = task["output"][0]["valueReference"]["reference"]
    stored = requests.get(f"{service.fhir}/{answered}", timeout=10).json()
    assert stored["status"] == "completed" and stored["basedOn"] == [{"reference": f"Task/{task_id}"}]
    total = next(i for i in stored["item"] if i["linkId"] == "/44261-6")["answer"][0]["valueInteger"]
    assert total == 1 + 1 + 0 + 2 + 0 + 1 + 0 + 0 + 0
    observations = requests.get(f"{service.fhir}/Observation?derived-from={answered}", timeout=10).json()
    assert observations["total"] >= 1
    scored = [e["resource"] for e in observations["entry"]
              if any(c.get("code") == "44261-6" for c in e["resource"]["code"]["coding"])]  # fmt: skip
    assert [o.get("valueInteger", o.get("valueQuantity", {}).get("value")) for o in scored] == [5]

    gone = phone.goto(link)
    assert gone.status == 410
    assert "already been answered" in phone.content()


def test_an_expired_link_is_gone_and_a_guessed_token_is_unknown(service: Service, phone: Any) -> None:
    link = service.invite(service.task("invited-2"))
    services = build_services(service.settings())
    try:
        with services.db.transaction() as session:
            session.execute(update(TaskInvitation).values(expires_at=TaskInvitation.created_at))
    finally:
        services.close()
    assert phone.goto(link).status == 410
    guessed = phone.goto(f"{service.base}/answer/{'x' * 43}")
    assert guessed.status == 404
    assert "could not find this link" in phone.content()


def test_the_reminder_and_the_email_arrive_exactly_once_each(service: Service) -> None:
    before = len(service.smtp.messages)
    first = service.invite(service.task("invited-3"), email={"valueString": "someone@example.test"})
    services = build_services(service.settings())
    try:
        with services.db.read_session() as session:
            made = max(row.created_at for row in session.scalars(select(TaskInvitation)))
        reminder_day = made + timedelta(days=3, minutes=1)
        assert send_task_notices(services, reminder_day) >= 1
        assert send_task_notices(services, reminder_day) == 0  # a second round (or worker) fires nothing more
    finally:
        services.close()
    arrived = service.smtp.messages[before:]
    assert [m["Subject"] for _, m in arrived] == [
        "A questionnaire from your care team", "Reminder: a questionnaire from your care team",
    ]  # fmt: skip
    assert all(recipients == ["someone@example.test"] for recipients, _ in arrived)
    assert LINK.findall(_plain(arrived[0][1])) == [first]
    (fresh,) = LINK.findall(_plain(arrived[1][1]))
    assert fresh != first and requests.get(fresh, timeout=10).status_code == 200
    assert all(service.smtp.inbox.tls)
