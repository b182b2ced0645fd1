"""The outcomes page's view: rates with their counts, a chart that says the same, and CSV of the same figures."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from service.app_ui.outcomes import build_outcomes_view, outcomes_csv
from service.outcomes.classify import Series, Tally
from service.outcomes.facts import score_facts
from tests.unit.instruments.library import questionnaire


def tallies() -> list[Tally]:
    found = []
    for facts in score_facts([questionnaire("phq-9"), questionnaire("qpr-15")]):
        tally = Tally.new(facts, with_members=False)
        if facts.code == "44261-6":
            for subject, first, last, count in [("a", 15, 5, 2), ("b", 12, 8, 2), ("c", 8, 16, 2), ("f", 18, 18, 1)]:
                tally.add(Series(subject, count, Decimal(first), Decimal(last)))
        found.append(tally)
    return found


def test_only_scores_someone_was_measured_on_get_a_section_and_every_rate_has_its_counts() -> None:
    view = build_outcomes_view(tallies())
    (phq9,) = view.scores
    assert view.unmeasured == (
        "QPR-15 total score (0–60) (Questionnaire about the Process of Recovery, 15 items (QPR-15))",
    )
    assert phq9.anchor == "score-loinc-org-44261-6" and phq9.people == 4
    assert [entry.text for entry in phq9.rates] == ["3 of 4 (75%)", "1 of 3 (33%)", "1 of 3 (33%)", "1 of 2 (50%)"]
    assert "reliable change 6, lower is better, clinical cut-off 10" in phq9.facts


def test_the_chart_says_each_rate_in_words_and_draws_its_share() -> None:
    (phq9,) = build_outcomes_view(tallies()).scores
    chart = phq9.chart
    assert chart.count('<g class="rate"') == 4
    assert "Reliable deterioration: 1 of 3 (33%)" in chart
    assert 'width="75%"' in chart  # paired outcomes, 3 of 4
    assert 'role="img"' in chart and "<title" in chart and "<desc" in chart


def test_the_csv_has_a_row_per_score_and_measure_and_says_why_a_rate_is_missing() -> None:
    measured = build_outcomes_view(tallies())
    rows = list(csv.DictReader(io.StringIO(outcomes_csv(measured, subject="Group/g", period_start="2026-01-01",
                                                        period_end="2026-06-30"))))  # fmt: skip
    assert len(rows) == 4 and {row["score_code"] for row in rows} == {"44261-6"}
    improvement = next(row for row in rows if row["measure"] == "Reliable improvement")
    assert (improvement["numerator"], improvement["denominator"], improvement["rate_text"]) == (
        "1",
        "3",
        "1 of 3 (33%)",
    )
    assert improvement["rate"] == "0.3333" and improvement["not_counted_because"] == ""

    qpr = [t for t in tallies() if t.facts.code == "qpr-15-total"]
    qpr[0].add(Series("a", 2, Decimal(20), Decimal(40)))
    rows = list(csv.DictReader(io.StringIO(outcomes_csv(build_outcomes_view(qpr), subject="everyone",
                                                        period_start="2026", period_end="2026"))))  # fmt: skip
    not_counted = next(row for row in rows if row["measure"] == "Reliable improvement")
    assert not_counted["numerator"] == "" and not_counted["not_counted_because"] == "no reliable-change threshold"
