"""When each measure is next due: the last completion plus the instrument's interval (PROMS_SCHEDULE, else 28 days).

"Due" means due now: overdue, due today, or scheduled and never completed. A later date is "next due", never
"due"; an interval of 0 means the measure is never due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

DEFAULT_DAYS = 28
ANY_INSTRUMENT = "*"
# Most urgent first.
STATUS_ORDER = {"overdue": 0, "due-today": 1, "not-started": 2, "not-yet-due": 3}
DUE_NOW = ("overdue", "due-today", "not-started")


@dataclass(frozen=True)
class Measure:
    """An instrument the person has completed, or one the schedule names."""

    questionnaire_id: str | None
    url: str
    title: str
    last_completed: datetime | None


@dataclass(frozen=True)
class DueMeasure:
    questionnaire_id: str | None
    title: str
    interval_days: int
    last_completed: date | None
    due: date
    status: str  # overdue | due-today | not-started | not-yet-due
    days_overdue: int

    @property
    def overdue(self) -> bool:
        return self.status == "overdue"

    @property
    def due_now(self) -> bool:
        """Due or overdue (a later date is only "next due")."""
        return self.status in DUE_NOW


def interval_days(schedule: Mapping[str, int], questionnaire_id: str | None, url: str) -> int:
    """The interval for an instrument, by Questionnaire id, then canonical url, then the '*' entry, then 28."""
    for key in (questionnaire_id, url, ANY_INSTRUMENT):
        if key is not None and key in schedule:
            return schedule[key]
    return DEFAULT_DAYS


def is_scheduled(schedule: Mapping[str, int], questionnaire_id: str | None, url: str) -> bool:
    """The schedule names this instrument itself (not only through '*')."""
    return (questionnaire_id is not None and questionnaire_id in schedule) or url in schedule


def due_measures(measures: Sequence[Measure], schedule: Mapping[str, int], today: date) -> list[DueMeasure]:
    """Each completed or explicitly scheduled measure with its next due date, most urgent first (interval 0: left
    out, never due)."""
    due = []
    for measure in measures:
        days = interval_days(schedule, measure.questionnaire_id, measure.url)
        if days <= 0:
            continue
        if measure.last_completed is None:
            if not is_scheduled(schedule, measure.questionnaire_id, measure.url):
                continue
            due.append(DueMeasure(measure.questionnaire_id, measure.title, days, None, today, "not-started", 0))
            continue
        last = measure.last_completed.date()
        next_due = last + timedelta(days=days)
        late = (today - next_due).days
        status = "overdue" if late > 0 else "due-today" if late == 0 else "not-yet-due"
        due.append(DueMeasure(measure.questionnaire_id, measure.title, days, last, next_due, status, max(late, 0)))
    due.sort(key=lambda d: (STATUS_ORDER[d.status], -d.days_overdue, d.due, d.title))
    return due


def describe_due(measure: DueMeasure) -> str:
    """The due date in words ('Overdue by 5 days (due 3 Mar 2026)')."""
    when = f"{measure.due.day} {measure.due:%b %Y}"
    if measure.status == "overdue":
        days = "day" if measure.days_overdue == 1 else "days"
        return f"Overdue by {measure.days_overdue} {days} (was due {when})"
    if measure.status == "due-today":
        return "Due today"
    if measure.status == "not-started":
        return "Due now: not completed yet"
    return f"Next due {when}"


def due_detail(measure: DueMeasure) -> str:
    """What follows 'Overdue:' or 'Due:' in a summary ('was due 3 Mar 2026, 5 days ago')."""
    when = f"{measure.due.day} {measure.due:%b %Y}"
    if measure.status == "overdue":
        days = "day" if measure.days_overdue == 1 else "days"
        return f"was due {when}, {measure.days_overdue} {days} ago"
    if measure.status == "due-today":
        return "due today"
    if measure.status == "not-started":
        return "scheduled, not completed yet"
    return f"next due {when}"
