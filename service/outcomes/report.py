"""Outcome tallies as a FHIR R4 MeasureReport: one stratum per score, its populations, rate and (for a subject-list
report) who is in each population, as contained Lists.

A score that lacks a fact the Measure needs is reported as a stratum without populations whose measureScore is
absent with the reason ``not-applicable`` (the core data-absent-reason extension); why, and which facts were used for
the others, is said in a contained OperationOutcome the report names with the ``cqf-messages`` extension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from service.outcomes.classify import Category, OutcomeMeasure, Tally, rate
from service.outcomes.facts import ScoreFacts

ReportType = Literal["individual", "subject-list", "summary"]
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
IMPROVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
STRATIFIER_SYSTEM = "https://recovery-proms.org/fhir/CodeSystem/measure-stratifier"
CQF_MESSAGES = "http://hl7.org/fhir/StructureDefinition/cqf-messages"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
MESSAGES_ID = "messages"
STRATIFIER = {
    "coding": [{"system": STRATIFIER_SYSTEM, "code": "score", "display": "Instrument score"}],
    "text": "Instrument score (the score Observation's code)",
}


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What was asked: the Measure, the kind of report, whom about (None: everyone the caller may read), when."""

    measure: Mapping[str, Any]  # the stored Measure resource
    outcome: OutcomeMeasure
    report_type: ReportType
    subject: str | None  # "Group/{id}" or "Patient/{id}"
    period_start: str
    period_end: str


def _population(code: str) -> dict[str, Any]:
    return {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}


def _value(facts: ScoreFacts) -> dict[str, Any]:
    codings = [
        {key: coding[key] for key in ("system", "code", "display") if isinstance(coding.get(key), str)}
        for coding in facts.codings
    ]
    return {"coding": codings, "text": facts.name}


def facts_used(facts: ScoreFacts) -> str:
    """The facts a score is counted with, in words: 'reliable change 6, lower is better, clinical cut-off 10 (from
    Questionnaire ...)'."""
    parts = [
        f"reliable change {facts.reliable_change:f}" if facts.reliable_change is not None
        else "no reliable-change threshold",
        {"lower-is-better": "lower is better", "higher-is-better": "higher is better"}.get(
            facts.direction or "", "no direction"
        ),
        f"clinical cut-off {facts.clinical_cutoff:f}" if facts.clinical_cutoff is not None else "no clinical cut-off",
    ]  # fmt: skip
    return f"{', '.join(parts)} (from Questionnaire {', '.join(facts.sources)})"


def _issue(severity: str, code: str, text: str, index: int) -> dict[str, Any]:
    return {
        "severity": severity,
        "code": code,
        "details": {"text": text},
        "expression": [f"MeasureReport.group[0].stratifier[0].stratum[{index}]"],
    }


def measure_report(request: ReportRequest, tallies: Sequence[Tally], *, date: str) -> dict[str, Any]:
    """The MeasureReport (R4) of one outcome Measure over these tallies (one per score, in report order)."""
    outcome = request.outcome
    populations: tuple[tuple[str, Category], ...] = (
        ("initial-population", outcome.initial),
        ("denominator", outcome.denominator),
        ("numerator", outcome.numerator),
    )
    contained: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []
    strata = []
    for index, tally in enumerate(tallies):
        facts = tally.facts
        stratum: dict[str, Any] = {"value": _value(facts)}
        found = rate(outcome, tally)
        if found is None:
            lacking = "; ".join(outcome.lacking(facts))
            stratum["measureScore"] = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "not-applicable"}]}
            issues.append(
                _issue(
                    "information",
                    "not-supported",
                    f"{facts.name} ({facts.instrument}) is not counted in {outcome.title.lower()}: {lacking}. "
                    "No threshold or cut-off is assumed where the Questionnaire gives none.",
                    index,
                )
            )
            strata.append(stratum)
            continue
        stratum["population"] = []
        for code, category in populations:
            population: dict[str, Any] = {"code": _population(code), "count": tally.counts[category]}
            if request.report_type == "subject-list" and tally.members is not None:
                list_id = f"stratum-{index}-{code}"
                contained.append(_subject_list(list_id, f"{facts.name}: {code}", tally.members[category]))
                population["subjectResults"] = {"reference": f"#{list_id}"}
            stratum["population"].append(population)
        proportion = found.proportion
        if proportion is not None:
            stratum["measureScore"] = {"value": float(proportion)}
        issues.append(_issue("information", "informational", f"{facts.name}: {facts_used(facts)}", index))
        strata.append(stratum)
    measure = request.measure
    report: dict[str, Any] = {"resourceType": "MeasureReport"}
    if issues:
        contained.insert(0, {"resourceType": "OperationOutcome", "id": MESSAGES_ID, "issue": issues})
    if contained:
        report["contained"] = contained
    if issues:
        report["extension"] = [{"url": CQF_MESSAGES, "valueReference": {"reference": f"#{MESSAGES_ID}"}}]
    report.update(
        {
            "status": "complete",
            "type": request.report_type,
            "measure": f"{measure['url']}|{measure['version']}" if measure.get("version") else str(measure["url"]),
        }
    )
    if request.subject is not None:
        report["subject"] = {"reference": request.subject}
    report.update(
        {
            "date": date,
            "period": {"start": request.period_start, "end": request.period_end},
            "improvementNotation": {"coding": [{"system": IMPROVEMENT_SYSTEM, "code": outcome.improvement}]},
            "group": [{"stratifier": [{"code": [STRATIFIER], "stratum": strata}]}],
        }
    )
    return report


def _subject_list(list_id: str, title: str, members: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {"resourceType": "List", "id": list_id, "status": "current", "mode": "snapshot",
                             "title": title}  # fmt: skip
    if members:
        found["entry"] = [{"item": {"reference": f"Patient/{member}"}} for member in sorted(members)]
    else:
        found["emptyReason"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason", "code": "nilknown"}]
        }
    return found
