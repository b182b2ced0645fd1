"""Task/$invite and the completion page a link opens: single use, expiring, throttled, stored as the API stores."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from service.fhir.dates import utcnow
from service.store.models import TaskInvitation
from tests.api import builders
from tests.api.tasks import task
from tests.conftest import Fhir, Keys


@pytest.fixture
def task_id(fhir: Fhir) -> str:
    fhir.create(builders.questionnaire())
    return str(fhir.create(task(due=None, start=None))["id"])


def _invite(fhir: Fhir, task_id: str, body: dict[str, Any] | None = None) -> str:
    response = fhir.post(f"Task/{task_id}/$invite", body) if body else fhir.client.post(f"/fhir/Task/{task_id}/$invite")
    assert response.status_code == 200, response.get_data(as_text=True)
    parameters = {p["name"]: p for p in response.get_json()["parameter"]}
    assert parameters["task"]["valueReference"] == {"reference": f"Task/{task_id}"}
    url: str = parameters["link"]["valueUrl"]
    assert url.startswith("http://proms.test/answer/")
    return url.removeprefix("http://proms.test")


def _rows(app: Flask) -> list[TaskInvitation]:
    with app.web.services.db.read_session() as session:
        return list(session.scalars(select(TaskInvitation)))


def test_invite_makes_a_long_random_link_of_which_only_the_hash_is_kept(fhir: Fhir, app: Flask, task_id: str) -> None:
    path = _invite(fhir, task_id)
    token = path.removeprefix("/answer/")
    assert len(token) >= 43  # 256 bits, base64url
    (row,) = _rows(app)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {getattr(row, c.key) for c in TaskInvitation.__table__.columns}
    assert row.expires_at - row.created_at == timedelta(days=14)
    again = _invite(
        fhir, task_id, {"resourceType": "Parameters", "parameter": [{"name": "validDays", "valueInteger": 3}]}
    )
    assert again != path
    (row,) = _rows(app)  # the new link replaces the old one
    assert row.expires_at - row.created_at == timedelta(days=3)
    assert fhir.client.get(path).status_code == 404
    assert fhir.client.get(again).status_code == 200


def test_the_page_is_the_questionnaire_served_safely(fhir: Fhir, task_id: str) -> None:
    page = fhir.client.get(_invite(fhir, task_id))
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "How is your mood?" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "http" not in page.get_data(as_text=True).split("<body", 1)[1].replace("http://proms.test", "")


def test_answering_completes_the_task_through_the_api_use_case_and_the_link_is_then_gone(
    fhir: Fhir, task_id: str
) -> None:
    path = _invite(fhir, task_id)
    finished = fhir.client.post(path, data={"screen": "0", "action": "finish", "i-0": "4"})
    assert finished.status_code == 303
    assert finished.headers["Location"].endswith("/answer/thank-you")
    assert "Thank you" in fhir.client.get("/answer/thank-you").get_data(as_text=True)
    done = fhir.get(f"Task/{task_id}").get_json()
    assert done["status"] == "completed"
    response_id = done["output"][0]["valueReference"]["reference"].removeprefix("QuestionnaireResponse/")
    stored = fhir.get(f"QuestionnaireResponse/{response_id}").get_json()
    assert stored["status"] == "completed"
    assert stored["basedOn"] == [{"reference": f"Task/{task_id}"}]
    assert stored["item"][0]["answer"] == [{"valueInteger": 4}]
    # The AuditEvent of the answers names the invitee, through the link's client.
    events = fhir.get(f"AuditEvent?entity=QuestionnaireResponse/{response_id}&agent=completion-link").get_json()
    assert events["total"] >= 1
    agent = events["entry"][0]["resource"]["agent"][0]
    assert agent["altId"] == "Patient/p1"
    gone = fhir.client.get(path)
    assert gone.status_code == 410
    assert "already been answered" in gone.get_data(as_text=True)
    assert fhir.client.post(path, data={"action": "finish", "i-0": "1"}).status_code == 410


def test_progress_is_saved_as_an_in_progress_response_and_shown_again(fhir: Fhir, task_id: str) -> None:
    path = _invite(fhir, task_id)
    saved = fhir.client.post(path, data={"screen": "0", "action": "save", "i-0": "7"})
    assert saved.status_code == 303
    drafts = fhir.get("QuestionnaireResponse?status=in-progress").get_json()
    assert drafts["total"] == 1
    assert fhir.get(f"Task/{task_id}").get_json()["status"] == "requested"
    assert 'value="7"' in fhir.client.get(path).get_data(as_text=True)
    fhir.client.post(path, data={"screen": "0", "action": "finish", "i-0": "8"})
    assert fhir.get("QuestionnaireResponse?status=in-progress").get_json()["total"] == 0
    completed = fhir.get("QuestionnaireResponse?status=completed").get_json()
    assert [e["resource"]["id"] for e in completed["entry"]] == [drafts["entry"][0]["resource"]["id"]]


def test_a_bad_answer_is_shown_next_to_its_question_and_nothing_is_stored(fhir: Fhir, task_id: str) -> None:
    path = _invite(fhir, task_id)
    refused = fhir.client.post(path, data={"screen": "0", "action": "finish", "i-0": "four"})
    assert refused.status_code == 422
    assert "Enter a whole number" in refused.get_data(as_text=True)
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 0


def test_an_expired_or_cancelled_link_is_gone(fhir: Fhir, app: Flask, task_id: str) -> None:
    path = _invite(fhir, task_id)
    with app.web.services.db.transaction() as session:
        session.execute(update(TaskInvitation).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert fhir.client.get(path).status_code == 410
    path = _invite(fhir, task_id)
    assert fhir.client.get(path).status_code == 200
    current = fhir.get(f"Task/{task_id}").get_json()
    assert fhir.put(f"Task/{task_id}", {**current, "status": "cancelled"}).status_code == 200
    assert fhir.client.get(path).status_code == 410


def test_unknown_tokens_are_404_and_repeated_failures_are_throttled(fhir: Fhir, task_id: str) -> None:
    good = _invite(fhir, task_id)
    for _ in range(10):
        assert fhir.client.get("/answer/" + "A" * 43).status_code == 404
    assert fhir.client.get("/answer/" + "B" * 43).status_code == 429
    assert fhir.client.get(good).status_code == 429  # from this address, for the rest of the window
    other = fhir.client.get(good, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_invite_is_refused_for_closed_unknown_or_unreachable_tasks(fhir: Fhir, keys: Keys, task_id: str) -> None:
    assert fhir.post("Task/nope/$invite", {"resourceType": "Parameters"}).status_code == 404
    other = fhir.as_token(keys.token("patient/*.cruds", patient="p2"))
    assert other.post(f"Task/{task_id}/$invite", {"resourceType": "Parameters"}).status_code == 404
    reader = fhir.as_token(keys.token("system/Task.rs"))
    assert reader.post(f"Task/{task_id}/$invite", {"resourceType": "Parameters"}).status_code == 403
    bad = {"resourceType": "Parameters", "parameter": [{"name": "validDays", "valueInteger": 400}]}
    assert fhir.post(f"Task/{task_id}/$invite", bad).status_code == 422
    fhir.create(builders.response(basedOn=[{"reference": f"Task/{task_id}"}]))
    closed = fhir.post(f"Task/{task_id}/$invite", {"resourceType": "Parameters"})
    assert closed.status_code == 422
    assert closed.get_json()["issue"][0]["code"] == "business-rule"


PHQ9 = "https://recovery-proms.org/fhir/Questionnaire/phq-9|1.2.0"


def test_a_phq9_answered_through_the_link_is_scored_and_its_observations_stored(fhir: Fhir, app: Flask) -> None:
    from service.questionnaires import load_library

    load_library(app.web.services, app.web.services.settings.questionnaires_dir)
    task_id = fhir.create(task(questionnaire=PHQ9, due=None, start=None))["id"]
    path = _invite(fhir, task_id)
    page = fhir.client.get(path).get_data(as_text=True)
    assert "Little interest or pleasure in doing things" in page  # the instrument's own wording
    # Items 1-9 (field i-1 .. i-9) scored 1,1,0,1,0,0,0,0,0 by option position: a total of 3.
    answers = {f"i-{n}": str(w) for n, w in enumerate([1, 1, 0, 1, 0, 0, 0, 0, 0], start=1)}
    finished = fhir.client.post(path, data={"screen": "0", "action": "finish", **answers})
    assert finished.status_code == 303, finished.get_data(as_text=True)
    done = fhir.get(f"Task/{task_id}").get_json()
    reference = done["output"][0]["valueReference"]["reference"]
    total = fhir.get(f"Observation?derived-from={reference}&code=http://loinc.org|44261-6").get_json()
    assert total["total"] == 1
    observation = total["entry"][0]["resource"]
    assert observation.get("valueInteger", observation.get("valueQuantity", {}).get("value")) == 3
    stored = fhir.get(reference).get_json()
    score = next(i for i in stored["item"] if i["linkId"] == "/44261-6")
    assert score["answer"][0]["valueInteger"] == 3


def test_metrics_give_tasks_by_status_and_the_completion_rate(fhir: Fhir, task_id: str) -> None:
    fhir.create(task(due=None, start=None))  # a second request, not answered
    cancelled = fhir.create(task(due=None, start=None))
    assert fhir.put(f"Task/{cancelled['id']}", {**cancelled, "status": "cancelled"}).status_code == 200
    fhir.create(builders.response(basedOn=[{"reference": f"Task/{task_id}"}]))
    text = fhir.client.get("/metrics").get_data(as_text=True)
    assert 'proms_tasks{status="completed"} 1.0' in text
    assert 'proms_tasks{status="requested"} 1.0' in text
    assert 'proms_tasks{status="cancelled"} 1.0' in text
    assert "proms_task_completion_ratio 0.5" in text  # one of the two not withdrawn


def test_a_saved_draft_deleted_meanwhile_is_not_brought_back(fhir: Fhir, task_id: str) -> None:
    path = _invite(fhir, task_id)
    fhir.client.post(path, data={"screen": "0", "action": "save", "i-0": "2"})
    (draft,) = fhir.get("QuestionnaireResponse?status=in-progress").get_json()["entry"]
    assert fhir.delete(f"QuestionnaireResponse/{draft['resource']['id']}").status_code == 200
    assert 'value="2"' not in fhir.client.get(path).get_data(as_text=True)
    assert fhir.client.post(path, data={"screen": "0", "action": "finish", "i-0": "5"}).status_code == 303
    assert fhir.get(f"QuestionnaireResponse/{draft['resource']['id']}").status_code == 410
    assert fhir.get(f"Task/{task_id}").get_json()["status"] == "completed"


def test_a_long_form_is_asked_one_group_per_screen_and_stored_whole(fhir: Fhir) -> None:
    groups = [
        {
            "linkId": f"g{g}",
            "type": "group",
            "text": f"Part {g + 1}",
            "item": [{"linkId": f"g{g}q{q}", "type": "integer", "text": f"Question {g + 1}.{q + 1}"} for q in range(5)],
        }
        for g in range(3)
    ]
    fhir.create(builders.questionnaire(url="http://proms.test/Questionnaire/long", item=groups))
    task_id = fhir.create(task(questionnaire="http://proms.test/Questionnaire/long|1.0.0", due=None, start=None))["id"]
    path = _invite(fhir, task_id)
    first = fhir.client.get(path).get_data(as_text=True)
    assert "Part 1 of 3" in first and "Question 1.1" in first and "Question 2.1" not in first
    step = fhir.client.post(path, data={"screen": "0", "action": "next", **{f"i-0-{q}": str(q) for q in range(5)}})
    assert step.status_code == 303 and step.headers["Location"].endswith("screen=1")
    second = fhir.client.get(f"{path}?screen=1").get_data(as_text=True)
    assert "Question 2.1" in second and "Question 1.1" not in second
    assert '<input type="hidden" name="i-0-4" value="4">' in second  # the first screen's answers travel along
    assert fhir.get("QuestionnaireResponse?status=in-progress").get_json()["total"] == 1
    carried = {f"i-0-{q}": str(q) for q in range(5)}
    fhir.client.post(path, data={"screen": "1", "action": "next", **carried, **{f"i-1-{q}": "1" for q in range(5)}})
    last = fhir.client.get(f"{path}?screen=2").get_data(as_text=True)
    assert "Finish and send" in last and "Save and continue" not in last
    answers = {**carried, **{f"i-1-{q}": "1" for q in range(5)}, **{f"i-2-{q}": "2" for q in range(5)}}
    assert fhir.client.post(path, data={"screen": "2", "action": "finish", **answers}).status_code == 303
    done = fhir.get(f"Task/{task_id}").get_json()
    stored = fhir.get(done["output"][0]["valueReference"]["reference"]).get_json()
    assert [len(group["item"]) for group in stored["item"]] == [5, 5, 5]
    assert stored["item"][0]["item"][4]["answer"] == [{"valueInteger": 4}]


def test_the_score_is_shown_only_when_the_organisation_turns_that_on(
    fhir: Fhir, app: Flask, settings: Any, keys: Keys
) -> None:
    from service.app import create_app
    from service.questionnaires import load_library

    load_library(app.web.services, app.web.services.settings.questionnaires_dir)
    answers = {f"i-{n}": str(w) for n, w in enumerate([1, 1, 0, 1, 0, 0, 0, 0, 0], start=1)}
    plain = fhir.client.post(_invite(fhir, fhir.create(task(questionnaire=PHQ9, due=None, start=None))["id"]),
                             data={"action": "finish", **answers})  # fmt: skip
    assert plain.status_code == 303
    assert "score" not in fhir.client.get(plain.headers["Location"]).get_data(as_text=True).lower()
    showing = create_app(settings.with_(link_show_score=True))
    try:
        client = Fhir(showing.test_client()).as_token(keys.token())
        path = _invite(client, client.create(task(questionnaire=PHQ9, due=None, start=None))["id"])
        shown = client.client.post(path, data={"action": "finish", **answers})
        assert shown.status_code == 200
        page = shown.get_data(as_text=True)
        assert "Your score" in page and "<dd>3</dd>" in page
        assert shown.headers["Cache-Control"] == "no-store"
    finally:
        showing.web.services.db.dispose()
