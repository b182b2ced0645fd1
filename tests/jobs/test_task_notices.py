"""Reminders, expiries and e-mail of completion links, and Tasks for measures falling due: each exactly once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask import Flask
from sqlalchemy import select

from service.config import Settings
from service.fhir.dates import utcnow
from service.invitations import reminders
from service.store.models import OutboxEvent, TaskInvitation
from service.subscriptions.topics import QUESTIONNAIRE_TASK
from tests.api import builders
from tests.api.tasks import task
from tests.conftest import Fhir, Keys, jwt_settings
from tests.jobs.smtp import SmtpServer

LINK = re.compile(r"http://proms\.test/answer/[A-Za-z0-9_-]{43}")


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def settings(database_url: str, keys: Keys, smtp: SmtpServer) -> Settings:
    return jwt_settings(database_url, keys).with_(
        reminders=(3, 7),
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="measures@proms.test",
        smtp_ca_file=smtp.cert_file,
    )


@pytest.fixture
def task_id(fhir: Fhir) -> str:
    fhir.create(builders.questionnaire())
    return str(fhir.create(task(due=None, start=None))["id"])


def _invite(fhir: Fhir, task_id: str, **values: Any) -> dict[str, Any]:
    parameters = [{"name": name, **value} for name, value in values.items()]
    body: dict[str, Any] = {"resourceType": "Parameters", **({"parameter": parameters} if parameters else {})}
    response = fhir.post(f"Task/{task_id}/$invite", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return {p["name"]: p for p in response.get_json()["parameter"]}


def _events(app: Flask) -> list[str]:
    with app.web.services.db.read_session() as session:
        rows = session.scalars(select(OutboxEvent).where(OutboxEvent.topic == QUESTIONNAIRE_TASK.url))
        return [orjson.loads(row.codes or "[]")[0][1] for row in rows]


def _made_at(app: Flask) -> Any:
    with app.web.services.db.read_session() as session:
        return session.scalars(select(TaskInvitation)).one().created_at


def test_each_reminder_and_the_expiry_fire_once_while_the_task_is_open(fhir: Fhir, app: Flask, task_id: str) -> None:
    services = app.web.services
    _invite(fhir, task_id)
    made = _made_at(app)
    assert reminders.send_task_notices(services, made + timedelta(days=2)) == 0
    assert reminders.send_task_notices(services, made + timedelta(days=3, minutes=1)) == 1
    assert reminders.send_task_notices(services, made + timedelta(days=3, minutes=2)) == 0  # once
    assert reminders.send_task_notices(services, made + timedelta(days=8)) == 1
    assert reminders.send_task_notices(services, made + timedelta(days=9)) == 0
    assert reminders.send_task_notices(services, made + timedelta(days=15)) == 1  # the link expired unanswered
    assert reminders.send_task_notices(services, made + timedelta(days=16)) == 0
    assert _events(app) == ["requested", "reminder-due", "reminder-due", "expired"]


def test_no_reminder_once_the_task_is_answered(fhir: Fhir, app: Flask, task_id: str) -> None:
    _invite(fhir, task_id)
    fhir.create(builders.response(basedOn=[{"reference": f"Task/{task_id}"}]))
    assert reminders.send_task_notices(app.web.services, _made_at(app) + timedelta(days=20)) == 0
    assert _events(app) == ["requested", "completed"]


def test_a_notice_claimed_by_another_worker_is_not_fired_again(fhir: Fhir, app: Flask, task_id: str) -> None:
    services = app.web.services
    _invite(fhir, task_id)
    made = _made_at(app)
    with services.db.read_session() as session:
        invitation = session.scalars(select(TaskInvitation)).one()
    (notice,) = reminders.due_notices(invitation, (3,), made + timedelta(days=4))
    # Two workers that both saw the notice as due: only the first insert of its row wins.
    assert reminders._fire(services, notice, made + timedelta(days=4))
    assert not reminders._fire(services, notice, made + timedelta(days=4))
    assert _events(app).count("reminder-due") == 1


def test_the_link_is_emailed_once_over_starttls_and_recorded_without_the_address(
    fhir: Fhir, app: Flask, task_id: str, smtp: SmtpServer
) -> None:
    sent = _invite(fhir, task_id, email={"valueString": "person@example.test"})
    assert sent["emailed"]["valueBoolean"] is True
    ((recipients, message),) = smtp.messages
    assert smtp.inbox.tls == [True]
    assert recipients == ["person@example.test"]
    assert message["From"] == "measures@proms.test"
    parts = {part.get_content_type(): part.get_payload(decode=True).decode() for part in message.walk()
             if not part.is_multipart()}  # fmt: skip
    assert set(parts) == {"text/plain", "text/html"}
    assert sent["link"]["valueUrl"] in parts["text/plain"]
    assert f'href="{sent["link"]["valueUrl"]}"' in parts["text/html"]
    assert "Mood check" in parts["text/plain"]
    records = fhir.get(f"Communication?based-on=Task/{task_id}").get_json()
    assert records["total"] == 1
    record = records["entry"][0]["resource"]
    assert record["status"] == "completed"
    assert record["subject"] == {"reference": "Patient/p1"}
    text = orjson.dumps(record).decode()
    assert "example.test" not in text and sent["link"]["valueUrl"] not in text


def test_a_reminder_is_emailed_once_with_a_fresh_link_and_the_address_then_forgotten(
    fhir: Fhir, app: Flask, task_id: str, smtp: SmtpServer
) -> None:
    services = app.web.services
    first = _invite(fhir, task_id, email={"valueString": "person@example.test"})["link"]["valueUrl"]
    with services.db.read_session() as session:
        assert session.scalars(select(TaskInvitation)).one().address == "person@example.test"
    made = _made_at(app)
    assert reminders.send_task_notices(services, made + timedelta(days=3, minutes=1)) == 1
    assert reminders.send_task_notices(services, made + timedelta(days=3, minutes=2)) == 0
    assert len(smtp.messages) == 2
    reminder = smtp.messages[1][1]
    assert reminder["Subject"].startswith("Reminder")
    plain = next(p.get_payload(decode=True).decode() for p in reminder.walk() if p.get_content_type() == "text/plain")
    (fresh,) = set(LINK.findall(plain))
    assert fresh != first
    assert fhir.client.get(fresh.removeprefix("http://proms.test")).status_code == 200
    assert fhir.client.get(first.removeprefix("http://proms.test")).status_code == 404
    assert reminders.send_task_notices(services, made + timedelta(days=7, minutes=1)) == 1
    assert len(smtp.messages) == 3
    with services.db.read_session() as session:  # the last reminder went: the address is gone
        assert session.scalars(select(TaskInvitation)).one().address is None
    assert fhir.get(f"Communication?based-on=Task/{task_id}").get_json()["total"] == 3


def test_a_relay_that_cannot_be_reached_is_recorded_as_not_sent(
    fhir: Fhir, app: Flask, task_id: str, smtp: SmtpServer
) -> None:
    smtp.stop()
    sent = _invite(fhir, task_id, email={"valueString": "person@example.test"})
    assert sent["emailed"]["valueBoolean"] is False
    assert "link" in sent
    record = fhir.get(f"Communication?based-on=Task/{task_id}").get_json()["entry"][0]["resource"]
    assert record["status"] == "stopped"
    with app.web.services.db.read_session() as session:
        assert session.scalars(select(TaskInvitation)).one().address is None


def test_a_measure_falling_due_gets_one_task_per_due_date(fhir: Fhir, app: Flask, settings: Settings) -> None:
    services = app.web.services
    fhir.create(builders.questionnaire())
    fhir.create(builders.response(authored="2024-01-15T10:00:00Z"))
    services_on = type(services)(**{**{f: getattr(services, f) for f in services.__slots__},  # type: ignore[attr-defined]
                                    "settings": settings.with_(auto_tasks=True, schedule=(("*", 28),))})  # fmt: skip
    assert reminders.create_due_tasks(services, utcnow()) == 0  # off unless PROMS_AUTO_TASKS=on
    assert reminders.create_due_tasks(services_on, utcnow()) == 1
    assert reminders.create_due_tasks(services_on, utcnow()) == 0
    found = fhir.get("Task?patient=p1&status=requested").get_json()
    (made,) = [e["resource"] for e in found["entry"]]
    assert made["restriction"]["period"]["start"].startswith("2024-02-12")
    assert made["input"][0]["valueCanonical"] == f"{builders.QUESTIONNAIRE_URL}|1.0.0"
    # Cancelled, it is not made again for the same due date.
    assert fhir.put(f"Task/{made['id']}", {**made, "status": "cancelled"}).status_code == 200
    assert reminders.create_due_tasks(services_on, utcnow()) == 0
