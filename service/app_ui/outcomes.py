"""The outcomes page's view, from the same tallies the MeasureReports are made of: per score, each outcome Measure's
rate with its counts ("2 of 5 (40%)", never a percentage alone), a bar chart of them, and the same figures as CSV."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from service.app_ui.charts import RateBar, rate_bars
from service.outcomes.classify import MEASURE_BASE, MEASURES, OutcomeMeasure, Rate, Tally, rate
from service.outcomes.report import facts_used

CSV_COLUMNS = (
    "period_start", "period_end", "subject", "score", "score_system", "score_code", "instrument", "measure",
    "measure_url", "numerator", "denominator", "initial_population", "rate", "rate_text", "not_counted_because",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MeasureRate:
    measure: OutcomeMeasure
    rate: Rate | None  # None: the score lacks a fact this Measure needs
    initial: int
    lacking: tuple[str, ...]

    @property
    def text(self) -> str:
        if self.rate is None:
            return "Not counted: " + "; ".join(self.lacking)
        return self.rate.words()


@dataclass(frozen=True, slots=True)
class ScoreOutcomes:
    anchor: str
    name: str
    instrument: str
    system: str
    code: str
    facts: str  # the facts used, in words
    people: int
    rates: tuple[MeasureRate, ...]

    @property
    def chart(self) -> str:
        bars = [
            RateBar(entry.measure.title, entry.rate.numerator, entry.rate.denominator, entry.text,
                    worse=entry.measure.improvement == "decrease")
            for entry in self.rates if entry.rate is not None
        ]  # fmt: skip
        return rate_bars(bars, title=f"{self.name}: outcome rates", chart_id=f"{self.anchor}-chart")


@dataclass(frozen=True, slots=True)
class OutcomesView:
    scores: tuple[ScoreOutcomes, ...]  # the scores someone was measured on in the period
    unmeasured: tuple[str, ...]  # the scores nobody was measured on, with their instrument


def _anchor(system: str, code: str) -> str:
    return "score-" + re.sub(r"[^a-z0-9]+", "-", f"{system.rsplit('/', 1)[-1]}-{code}".lower()).strip("-")


def _rates(tally: Tally, measures: Sequence[OutcomeMeasure]) -> tuple[MeasureRate, ...]:
    return tuple(
        MeasureRate(measure, rate(measure, tally), tally.counts[measure.initial], tuple(measure.lacking(tally.facts)))
        for measure in measures
    )


def build_outcomes_view(tallies: Sequence[Tally], measures: Sequence[OutcomeMeasure] | None = None) -> OutcomesView:
    chosen = list(measures if measures is not None else MEASURES.values())
    scores, unmeasured = [], []
    for tally in tallies:
        facts = tally.facts
        if tally.counts["people"] == 0:
            unmeasured.append(f"{facts.name} ({facts.instrument})")
            continue
        scores.append(
            ScoreOutcomes(
                anchor=_anchor(facts.system, facts.code),
                name=facts.name,
                instrument=facts.instrument,
                system=facts.system,
                code=facts.code,
                facts=facts_used(facts),
                people=tally.counts["people"],
                rates=_rates(tally, chosen),
            )
        )
    scores.sort(key=lambda score: -score.people)  # the most measured first (a stable sort keeps library order)
    return OutcomesView(tuple(scores), tuple(unmeasured))


def outcomes_csv(view: OutcomesView, *, subject: str, period_start: str, period_end: str) -> str:
    """Every rate of the page as CSV rows, one per score and Measure (the rate as a proportion, 0 to 1)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for score in view.scores:
        for entry in score.rates:
            found = entry.rate
            proportion = found.proportion if found is not None else None
            writer.writerow(
                [
                    period_start, period_end, subject, score.name, score.system, score.code, score.instrument,
                    entry.measure.title, MEASURE_BASE + entry.measure.id,
                    found.numerator if found else "", found.denominator if found else "", entry.initial,
                    f"{proportion:f}" if proportion is not None else "", found.words() if found else "",
                    "; ".join(entry.lacking),
                ]
            )  # fmt: skip
    return buffer.getvalue()
