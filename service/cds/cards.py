"""The patient-view cards, in the clinician app's attention order (pure).

Unreviewed safety items first, then reliable deteriorations, scores in their most severe band, measures due,
reliable improvements, and last the latest score of every measure. Each summary is under 140 characters and
states the fact itself (which item was answered how, which score is where); each instrument is quoted by its
headline score, its other scores are in the card's detail.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from service.app_ui.bands import band_concern
from service.cds.measures import Measure, SafetyConcern, ScoreResult
from service.invitations.shape import OpenRequest, request_text

DEFAULT_INTERVAL_DAYS = 28
MAX_SUMMARY = 139  # CDS Hooks: a summary is fewer than 140 characters
# Card uuids are derived from what a card says, so the same situation gives the same uuid on every call.
CARD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://recovery-proms.org/cds-services/recovery-proms")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
VERDICTS = {
    "improved": "reliable improvement",
    "deteriorated": "reliable deterioration",
    "no-reliable-change": "no reliable change",
}
_MARKDOWN_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]<>#|"})


@dataclass(frozen=True, slots=True)
class Source:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str
    type: str = "smart"
    app_context: str | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """One CDS Hooks card (fields as in the specification, snake_case)."""

    uuid: str
    summary: str
    indicator: str  # info | warning | critical
    detail: str  # GitHub-flavoured markdown
    source: Source
    links: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class PatientData:
    """What is known of one patient: the latest response to each instrument, and unreviewed safety flags."""

    patient_id: str
    measures: tuple[Measure, ...] = ()
    concerns: tuple[SafetyConcern, ...] = ()
    requests: tuple[OpenRequest, ...] = ()  # open Tasks asking the person to complete a measure


@dataclass(frozen=True, slots=True)
class CardSettings:
    now: datetime  # UTC, naive like the stored dates
    app_launch_url: str  # the clinician app's SMART launch URL
    source: Source
    schedule: Mapping[str, int] = field(default_factory=dict)  # days by Questionnaire id or url; '*' the default


# wording ---------------------------------------------------------------------------------------------------


def day_text(value: datetime, now: datetime) -> str:
    """'3 Mar' this year, '3 Mar 2025' otherwise (short, for summaries)."""
    text = f"{value.day} {MONTHS[value.month - 1][:3]}"
    return text if value.year == now.year else f"{text} {value.year}"


def long_day_text(value: datetime, now: datetime) -> str:
    """'3 March' this year, '3 March 2025' otherwise (for card details)."""
    text = f"{value.day} {MONTHS[value.month - 1]}"
    return text if value.year == now.year else f"{text} {value.year}"


def number_text(value: float) -> str:
    """12, 4.5, 3.25: no trailing zeros, no binary noise."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def band_text(display: str) -> str:
    """'Moderate' -> 'moderate' (as in running text); an abbreviation such as 'GAD' keeps its capitals."""
    if len(display) > 1 and display[1].isupper():
        return display
    return display[:1].lower() + display[1:]


def markdown_text(text: str) -> str:
    return text.translate(_MARKDOWN_SPECIAL)


def fit(text: str, keep: str = "") -> str:
    """``text + keep`` in fewer than 140 characters, shortening ``text`` (with an ellipsis) if need be."""
    if len(text) + len(keep) <= MAX_SUMMARY:
        return text + keep
    room = max(MAX_SUMMARY - len(keep) - 1, 0)
    return text[:room].rstrip(" ,;:") + "…" + keep


def fit_list(prefix: str, entries: list[str]) -> str:
    """``prefix`` and as many whole entries as fit in fewer than 140 characters, then how many were left out."""
    for shown in range(len(entries), 0, -1):
        left = len(entries) - shown
        text = prefix + "; ".join(entries[:shown]) + (f"; and {left} more" if left else "")
        if len(text) <= MAX_SUMMARY:
            return text
    return fit(prefix + entries[0] if entries else prefix)


def value_text(score: ScoreResult) -> str:
    """'12 (moderate)'."""
    band = f" ({band_text(score.band)})" if score.band else ""
    return f"{number_text(score.value)}{band}"


def score_headline(score: ScoreResult, name: str | None = None) -> str:
    """'PHQ-9 12 (moderate)'."""
    return f"{name or score.name} {value_text(score)}"


def since_text(score: ScoreResult, now: datetime, *, long: bool = False) -> str:
    if not score.previous_completed:
        return "last time"
    return f"on {(long_day_text if long else day_text)(score.previous_completed, now)}"


def movement_text(score: ScoreResult, now: datetime, *, long: bool = False) -> str | None:
    """'4 lower than on 3 Mar' (None when there is nothing to compare with)."""
    if score.change is None or score.difference is None:
        return None
    when = since_text(score, now, long=long)
    if score.difference == 0:
        return f"the same as {when}"
    direction = "higher" if score.difference > 0 else "lower"
    return f"{number_text(abs(score.difference))} {direction} than {when}"


def change_text(score: ScoreResult, now: datetime, *, long: bool = False) -> str:
    """'4 lower than on 3 Mar: no reliable change' (or why there is nothing to compare)."""
    movement = movement_text(score, now, long=long)
    if movement is None:
        return "no earlier score to compare"
    verdict = VERDICTS.get(score.change or "")
    return f"{movement}: {verdict}" if verdict else movement


def score_sentence(score: ScoreResult, now: datetime, name: str | None = None) -> str:
    """'PHQ-9 12 (moderate), 4 lower than on 3 Mar: no reliable change'."""
    return f"{score_headline(score, name)}, {change_text(score, now)}"


# cards -----------------------------------------------------------------------------------------------------


def card_uuid(*parts: str) -> str:
    return str(uuid.uuid5(CARD_NAMESPACE, "|".join(parts)))


def flag_card_uuid(flag_id: str) -> str:
    """A safety card's uuid is its Flag's id (the service gives Flags UUIDs), so feedback finds the Flag."""
    try:
        return str(uuid.UUID(flag_id))
    except ValueError:
        return card_uuid("flag", flag_id)


def _app_link(label: str, settings: CardSettings, context: Mapping[str, Any]) -> Link:
    return Link(label, settings.app_launch_url, "smart", json.dumps(dict(context), separators=(",", ":")))


def safety_summary(concern: SafetyConcern, now: datetime) -> str:
    """'Safety: PHQ-9 item 9 answered 'More than half the days' on 28 Nov, not reviewed' (the answer shortened
    rather than anything else, should it be very long)."""
    when = f" on {day_text(concern.raised, now)}" if concern.raised else ""
    answered = concern.answered
    if answered is None or not answered.answer:
        where = f" ({concern.instrument})" if concern.instrument and concern.instrument not in concern.message else ""
        return fit(f"Safety: {concern.message}", f"{where}{when}, not reviewed")
    item = f"{concern.instrument} {answered.item}" if concern.instrument else answered.item
    head, tail = f"Safety: {item} answered '", f"'{when}, not reviewed"
    room = MAX_SUMMARY - len(head) - len(tail)
    answer = answered.answer if len(answered.answer) <= room else answered.answer[: max(room - 1, 0)].rstrip() + "…"
    return fit(f"{head}{answer}{tail}")


def safety_card(concern: SafetyConcern, patient: PatientData, settings: CardSettings) -> Card:
    now = settings.now
    on = f" on {long_day_text(concern.raised, now)}" if concern.raised else ""
    answered = concern.answered
    lines = ["**Safety item not yet reviewed by a clinician.**"]
    if answered is not None and answered.answer:
        what = f"{concern.instrument} {answered.item}" if concern.instrument else answered.item.capitalize()
        lines.append(
            f"{markdown_text(what)}, “{markdown_text(answered.text)}”, was answered "
            f"**“{markdown_text(answered.answer)}”**{on}."
        )
    else:
        raised_by = f"the {concern.instrument}" if concern.instrument else "a response"
        lines.append(f"Raised by {markdown_text(raised_by)}{' completed' + on if on else ''}.")
    lines.append(markdown_text(concern.message))
    lines.append("Accepting or dismissing this card records the safety flag as reviewed.")
    context = {"patient": patient.patient_id, "flag": concern.flag_id}
    if concern.response_id:
        context["questionnaireResponse"] = concern.response_id
    return Card(
        uuid=flag_card_uuid(concern.flag_id),
        summary=safety_summary(concern, now),
        indicator="critical",
        detail="\n\n".join(lines),
        source=settings.source,
        links=(_app_link("Review in Recovery PROMs", settings, context),),
    )


def score_concern(score: ScoreResult) -> str | None:
    """most-severe | critical | None: the same rule as the app's attention summary."""
    return band_concern(score.band_severity, score.most_severe_band)


def warning_reasons(score: ScoreResult, now: datetime) -> list[str]:
    """Why a score needs a clinician's attention (empty when it does not)."""
    reasons = []
    if score.change == "deteriorated":
        movement = movement_text(score, now)
        reasons.append(f"reliably worse, {movement}" if movement else "reliably worse")
    concern = score_concern(score)
    if concern == "most-severe":
        reasons.append("in the most severe band")
    elif concern == "critical":
        reasons.append("in a band marked critical")
    return reasons


def _score_lines(measure: Measure, now: datetime) -> list[str]:
    """One markdown line per score: the headline first, the instrument's other scores indented under it."""
    lines = []
    for index, score in enumerate(measure.scores):
        name = measure.headline_name if index == 0 else score.name
        words = [change_text(score, now, long=True)]
        concern = score_concern(score)
        if concern == "most-severe":
            words.append("the most severe band of this score")
        elif concern == "critical":
            words.append("a band marked critical")
        text = f"**{markdown_text(name)}** {markdown_text(value_text(score))}, {markdown_text('; '.join(words))}"
        lines.append(f"- {text}" if index == 0 else f"    - {text}")
    return lines


def warning_card(measure: Measure, patient: PatientData, settings: CardSettings) -> Card:
    """One card per instrument: the summary quotes its headline score (or the first score that needs attention)."""
    now = settings.now
    flagged = [score for score in measure.scores if warning_reasons(score, now)]
    shown = measure.headline if measure.headline in flagged else flagged[0]
    name = measure.headline_name if shown is measure.headline else shown.name
    detail = [
        f"{markdown_text(measure.instrument)} completed on {long_day_text(measure.completed, now)}:",
        "\n".join(_score_lines(measure, now)),
    ]
    context = {
        "patient": patient.patient_id,
        "questionnaire": measure.questionnaire_url,
        "questionnaireResponse": measure.response_id,
    }
    return Card(
        uuid=card_uuid("warning", patient.patient_id, measure.response_id, shown.key),
        summary=fit(f"{score_headline(shown, name)}: {'; '.join(warning_reasons(shown, now))}"),
        indicator="warning",
        detail="\n\n".join(detail),
        source=settings.source,
        links=(_app_link(f"Open {measure.instrument} in Recovery PROMs", settings, context),),
    )


def improvement_card(measure: Measure, patient: PatientData, settings: CardSettings) -> Card:
    now = settings.now
    improved = [score for score in measure.scores if score.change == "improved"]
    shown = measure.headline if measure.headline in improved else improved[0]
    name = measure.headline_name if shown is measure.headline else shown.name
    movement = movement_text(shown, now)
    context = {
        "patient": patient.patient_id,
        "questionnaire": measure.questionnaire_url,
        "questionnaireResponse": measure.response_id,
    }
    return Card(
        uuid=card_uuid("improved", patient.patient_id, measure.response_id, shown.key),
        summary=fit(f"{score_headline(shown, name)}: reliably better" + (f", {movement}" if movement else "")),
        indicator="info",
        detail="\n\n".join(
            [
                f"{markdown_text(measure.instrument)} completed on {long_day_text(measure.completed, now)}:",
                "\n".join(_score_lines(measure, now)),
            ]
        ),
        source=settings.source,
        links=(_app_link(f"Open {measure.instrument} in Recovery PROMs", settings, context),),
    )


def summary_card(patient: PatientData, settings: CardSettings) -> Card:
    """Every instrument's headline score, newest first; the instruments' other scores in the detail."""
    now = settings.now
    measures = sorted(patient.measures, key=lambda m: m.completed, reverse=True)
    entries = [
        score_headline(m.headline, m.headline_name) if m.headline is not None else f"{m.instrument} (no score)"
        for m in measures
    ]
    scored = [m for m in measures if m.headline is not None]
    if len(measures) == 1 and scored:
        summary = fit(score_sentence(scored[0].headline, now, scored[0].headline_name))  # type: ignore[arg-type]
    else:
        summary = fit_list("Latest: ", entries)
    lines = []
    for measure in measures:
        completed = long_day_text(measure.completed, now)
        if not measure.scores:
            lines.append(f"- **{markdown_text(measure.instrument)}** completed {completed}, no score")
            continue
        score_lines = _score_lines(measure, now)
        score_lines[0] += f" (completed {completed})"
        lines.extend(score_lines)
        if measure.unscored_after is not None:
            later = long_day_text(measure.unscored_after, now)
            lines.append(
                f"  - a later {markdown_text(measure.instrument)}, completed {later}, has too few answers to score: "
                "the scores above are the latest"
            )
    return Card(
        uuid=card_uuid("summary", patient.patient_id, *(m.response_id for m in measures)),
        summary=summary,
        indicator="info",
        detail="Latest completed measures, newest first:\n\n" + "\n".join(lines),
        source=settings.source,
        links=(_app_link("Open trends in Recovery PROMs", settings, {"patient": patient.patient_id}),),
    )


def interval_days(measure: Measure, schedule: Mapping[str, int]) -> int:
    """How often the measure is due: by Questionnaire id, then url, then the '*' default (0: not scheduled)."""
    for key in (measure.questionnaire_id, measure.questionnaire_url, "*"):
        if key is not None and key in schedule:
            return schedule[key]
    return DEFAULT_INTERVAL_DAYS


def overdue_measures(measures: Sequence[Measure], settings: CardSettings) -> list[tuple[Measure, int, int]]:
    """(measure, interval, days since completed) of each measure completed before and now past its interval,
    most overdue first."""
    overdue = []
    for measure in measures:
        interval = interval_days(measure, settings.schedule)
        if interval <= 0:
            continue
        elapsed = settings.now - measure.completed
        if elapsed > timedelta(days=interval):
            overdue.append((measure, interval, elapsed.days))
    overdue.sort(key=lambda entry: (entry[1] - entry[2], entry[0].instrument))
    return overdue


def overdue_card(overdue: list[tuple[Measure, int, int]], patient: PatientData, settings: CardSettings) -> Card:
    now = settings.now
    if len(overdue) == 1:
        measure, interval, days = overdue[0]
        summary = fit(
            f"{measure.instrument} is due: last completed {day_text(measure.completed, now)}, {days} days ago "
            f"(every {interval} days)"
        )
    else:
        summary = fit_list("Due: ", [f"{m.instrument} (last {day_text(m.completed, now)})" for m, _, _ in overdue])
    lines = [
        f"- **{markdown_text(m.instrument)}**: last completed {long_day_text(m.completed, now)}, {days} days ago; "
        f"due every {interval} days ({days - interval} days overdue)"
        for m, interval, days in overdue
    ]
    context = {"patient": patient.patient_id, "questionnaires": [m.questionnaire_url for m, _, _ in overdue]}
    return Card(
        uuid=card_uuid("overdue", patient.patient_id, now.date().isoformat(), *(m.response_id for m, _, _ in overdue)),
        summary=summary,
        indicator="info",
        detail="Measures this person has completed before and is now due to repeat:\n\n" + "\n".join(lines),
        source=settings.source,
        links=(_app_link("Offer in Recovery PROMs", settings, context),),
    )


def requests_card(patient: PatientData, settings: CardSettings) -> Card:
    """The measures the person was asked to complete and has not answered (a warning once one is past its due
    date): "PHQ-9 sent 2 Dec, reminded 9 Dec, not yet answered"."""
    now = settings.now
    texts = [request_text(request, now) for request in patient.requests]
    summary = fit(texts[0]) if len(texts) == 1 else fit_list("Not yet answered: ", texts)
    overdue = any(request.overdue(now) for request in patient.requests)
    return Card(
        uuid=card_uuid("requests", patient.patient_id, *(r.task_id for r in patient.requests)),
        summary=summary,
        indicator="warning" if overdue else "info",
        detail="Measures this person was asked to complete (Task), not yet answered:\n\n"
        + "\n".join(f"- {markdown_text(text)}" for text in texts),
        source=settings.source,
        links=(
            _app_link(
                "Open in Recovery PROMs",
                settings,
                {"patient": patient.patient_id, "tasks": [r.task_id for r in patient.requests]},
            ),
        ),
    )


def patient_view_cards(patient: PatientData, settings: CardSettings) -> list[Card]:
    """Every card for a patient-view, in the app's attention order: unreviewed safety items (newest first),
    reliable deteriorations, scores in their most severe band, measures due, reliable improvements, then the
    latest score of every measure. One card per instrument in each; no data, no cards."""
    now = settings.now
    concerns = sorted(patient.concerns, key=lambda c: c.raised or datetime.min, reverse=True)
    cards = [safety_card(concern, patient, settings) for concern in concerns]
    newest_first = sorted(patient.measures, key=lambda m: m.completed, reverse=True)
    worse = [m for m in newest_first if any(s.change == "deteriorated" for s in m.scores)]
    severe = [m for m in newest_first if m not in worse and any(warning_reasons(s, now) for s in m.scores)]
    cards += [warning_card(measure, patient, settings) for measure in worse + severe]
    overdue = overdue_measures(patient.measures, settings)
    if overdue:
        cards.append(overdue_card(overdue, patient, settings))
    if patient.requests:
        cards.append(requests_card(patient, settings))
    better = [m for m in newest_first if m not in worse + severe and any(s.change == "improved" for s in m.scores)]
    cards += [improvement_card(measure, patient, settings) for measure in better]
    if patient.measures:
        cards.append(summary_card(patient, settings))
    return cards
