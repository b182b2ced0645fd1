"""The clinician dashboard as plain data: safety flags first, then each measure's trend, latest result and profile."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from service.app_ui.charts import profile_chart, trend_chart
from service.app_ui.history import (
    InstrumentHistory,
    LatestResult,
    ScoreSeries,
    instrument_histories,
    latest_result,
    parse_when,
)
from service.app_ui.profile import (
    DomainSummary,
    ItemRating,
    domain_summaries,
    rate_items,
    strengths_and_priorities,
)
from service.app_ui.schedule import DueMeasure, Measure, due_measures
from service.extraction import FLAG_DETAIL
from service.scoring.extensions import as_list, as_mapping

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class SafetyNotice:
    flag_id: str | None
    message: str
    raised: datetime | None
    response_id: str | None


@dataclass(frozen=True)
class ScorePanel:
    chart_id: str
    series: ScoreSeries
    latest: LatestResult
    chart: str  # SVG


@dataclass(frozen=True)
class InstrumentPanel:
    anchor: str
    history: InstrumentHistory
    scores: list[ScorePanel]
    ratings: list[ItemRating]
    profile_items: bool  # the ratings are the instrument's profile items (else all its rated items)
    strengths: list[ItemRating]
    priorities: list[ItemRating]
    domains: list[DomainSummary]
    profile_chart: str | None
    due: DueMeasure | None


@dataclass(frozen=True)
class Dashboard:
    flags: list[SafetyNotice]
    instruments: list[InstrumentPanel]
    due: list[DueMeasure]


def safe_id(*parts: str) -> str:
    return _UNSAFE_ID.sub("-", "-".join(parts)).strip("-")


def safety_notices(flags: Sequence[Mapping[str, Any]]) -> list[SafetyNotice]:
    """Active safety Flags, newest first."""
    notices = []
    for flag in flags:
        if flag.get("status") != "active":
            continue
        response_id = None
        for extension in as_list(flag.get("extension")):
            reference = as_mapping(as_mapping(extension).get("valueReference")).get("reference")
            if as_mapping(extension).get("url") == FLAG_DETAIL and isinstance(reference, str):
                response_id = reference.split("/")[-1]
        code = as_mapping(flag.get("code"))
        message = code.get("text") or next(
            (c.get("display") for c in as_list(code.get("coding")) if as_mapping(c).get("display")), None
        )
        raised = parse_when(as_mapping(flag.get("period")).get("start"))
        notices.append(
            SafetyNotice(
                str(flag["id"]) if flag.get("id") else None,
                str(message or "Safety item raised"),
                raised,
                response_id,
            )
        )
    notices.sort(key=lambda notice: notice.raised or datetime.min, reverse=True)
    return notices


def instrument_panel(history: InstrumentHistory, due: DueMeasure | None) -> InstrumentPanel:
    anchor = safe_id("measure", history.questionnaire_id or history.url)
    scores = []
    for index, series in enumerate(history.series):
        chart_id = safe_id(anchor, str(index), series.definition.link_id)
        scores.append(ScorePanel(chart_id, series, latest_result(series), trend_chart(series, chart_id)))
    ratings = rate_items(history.questionnaire, history.latest_response)
    profile_items = bool(ratings)
    if not ratings:
        ratings = rate_items(history.questionnaire, history.latest_response, profile_only=False)
    strengths, priorities = strengths_and_priorities(ratings)
    chart = None
    if ratings:
        chart = profile_chart(
            ratings,
            safe_id(anchor, "profile"),
            f"{history.title}: answers in the latest response",
            strengths=[r.link_id for r in strengths],
            priorities=[r.link_id for r in priorities],
        )
    return InstrumentPanel(
        anchor=anchor,
        history=history,
        scores=scores,
        ratings=ratings,
        profile_items=profile_items,
        strengths=strengths,
        priorities=priorities,
        domains=domain_summaries(ratings) if profile_items else [],
        profile_chart=chart,
        due=due,
    )


def build_dashboard(
    questionnaires: Mapping[str, Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]],
    observations: Sequence[Mapping[str, Any]],
    flags: Sequence[Mapping[str, Any]],
    schedule: Mapping[str, int],
    today: date,
) -> Dashboard:
    """Everything the dashboard shows (``questionnaires`` by canonical url: those answered and the active ones)."""
    histories = instrument_histories(questionnaires, responses, observations)
    done = {history.url for history in histories}
    measures = [Measure(h.questionnaire_id, h.url, h.title, h.completed[-1]) for h in histories]
    measures += [
        Measure(str(q.get("id")) if q.get("id") else None, url, str(q.get("title") or q.get("name") or url), None)
        for url, q in questionnaires.items()
        if url not in done and q.get("status") == "active"
    ]
    due = due_measures(measures, schedule, today)
    due_by_title = {(d.questionnaire_id, d.title): d for d in due}
    panels = [instrument_panel(h, due_by_title.get((h.questionnaire_id, h.title))) for h in histories]
    return Dashboard(safety_notices(flags), panels, due)


def results_of_response(history: InstrumentHistory, response_id: str) -> list[LatestResult]:
    """Each score of one response in words, its change measured against the response before it."""
    results = []
    for series in history.series:
        upto = []
        for point in series.points:
            upto.append(point)
            if point.response_id == response_id:
                results.append(latest_result(ScoreSeries(series.definition, tuple(upto))))
                break
    return results
