"""The clinician dashboard as plain data: what needs attention first, then each measure's trend, result and answers.

The attention summary comes in one fixed order, the same as the CDS cards (service.cds.cards): safety items
nobody has reviewed, reliable deteriorations, scores in their most severe band, measures due now; then
reliable improvements. A category with nothing in it is left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from service.app_ui.bands import band_concern, shades
from service.app_ui.charts import band_key, trend_chart
from service.app_ui.history import (
    InstrumentHistory,
    LatestResult,
    ScoreSeries,
    canonical_url,
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
from service.app_ui.safety import FlaggedAnswer, flagged_answer, raised_by
from service.app_ui.schedule import DueMeasure, Measure, due_measures
from service.cds.measures import instrument_label
from service.scoring.extensions import as_list, as_mapping

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class SafetyNotice:
    flag_id: str | None
    message: str
    raised: datetime | None
    response_id: str | None
    instrument: str | None = None  # the instrument's short name ("PHQ-9"), when the response is at hand
    answered: FlaggedAnswer | None = None  # the item and the answer that raised the flag, when known


@dataclass(frozen=True)
class ScorePanel:
    chart_id: str
    series: ScoreSeries
    latest: LatestResult
    chart: str  # HTML with SVG
    key: str  # HTML: the bands named in full


@dataclass(frozen=True)
class ScoreAlert:
    """One latest score in the attention summary (a reliable change, or a band that needs attention)."""

    anchor: str  # the id of the score's place on the page
    instrument: str  # short name, e.g. "PHQ-9"
    score: str  # the score's short name, e.g. "PHQ-9 total score"
    latest: LatestResult
    concern: str | None  # most-severe | critical | None (see service.app_ui.bands.band_concern)


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
    due: DueMeasure | None


@dataclass(frozen=True)
class Attention:
    """What a clinician should see first, in this order; each list may be empty (and is then not shown)."""

    safety: list[SafetyNotice]
    deteriorated: list[ScoreAlert]  # reliably worse since the previous response (their band concern noted)
    severe: list[ScoreAlert]  # in the most severe (or a critical) band, without a reliable deterioration
    due: list[DueMeasure]  # due now or overdue
    improved: list[ScoreAlert]  # reliably better

    @property
    def needs_attention(self) -> bool:
        return bool(self.safety or self.deteriorated or self.severe or self.due)


@dataclass(frozen=True)
class Dashboard:
    attention: Attention
    instruments: list[InstrumentPanel]
    schedule: list[DueMeasure]  # every scheduled measure, due now or later

    @property
    def flags(self) -> list[SafetyNotice]:
        return self.attention.safety


def safe_id(*parts: str) -> str:
    return _UNSAFE_ID.sub("-", "-".join(parts)).strip("-")


def safety_notices(
    flags: Sequence[Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]] = (),
    questionnaires: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[SafetyNotice]:
    """Active safety Flags, newest first, each with the item and answer that raised it when the response and its
    Questionnaire (by canonical url) are given."""
    by_id = {str(response.get("id")): response for response in responses}
    notices = []
    for flag in flags:
        if flag.get("status") != "active":
            continue
        response_id = raised_by(flag)
        code = as_mapping(flag.get("code"))
        message = str(
            code.get("text")
            or next((c.get("display") for c in as_list(code.get("coding")) if as_mapping(c).get("display")), None)
            or "Safety item raised"
        )
        response = by_id.get(response_id) if response_id else None
        url = canonical_url(response.get("questionnaire")) if response is not None else None
        questionnaire = (questionnaires or {}).get(url) if url else None
        notices.append(
            SafetyNotice(
                str(flag["id"]) if flag.get("id") else None,
                message,
                parse_when(as_mapping(flag.get("period")).get("start")),
                response_id,
                instrument_label(questionnaire, url) if questionnaire is not None and url else None,
                flagged_answer(questionnaire, response, message),
            )
        )
    notices.sort(key=lambda notice: notice.raised or datetime.min, reverse=True)
    return notices


def _concern(series: ScoreSeries) -> str | None:
    latest = series.points[-1]
    if latest.band is None:
        return None
    colours = shades(series.definition.bands, series.definition.direction)
    shade = next((shade for band, shade in colours.items() if band.band == latest.band), None)
    return band_concern(latest.band.severity, shade is not None and shade.most_severe)


def instrument_panel(history: InstrumentHistory, due: DueMeasure | None) -> InstrumentPanel:
    anchor = safe_id("measure", history.questionnaire_id or history.url)
    scores = []
    for index, series in enumerate(history.series):
        chart_id = safe_id(anchor, str(index), series.definition.link_id)
        latest = latest_result(series)
        scores.append(
            ScorePanel(chart_id, series, latest, trend_chart(series, chart_id), band_key(series, latest.band))
        )
    ratings = rate_items(history.questionnaire, history.latest_response)
    profile_items = bool(ratings)
    if not ratings:
        ratings = rate_items(history.questionnaire, history.latest_response, profile_only=False)
    strengths, priorities = strengths_and_priorities(ratings)
    return InstrumentPanel(
        anchor=anchor,
        history=history,
        scores=scores,
        ratings=ratings,
        profile_items=profile_items,
        strengths=strengths,
        priorities=priorities,
        domains=domain_summaries(ratings) if profile_items else [],
        due=due,
    )


def _alerts(panels: Sequence[InstrumentPanel]) -> tuple[list[ScoreAlert], list[ScoreAlert], list[ScoreAlert]]:
    """(reliably worse, in a band that needs attention but not reliably worse, reliably better)."""
    deteriorated, severe, improved = [], [], []
    for panel in panels:
        label = instrument_label(panel.history.questionnaire, panel.history.url)
        for score in panel.scores:
            concern = _concern(score.series)
            alert = ScoreAlert(score.chart_id, label, score.series.definition.name, score.latest, concern)
            if score.latest.change == "deteriorated":
                deteriorated.append(alert)
            elif concern is not None:
                severe.append(alert)
            elif score.latest.change == "improved":
                improved.append(alert)
    return deteriorated, severe, improved


def _panel_order(panel: InstrumentPanel, flagged: set[str]) -> int:
    """Measures with an unreviewed safety item first, then those reliably worse, then those with a score in a band
    needing attention, then the rest."""
    if panel.history.url in flagged:
        return 0
    if any(score.latest.change == "deteriorated" for score in panel.scores):
        return 1
    if any(_concern(score.series) is not None for score in panel.scores):
        return 2
    return 3


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
    notices = safety_notices(flags, responses, questionnaires)
    urls = {str(r.get("id")): canonical_url(r.get("questionnaire")) for r in responses}
    flagged = {urls[n.response_id] for n in notices if n.response_id in urls}
    panels.sort(key=lambda panel: _panel_order(panel, flagged))  # stable: most recent first within each group
    deteriorated, severe, improved = _alerts(panels)
    attention = Attention(
        safety=notices,
        deteriorated=deteriorated,
        severe=severe,
        due=[measure for measure in due if measure.due_now],
        improved=improved,
    )
    return Dashboard(attention, panels, due)


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
