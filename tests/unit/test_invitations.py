"""The pure parts of invitations: SDC's Task shape, the completed Task, screens, saved answers shown again, what is
due for a link, and how an open request reads to a clinician."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from service.app_ui.forms import form_items, read_form
from service.cds.cards import CardSettings, PatientData, Source, patient_view_cards
from service.invitations.page import carried_fields, fill_from_response, screens
from service.invitations.reminders import auto_task_id, due_notices
from service.invitations.shape import OpenRequest, check_task, completed, request_text, response_of
from service.store.models import TaskInvitation
from tests.api.tasks import task

NOW = datetime(2026, 12, 10, 12, 0)


def test_a_task_shaped_as_sdc_says_has_no_issues_and_each_shortfall_is_named() -> None:
    assert check_task(task()) == []
    broken: dict[str, Any] = {**task(), "intent": "wish", "for": {"reference": "Practitioner/x"}}
    del broken["requester"], broken["input"], broken["code"]
    assert sorted(issue.expression for issue in check_task(broken)) == [
        "Task.code", "Task.for", "Task.input", "Task.intent", "Task.requester",
    ]  # fmt: skip


def test_the_completed_task_names_the_response_and_ends_its_execution() -> None:
    done = completed(task(), "qr-1", NOW)
    assert done["status"] == "completed"
    assert response_of(done) == "QuestionnaireResponse/qr-1"
    assert done["executionPeriod"] == {"start": "2026-12-10T12:00:00.000Z", "end": "2026-12-10T12:00:00.000Z"}
    assert check_task(done) == []
    assert completed(done, "qr-2", NOW)["output"] == [  # one response output, the latest
        {
            "type": {
                "coding": [{"system": "http://hl7.org/fhir/uv/sdc/CodeSystem/temp", "code": "questionnaire-response"}]
            },
            "valueReference": {"reference": "QuestionnaireResponse/qr-2"},
        }
    ]


def _grouped(groups: int, per_group: int) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "item": [
            {
                "linkId": f"g{g}",
                "type": "group",
                "text": f"Part {g}",
                "item": [{"linkId": f"g{g}q{q}", "type": "integer", "text": f"Q {g}.{q}"} for q in range(per_group)],
            }
            for g in range(groups)
        ],
    }


def test_a_long_grouped_form_is_one_group_per_screen_and_a_short_one_a_single_screen() -> None:
    assert len(screens(form_items(_grouped(3, 5)))) == 3  # 15 questions
    assert len(screens(form_items(_grouped(2, 5)))) == 1  # 10 questions


def test_saved_answers_are_shown_again_and_carried_between_screens() -> None:
    questionnaire = _grouped(3, 5)
    items = form_items(questionnaire)
    saved = {"item": [{"linkId": "g0", "item": [{"linkId": "g0q1", "answer": [{"valueInteger": 7}]}]}]}
    fill_from_response(items, saved)
    carried = carried_fields(items)
    assert carried == [("i-0-1", "7")]
    assert read_form(questionnaire, {"i-0-1": ["7"]}).answers == saved["item"]


def _invitation(made: datetime, days: int = 14) -> TaskInvitation:
    return TaskInvitation(task_id="t1", token_hash="x", created_at=made, expires_at=made + timedelta(days=days),
                          invitee="Patient/p1")  # fmt: skip


def test_reminders_fall_due_by_day_and_expiry_replaces_them() -> None:
    made = datetime(2026, 12, 1, 9, 0)
    assert due_notices(_invitation(made), (3, 7), made + timedelta(days=2)) == []
    assert [n.trigger for n in due_notices(_invitation(made), (3, 7), made + timedelta(days=3))] == ["reminder-due"]
    assert len(due_notices(_invitation(made), (3, 7), made + timedelta(days=8))) == 2
    assert [n.trigger for n in due_notices(_invitation(made), (3, 7), made + timedelta(days=14))] == ["expired"]
    # A new link has notices of its own.
    names = {n.name for n in due_notices(_invitation(made), (3,), made + timedelta(days=4))}
    assert names.isdisjoint(
        n.name for n in due_notices(_invitation(made + timedelta(hours=1)), (3,), made + timedelta(days=4))
    )


def test_an_automatic_task_id_depends_on_the_day_due_only() -> None:
    due = datetime(2026, 12, 1, 9, 0)
    assert auto_task_id("p1", "u", due) == auto_task_id("p1", "u", due + timedelta(hours=5))
    assert auto_task_id("p1", "u", due) != auto_task_id("p1", "u", due + timedelta(days=1))
    assert auto_task_id("p1", "u", due) != auto_task_id("p2", "u", due)


REQUEST = OpenRequest("t1", "PHQ-9", datetime(2026, 12, 2, 9), datetime(2026, 12, 2, 9, 5),
                      (datetime(2026, 12, 9, 9),), datetime(2026, 12, 16, 23, 59))  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (REQUEST, "PHQ-9 sent 2 Dec, reminded 9 Dec, not yet answered"),
        (OpenRequest("t2", "K10", datetime(2026, 11, 1), None, (), datetime(2026, 11, 14, 23, 59)),
         "K10 requested 1 Nov, not yet answered (due 14 Nov)"),
        (OpenRequest("t3", "GAD-7", datetime(2025, 11, 1), datetime(2025, 11, 1), (), None),
         "GAD-7 sent 1 Nov 2025, not yet answered"),
    ],
)  # fmt: skip
def test_an_open_request_reads_as_a_clinician_says_it(request_: OpenRequest, expected: str) -> None:
    assert request_text(request_, NOW) == expected


def test_the_cds_card_lists_open_requests_and_warns_when_one_is_overdue() -> None:
    settings = CardSettings(NOW, "https://proms.test/app/launch", Source("Recovery PROMs", "https://proms.test"))
    (card,) = patient_view_cards(PatientData("p1", requests=(REQUEST,)), settings)
    assert card.summary == "PHQ-9 sent 2 Dec, reminded 9 Dec, not yet answered"
    assert card.indicator == "info"
    late = OpenRequest("t2", "K10", datetime(2026, 11, 1), None, (), datetime(2026, 11, 14, 23, 59))
    (card,) = patient_view_cards(PatientData("p1", requests=(REQUEST, late)), settings)
    assert card.indicator == "warning"
    assert card.summary.startswith("Not yet answered: PHQ-9 sent 2 Dec")
