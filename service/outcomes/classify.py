"""Jacobson and Truax's classification of one person's change on one score over a period, and the counts the outcome
Measures report (docs/outcomes.md has the definitions and their sources).

A person's *series* is their scores on one score (one score code) whose effective date lies in the period: how many,
the first and the last. With two or more it is a *paired outcome*. Its change is the last score minus the first:
*reliable* when its size reaches the score's reliable-change threshold, an *improvement* or a *deterioration* by the
score's direction. A person *started in the clinical range* when the first score is on the clinical side of the
cut-off, and *recovered* (clinically significant improvement) when they started there, reliably improved and their
last score is on the other side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from service.outcomes.facts import CLINICAL_CUTOFF, DIRECTION, RELIABLE_CHANGE, ScoreFacts
from service.scoring.interpret import reliable_change

Change = Literal["improved", "deteriorated", "no-reliable-change"]
Category = Literal["people", "paired", "improved", "deteriorated", "no-reliable-change", "clinical-start", "recovered"]
CATEGORIES: tuple[Category, ...] = (
    "people",
    "paired",
    "improved",
    "deteriorated",
    "no-reliable-change",
    "clinical-start",
    "recovered",
)


@dataclass(frozen=True, slots=True)
class Series:
    """One person's scores on one score within the period (ordered by effective date, then as stored)."""

    subject: str  # the Patient id
    count: int
    first: Decimal
    last: Decimal


@dataclass(frozen=True, slots=True)
class Classification:
    paired: bool
    change: Change | None  # None: not paired, or the score has no threshold or direction
    clinical_start: bool  # paired, and the first score on the clinical side (False without a cut-off)
    recovered: bool  # clinical_start, reliably improved, and the last score on the non-clinical side

    def categories(self) -> Iterable[Category]:
        yield "people"
        if self.paired:
            yield "paired"
        if self.change is not None:
            yield self.change
        if self.clinical_start:
            yield "clinical-start"
        if self.recovered:
            yield "recovered"


def classify(series: Series, facts: ScoreFacts) -> Classification:
    """Where one person's series falls (facts the score lacks leave the classes that need them out)."""
    paired = series.count >= 2
    change: Change | None = None
    if paired and facts.reliable_change is not None and facts.direction is not None:
        change = reliable_change(float(series.first), float(series.last), float(facts.reliable_change), facts.direction)
    clinical_start = recovered = False
    if paired and change is not None and facts.clinical_cutoff is not None:
        clinical_start = facts.clinical(series.first)
        recovered = clinical_start and change == "improved" and not facts.clinical(series.last)
    return Classification(paired, change, clinical_start, recovered)


@dataclass
class Tally:
    """How many people fall in each category on one score (and who, when asked for the lists)."""

    facts: ScoreFacts
    counts: dict[Category, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    members: dict[Category, list[str]] | None = None  # None: counts only (flat memory)

    @classmethod
    def new(cls, facts: ScoreFacts, *, with_members: bool) -> Tally:
        return cls(facts, members={category: [] for category in CATEGORIES} if with_members else None)

    def add(self, series: Series) -> Classification:
        found = classify(series, self.facts)
        for category in found.categories():
            self.counts[category] += 1
            if self.members is not None:
                self.members[category].append(series.subject)
        return found


# The Measures ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutcomeMeasure:
    """A built-in outcome Measure: which categories are its populations, and what a score needs to be counted."""

    id: str
    title: str
    initial: Category
    denominator: Category
    numerator: Category
    needs: tuple[str, ...]  # the facts (facts.DIRECTION, ...) a score must have to be counted
    improvement: Literal["increase", "decrease"]  # which way the rate should go
    summary: str  # one line, for the clinician app

    def lacking(self, facts: ScoreFacts) -> list[str]:
        return facts.lacking(self.needs)


PAIRED = OutcomeMeasure(
    "paired-outcomes", "Paired outcomes", "people", "people", "paired", (), "increase",
    "people with a score in the period who have a first and a last (two or more scores)",
)  # fmt: skip
RELIABLE_IMPROVEMENT = OutcomeMeasure(
    "reliable-improvement", "Reliable improvement", "people", "paired", "improved", (DIRECTION, RELIABLE_CHANGE),
    "increase", "of those with paired scores, the last better than the first by at least the reliable-change threshold",
)  # fmt: skip
RELIABLE_DETERIORATION = OutcomeMeasure(
    "reliable-deterioration", "Reliable deterioration", "people", "paired", "deteriorated",
    (DIRECTION, RELIABLE_CHANGE), "decrease",
    "of those with paired scores, the last worse than the first by at least the reliable-change threshold",
)  # fmt: skip
CLINICALLY_SIGNIFICANT = OutcomeMeasure(
    "clinically-significant-improvement", "Clinically significant improvement", "people", "clinical-start",
    "recovered", (DIRECTION, RELIABLE_CHANGE, CLINICAL_CUTOFF), "increase",
    "of those with paired scores who started in the clinical range, reliably improved and ended outside it",
)  # fmt: skip
MEASURES: dict[str, OutcomeMeasure] = {
    measure.id: measure for measure in (PAIRED, RELIABLE_IMPROVEMENT, RELIABLE_DETERIORATION, CLINICALLY_SIGNIFICANT)
}
MEASURE_BASE = "https://recovery-proms.org/fhir/Measure/"


def measure_for(url: str) -> OutcomeMeasure | None:
    """The built-in outcome Measure with this canonical url (``https://recovery-proms.org/fhir/Measure/{id}``)."""
    return MEASURES.get(url.removeprefix(MEASURE_BASE)) if url.startswith(MEASURE_BASE) else None


@dataclass(frozen=True, slots=True)
class Rate:
    numerator: int
    denominator: int

    @property
    def proportion(self) -> Decimal | None:
        if self.denominator == 0:
            return None
        return (Decimal(self.numerator) / Decimal(self.denominator)).quantize(Decimal("0.0001"))

    def words(self) -> str:
        """'2 of 5 (40%)': never a percentage without its denominator."""
        if self.denominator == 0:
            return "0 of 0 (no one to count)"
        percent = Decimal(100 * self.numerator) / Decimal(self.denominator)
        return f"{self.numerator} of {self.denominator} ({percent.quantize(Decimal('1'), ROUND_HALF_UP):f}%)"


def rate(measure: OutcomeMeasure, tally: Tally) -> Rate | None:
    """The Measure's rate on this score, or None when the score lacks a fact the Measure needs."""
    if measure.lacking(tally.facts):
        return None
    return Rate(tally.counts[measure.numerator], tally.counts[measure.denominator])
