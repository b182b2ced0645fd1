"""AuditEvent search: every resource and every patient an access touched is found again, by each parameter.

"Who saw this safety flag?" is ``AuditEvent?entity=Flag/{id}&type=read``; "who read anything about this person?"
is ``AuditEvent?patient={id}`` (or ``entity=Patient/{id}``). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from service.config import PROJECT_ROOT
from service.outcomes.library import load_measures
from tests.conftest import Fhir, Keys
from tests.unit.app_ui.builders import answered, questionnaire
from tests.unit.app_ui.conftest import phq9_weights

WARD = "ward-app"  # a clinician's app
OWN = "own-app"  # the person p2's own app


def _submit(fhir: Fhir, subject: str, day: str, total: int, item9: int = 0) -> str:
    response = answered(
        questionnaire("phq-9"),
        phq9_weights(total, item9),
        authored=f"{day}T10:00:00Z",
        response_id="x",
        subject=subject,
    )
    del response["id"]
    return str(fhir.create(response)["id"])


@pytest.fixture
def world(app: Flask, fhir: Fhir, keys: Keys) -> dict[str, Any]:
    """p1's PHQ-9 raised a safety Flag; a clinician's app reads and reviews it, p2's own app tries to read it, and an
    outcome report counts both people."""
    assert fhir.put("Questionnaire/phq-9", questionnaire("phq-9")).status_code == 201
    assert not load_measures(app.web.services, PROJECT_ROOT / "measures").failed
    responses = {
        "p1": [_submit(fhir, "p1", "2026-01-10", 15, item9=1), _submit(fhir, "p1", "2026-04-10", 5)],
        "p2": [_submit(fhir, "p2", "2026-01-12", 12), _submit(fhir, "p2", "2026-03-12", 14)],
    }
    (flag,) = [e["resource"] for e in fhir.get("Flag?patient=p1").get_json()["entry"]]
    ward = fhir.as_token(keys.token("user/Flag.rus user/Observation.rs", client_id=WARD))
    assert ward.get(f"Flag/{flag['id']}").status_code == 200
    assert ward.put(f"Flag/{flag['id']}", {**flag, "status": "inactive"}).status_code == 200
    own = fhir.as_token(keys.token("patient/Flag.rs", patient="p2", client_id=OWN))
    assert own.get(f"Flag/{flag['id']}").status_code == 404  # another person's: as if it did not exist
    report = fhir.get("Measure/reliable-improvement/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-06-30")
    assert report.status_code == 200
    return {"flag": flag["id"], "responses": responses, "report": report.get_json()["id"]}


def _events(fhir: Fhir, query: str) -> list[dict[str, Any]]:
    found = fhir.get(f"AuditEvent?{query}&_count=200")
    assert found.status_code == 200, found.get_json()
    bundle = found.get_json()
    assert bundle["total"] == len(bundle.get("entry", [])), query
    return [entry["resource"] for entry in bundle.get("entry", [])]


def _what(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Each event as (interaction, client, outcome)."""
    return {(e["subtype"][0]["code"], e["agent"][0]["who"]["identifier"]["value"], e["outcome"]) for e in events}


def _names(event: dict[str, Any]) -> set[str]:
    return {entity["what"]["reference"] for entity in event.get("entity", []) if "what" in entity}


def test_who_saw_this_safety_flag(fhir: Fhir, world: dict[str, Any]) -> None:
    flag = f"Flag/{world['flag']}"
    about = _events(fhir, f"entity={flag}")
    assert {("read", WARD, "0"), ("update", WARD, "0"), ("read", OWN, "4")} <= _what(about)
    assert all(flag in _names(event) for event in about)
    assert _what(_events(fhir, f"entity={flag}&type=read&outcome=0")) == {("read", WARD, "0")}
    assert _what(_events(fhir, f"entity={flag}&outcome=4")) == {("read", OWN, "4")}
    # The Flag's id alone (any type), and the absolute URL, find the same events.
    assert {e["id"] for e in _events(fhir, f"entity={world['flag']}")} == {e["id"] for e in about}
    assert {e["id"] for e in _events(fhir, f"entity=http://proms.test/fhir/{flag}")} == {e["id"] for e in about}
    assert _events(fhir, f"entity=Observation/{world['flag']}") == []


def test_every_entity_of_an_event_is_searchable(fhir: Fhir, world: dict[str, Any]) -> None:
    (evaluated,) = _events(fhir, "type=operation-evaluate-measure")
    named = _names(evaluated)
    assert {"Measure/reliable-improvement", f"MeasureReport/{world['report']}", "Patient/p1", "Patient/p2"} <= named
    for reference in sorted(named):
        assert evaluated["id"] in {e["id"] for e in _events(fhir, f"entity={reference}")}, reference


def test_events_about_a_patient_by_patient_and_by_entity(fhir: Fhir, world: dict[str, Any]) -> None:
    for patient in ("p1", "p2"):
        by_patient = _events(fhir, f"patient={patient}")
        assert by_patient, patient
        assert all(f"Patient/{patient}" in _names(event) for event in by_patient)
        same = [_events(fhir, f"patient=Patient/{patient}"), _events(fhir, f"entity=Patient/{patient}")]
        assert all({e["id"] for e in found} == {e["id"] for e in by_patient} for found in same)
    p1 = {e["id"] for e in _events(fhir, "patient=p1")}
    p2 = {e["id"] for e in _events(fhir, "patient=p2")}
    # An outcome report names everyone it counted: the one event is found under each of them.
    (report,) = _events(fhir, "patient=p1&type=operation-evaluate-measure")
    assert report["id"] in p2
    # p1's responses are p1's only; p2's app refused on p1's Flag is about p1 (what it asked for) and p2 (who it is).
    for response in world["responses"]["p1"]:
        (created,) = _events(fhir, f"entity=QuestionnaireResponse/{response}&type=create")
        assert created["id"] in p1 and created["id"] not in p2
    (refused,) = _events(fhir, f"entity=Flag/{world['flag']}&agent={OWN}")
    assert refused["id"] in p2
    assert _events(fhir, "patient=nobody") == []
    assert _events(fhir, "patient=Group/p1") == []  # a patient parameter names a Patient


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"agent={WARD}", {("read", WARD, "0"), ("update", WARD, "0")}),
        (f"agent={OWN}", {("read", OWN, "4")}),
        (f"agent={WARD},{OWN}", {("read", WARD, "0"), ("update", WARD, "0"), ("read", OWN, "4")}),
        ("type=update&action=U", {("update", WARD, "0"), ("update", "test-client", "0")}),  # and the PUT Questionnaire
        (f"action=U&agent={WARD}", {("update", WARD, "0")}),
        ("outcome=4", {("read", OWN, "4")}),
        ("type=operation-evaluate-measure", {("operation-evaluate-measure", "test-client", "0")}),
        ("subtype=operation-evaluate-measure", {("operation-evaluate-measure", "test-client", "0")}),
        (f"subtype=read&outcome=0&agent={WARD}", {("read", WARD, "0")}),
    ],
)
def test_each_parameter_narrows_the_events(
    fhir: Fhir, world: dict[str, Any], query: str, expected: set[tuple[str, str, str]]
) -> None:
    assert _what(_events(fhir, query)) == expected


def test_by_date_action_and_type(fhir: Fhir, world: dict[str, Any]) -> None:
    everything = {e["id"] for e in _events(fhir, "_count=200")}  # (each search of AuditEvents is audited too)
    today = datetime.now(UTC).date()
    assert everything <= {e["id"] for e in _events(fhir, f"date=ge{today}")}
    assert everything <= {e["id"] for e in _events(fhir, f"date={today}")}
    assert _events(fhir, f"date=lt{today - timedelta(days=1)}") == []
    assert _events(fhir, f"date=gt{today + timedelta(days=1)}") == []
    creates = _events(fhir, "action=C")
    assert len(creates) == 4 and {e["subtype"][0]["code"] for e in creates} == {"create"}  # the four responses
    assert {e["id"] for e in _events(fhir, "type=create")} == {e["id"] for e in creates}
    assert {e["action"] for e in _events(fhir, "type=search-type")} == {"E"}


@pytest.fixture
def entity_inserts(app: Flask) -> Iterator[list[tuple[str, bool]]]:
    """Every statement that writes AuditEvent index rows, with whether it was one executemany."""
    seen: list[tuple[str, bool]] = []
    engine = app.web.services.db.engine

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENT_ENTITY"):
            seen.append((statement, executemany))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_an_event_is_indexed_with_one_statement_however_many_entities(
    fhir: Fhir, world: dict[str, Any], entity_inserts: list[tuple[str, bool]]
) -> None:
    report = fhir.get("Measure/reliable-improvement/$evaluate-measure?periodStart=2026-01-01&periodEnd=2026-06-30")
    assert report.status_code == 200
    events = _events(fhir, "type=operation-evaluate-measure")
    assert len(events) == 2 and all(len(_names(event)) >= 4 for event in events)
    assert len(entity_inserts) == 1  # the second report's event: its four or more index rows in one statement


def test_the_capability_statement_declares_every_audit_search(fhir: Fhir) -> None:
    statement = fhir.get("metadata").get_json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    audit = resources["AuditEvent"]
    params = {p["name"]: p["type"] for p in audit["searchParam"]}
    assert {name: params[name] for name in ("entity", "patient", "agent", "date", "type", "subtype", "action")} == {
        "entity": "reference", "patient": "reference", "agent": "token", "date": "date", "type": "token",
        "subtype": "token", "action": "token",
    }  # fmt: skip
    assert params["outcome"] == "token"
    assert "entity=Flag/{id}" in audit["documentation"]
    assert "referenceRange" in resources["Observation"]["documentation"]
    assert "422" in resources["Questionnaire"]["documentation"]
