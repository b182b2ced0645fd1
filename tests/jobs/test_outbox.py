"""The outbox is written in the submission's transaction: committed with it, or not at all."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from service.store import outbox
from service.store.models import OutboxEvent
from service.subscriptions.topics import RESPONSE_COMPLETED
from tests.api.builders import questionnaire, response
from tests.conftest import Fhir


def _events(app: Flask) -> list[OutboxEvent]:
    with app.web.services.db.read_session() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)))


def test_events_commit_with_the_submission_or_not_at_all(
    app: Flask, fhir: Fhir, monkeypatch: pytest.MonkeyPatch
) -> None:
    fhir.create(questionnaire())
    first = fhir.create(response())
    fhir.create(response(status="in-progress"))  # not completed: no event
    assert fhir.post("QuestionnaireResponse", response(questionnaire="urn:unknown")).status_code == 422
    events = _events(app)
    assert [(e.topic, e.focus_id, e.focus_version, e.patient_id) for e in events] == [
        (RESPONSE_COMPLETED.url, first["id"], 1, "p1")
    ]
    fhir.put(f"QuestionnaireResponse/{first['id']}", {**first, "status": "amended"})
    original = outbox.add_events

    def record_then_fail(*args: Any) -> None:
        original(*args)
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(outbox, "add_events", record_then_fail)
    assert fhir.post("QuestionnaireResponse", response(authored="2024-05-01T10:00:00Z")).status_code == 500
    events = _events(app)
    assert [e.focus_version for e in events] == [1, 2]  # the failed submission left no event behind
    assert events[0].seq < events[1].seq
    assert fhir.get("QuestionnaireResponse?status=completed,amended").get_json()["total"] == 1
