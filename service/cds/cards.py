"""The patient-view cards: safety flags, worsening or severe scores, the latest scores, overdue measures (pure)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from service.cds.measures import Measure, SafetyConcern, ScoreResult

DEFAULT_INTERVAL_DAYS = 28
MAX_SUMMARY = 139  # CDS Hooks: a summary is fewer than 140 characters
INDICATOR_ORDER = {"critical": 0, "warning": 1, "info": 2}
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


@dataclass(frozen=True, slots=True)
class CardSettings:
    now: datetime  # UTC, naive like the stored dates
    app_launch_url: str  # the clinician app's SMART launch URL
    source: Source
    schedule: Mapping[str, int] = field(default_factory=dict)  # days by Questionnaire id or url; '*' the default


# wording ---------------------------------------------------------------------------------------------------


def day_text(value: datetime, now: datetime) -> str:
    """'3 March' this year, '3 March 2025' otherwise."""
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


def value_text(score: ScoreResult) -> str:
    """'12 (moderate)'."""
    band = f" ({band_text(score.band)})" if score.band else ""
    return f"{number_text(score.value)}{band}"


def score_headline(score: ScoreResult) -> str:
    """'PHQ-9 12 (moderate)'."""
    return f"{score.name} {value_text(score)}"


def since_text(score: ScoreResult, now: datetime) -> str:
    return f"on {day_text(score.previous_completed, now)}" if score.previous_completed else "last time"


def change_text(score: ScoreResult, now: datetime) -> str:
    """'4 lower than on 3 March: no reliable change' (or why there is nothing to compare)."""
    if score.change is None or score.difference is None:
        return "no earlier score to compare"
    when = since_text(score, now)
    if score.difference == 0:
        movement = f"the same as {when}"
    else:
        direction = "higher" if score.difference > 0 else "lower"
        movement = f"{number_text(abs(score.difference))} {direction} than {when}"
    verdict = VERDICTS.get(score.change)
    return f"{movement}: {verdict}" if verdict else movement


def score_sentence(score: ScoreResult, now: datetime) -> str:
    """'PHQ-9 12 (moderate), 4 lower than on 3 March: no reliable change'."""
    return f"{score_headline(score)}, {change_text(score, now)}"


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


def safety_card(concern: SafetyConcern, patient: PatientData, settings: CardSettings) -> Card:
    raised = day_text(concern.raised, settings.now) if concern.raised else None
    named = concern.instrument and not concern.message.startswith(concern.instrument)
    where = [part for part in (concern.instrument if named else None, raised) if part]
    suffix = f" ({', '.join(where)})" if where else ""
    raised_by = f"the {concern.instrument} " if concern.instrument else "a response "
    when = f"completed on {raised} " if raised else ""
    detail = (
        f"**{markdown_text(concern.message)}**\n\n"
        f"Raised by {markdown_text(raised_by)}{when}and not yet reviewed by a clinician.\n\n"
        "Accepting or dismissing this card records the safety flag as reviewed."
    )
    context = {"patient": patient.patient_id, "flag": concern.flag_id}
    if concern.response_id:
        context["questionnaireResponse"] = concern.response_id
    return Card(
        uuid=flag_card_uuid(concern.flag_id),
        summary=fit(f"Safety: {concern.message}", suffix),
        indicator="critical",
        detail=detail,
        source=settings.source,
        links=(_app_link("Review in Recovery PROMs", settings, context),),
    )


def warning_reasons(score: ScoreResult, now: datetime) -> list[str]:
    """Why a score needs a clinician's attention (empty when it does not)."""
    reasons = []
    if score.change == "deteriorated":
        reasons.append(f"reliably worse than {since_text(score, now)}")
    if score.most_severe_band and score.band_severity in ("warning", "critical"):
        reasons.append("in the most severe band")
    elif score.band_severity == "critical":
        reasons.append("in a band marked critical")
    return reasons


def warning_card(
    measure: Measure, score: ScoreResult, reasons: list[str], patient: PatientData, settings: CardSettings
) -> Card:
    detail = [
        f"**{markdown_text(score_headline(score))}**, {markdown_text(change_text(score, settings.now))}.",
        f"{markdown_text(measure.instrument)} completed on {day_text(measure.completed, settings.now)}.",
    ]
    if score.most_severe_band and score.band:
        detail.append(f"{markdown_text(score.band)} is the most severe band of this score.")
    context = {
        "patient": patient.patient_id,
        "questionnaire": measure.questionnaire_url,
        "questionnaireResponse": measure.response_id,
    }
    return Card(
        uuid=card_uuid("warning", patient.patient_id, measure.response_id, score.key),
        summary=fit(f"{score_headline(score)}: {' and '.join(reasons)}"),
        indicator="warning",
        detail="\n\n".join(detail),
        source=settings.source,
        links=(_app_link(f"Open {measure.instrument} in Recovery PROMs", settings, context),),
    )


def summary_card(patient: PatientData, settings: CardSettings) -> Card:
    measures = sorted(patient.measures, key=lambda m: m.completed, reverse=True)
    scores = [score for measure in measures for score in measure.scores]
    if len(scores) == 1:
        summary = fit(score_sentence(scores[0], settings.now))
    elif scores:
        summary = fit("Latest scores: " + "; ".join(score_headline(score) for score in scores))
    else:
        summary = fit("Latest measures: " + "; ".join(m.instrument for m in measures))
    lines = []
    for measure in measures:
        completed = day_text(measure.completed, settings.now)
        if not measure.scores:
            lines.append(f"- **{markdown_text(measure.instrument)}** completed {completed}, no score")
        for score in measure.scores:
            headline = f"**{markdown_text(score.name)}** {markdown_text(value_text(score))}"
            lines.append(f"- {headline}, {markdown_text(change_text(score, settings.now))} (completed {completed})")
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
        summary = fit(
            "Measures due: " + ", ".join(f"{m.instrument} (last {day_text(m.completed, now)})" for m, _, _ in overdue)
        )
    lines = [
        f"- **{markdown_text(m.instrument)}**: last completed {day_text(m.completed, now)}, {days} days ago; "
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


def patient_view_cards(patient: PatientData, settings: CardSettings) -> list[Card]:
    """Every card for a patient-view, most urgent first: no data, no cards."""
    concerns = sorted(patient.concerns, key=lambda c: c.raised or datetime.min, reverse=True)  # newest first
    cards = [safety_card(concern, patient, settings) for concern in concerns]
    newest_first = sorted(patient.measures, key=lambda m: m.completed, reverse=True)
    for measure in newest_first:
        for score in measure.scores:
            reasons = warning_reasons(score, settings.now)
            if reasons:
                cards.append(warning_card(measure, score, reasons, patient, settings))
    if patient.measures:
        cards.append(summary_card(patient, settings))
    overdue = overdue_measures(patient.measures, settings)
    if overdue:
        cards.append(overdue_card(overdue, patient, settings))
    return sorted(cards, key=lambda card: INDICATOR_ORDER[card.indicator])
