"""Next due dates: the schedule by Questionnaire id or url ('*' the default, else 28 days), overdue first.

"Due" means due now (overdue, due today, scheduled and never done); a later date is only "next due".
"""

from __future__ import annotations

from datetime import date, datetime

from service.app_ui.schedule import Measure, describe_due, due_detail, due_measures, interval_days

TODAY = date(2026, 3, 31)


def test_interval_by_id_then_url_then_star_then_28_days() -> None:
    schedule = {"phq-9": 14, "http://x/Questionnaire/k10": 84, "*": 56}
    assert interval_days(schedule, "phq-9", "http://x/Questionnaire/phq-9") == 14
    assert interval_days(schedule, "k10", "http://x/Questionnaire/k10") == 84
    assert interval_days(schedule, "gad-7", "http://x/Questionnaire/gad-7") == 56
    assert interval_days({}, "gad-7", "u") == 28


def test_due_dates_overdue_first_and_scheduled_but_never_done_due_now() -> None:
    measures = [
        Measure("qpr-15", "u/qpr", "QPR-15", datetime(2026, 3, 20, 10)),  # due 17 Apr
        Measure("phq-9", "u/phq", "PHQ-9", datetime(2026, 3, 1, 23, 59)),  # due 29 Mar: 2 days late
        Measure("k10", "u/k10", "K10", datetime(2026, 1, 6)),  # due 31 Mar: today
        Measure("gad-7", "u/gad", "GAD-7", None),  # scheduled, never done
        Measure("dialog", "u/dialog", "DIALOG", None),  # not scheduled, never done: not listed
        Measure("core-10", "u/core", "CORE-10", datetime(2025, 12, 1)),  # due 29 Dec: 92 days late
    ]
    due = due_measures(measures, {"k10": 84, "gad-7": 28}, TODAY)
    assert [(d.questionnaire_id, d.status, d.due, d.days_overdue) for d in due] == [
        ("core-10", "overdue", date(2025, 12, 29), 92),
        ("phq-9", "overdue", date(2026, 3, 29), 2),
        ("k10", "due-today", date(2026, 3, 31), 0),
        ("gad-7", "not-started", TODAY, 0),
        ("qpr-15", "not-yet-due", date(2026, 4, 17), 0),
    ]
    assert [d.overdue for d in due] == [True, True, False, False, False]
    assert [d.due_now for d in due] == [True, True, True, True, False]
    assert [describe_due(d) for d in due] == [
        "Overdue by 92 days (was due 29 Dec 2025)",
        "Overdue by 2 days (was due 29 Mar 2026)",
        "Due today",
        "Due now: not completed yet",
        "Next due 17 Apr 2026",
    ]
    assert [due_detail(d) for d in due] == [
        "was due 29 Dec 2025, 92 days ago",
        "was due 29 Mar 2026, 2 days ago",
        "due today",
        "scheduled, not completed yet",
        "next due 17 Apr 2026",
    ]


def test_an_interval_of_zero_means_never_due() -> None:
    measures = [Measure("dialog", "u/dialog", "DIALOG", datetime(2025, 1, 1)), Measure("k10", "u/k10", "K10", None)]
    assert due_measures(measures, {"dialog": 0, "k10": 0}, TODAY) == []


def test_one_day_late_reads_in_the_singular() -> None:
    (due,) = due_measures([Measure("x", "u", "X", datetime(2026, 3, 2))], {}, TODAY)
    assert describe_due(due) == "Overdue by 1 day (was due 30 Mar 2026)"
