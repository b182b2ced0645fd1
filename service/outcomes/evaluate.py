"""Evaluating the outcome Measures: ``evaluate_outcomes`` (the counts, for the clinician app's outcomes page) and
``evaluate_measure`` (FHIR ``$evaluate-measure``: the same counts as a stored, audited MeasureReport).

Who may: a ``user/`` or ``system/`` grant that may read Observations (their scope filters apply to what is counted),
and Groups when the subject is a Group. A patient-scoped grant may not: an outcome report is about many people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from service import audit
from service.auth.access import Grant
from service.auth.delegated import BACKEND_CONTEXTS, Owner, read_grant
from service.auth.scopes import matching, parse_scopes
from service.fhir import jsonio
from service.fhir.dates import InvalidDate, date_range, instant_text, utcnow
from service.fhir.errors import BadRequest, Forbidden, Gone, NotFound, Unprocessable
from service.fhir.issues import Issue
from service.fhir.search import SearchRequest
from service.fhir.versions import StoredVersion
from service.outcomes.classify import MEASURE_BASE, MEASURES, Series, Tally, measure_for
from service.outcomes.facts import USABLE_STATUSES, ScoreFacts, latest_versions, score_facts
from service.outcomes.report import ReportRequest, ReportType, measure_report
from service.services import Services
from service.store import measures as store_measures
from service.store import outcomes as store
from service.store.access import restrict_search
from service.store.kinds import GROUP, MEASURE, MEASURE_REPORT, OBSERVATION, split_reference
from service.store.questionnaires import refs_with_status
from service.store.repository import ResourceRepository
from service.store.search import conditions_for
from service.writes import insert

REPORT_TYPES: dict[str, ReportType] = {"subject": "individual", "subject-list": "subject-list", "population": "summary"}
PARAMETERS = ("periodStart", "periodEnd", "subject", "reportType", "measure")
UNSUPPORTED = ("practitioner", "lastReceivedOn")
IGNORED = ("_format", "_pretty")


@dataclass(frozen=True, slots=True)
class Period:
    """The period as given (FHIR dates) and the instants it covers, both ends included."""

    start: str
    end: str
    low: datetime
    high: datetime


@dataclass(frozen=True, slots=True)
class Outcomes:
    """The evaluation of every score over one population and period: one Tally per score, in library order."""

    tallies: list[Tally]
    subject: str | None  # "Group/{id}", "Patient/{id}", or None (everyone the grant may read)
    period: Period


def parse_period(start: str | None, end: str | None) -> Period:
    """periodStart and periodEnd (dates or dateTimes; both required): 400 if missing, malformed or reversed."""
    bounds = []
    for name, text in (("periodStart", start), ("periodEnd", end)):
        if not text:
            raise BadRequest(Issue("error", "required", f"{name} is required (a date, e.g. 2026-01-01)", name))
        try:
            bounds.append(date_range(text))
        except InvalidDate as exc:
            raise BadRequest(Issue("error", "value", f"{name}: {exc}", name)) from None
    low, high = bounds[0][0], bounds[1][1]
    if low > high:
        raise BadRequest(Issue("error", "value", f"periodStart ({start}) is after periodEnd ({end})", "periodStart"))
    assert start is not None and end is not None
    return Period(start, end, low, high)


def parse_subject(text: str | None) -> str | None:
    """``Group/{id}`` or ``Patient/{id}`` (None: everyone); anything else is a 400."""
    if not text:
        return None
    subject_type, subject_id = split_reference({"reference": text})
    if subject_type not in ("Group", "Patient") or not subject_id or text != f"{subject_type}/{subject_id}":
        raise BadRequest(
            Issue("error", "value", f"subject must be Group/{{id}} or Patient/{{id}}, got {text!r}", "subject")
        )
    return text


def _observation_grant(grant: Grant) -> tuple[Owner, Grant]:
    """What the caller may read of Observations for an outcome report: a user/ or system/ read grant, or 403."""
    owner = Owner.of(grant)
    patient_scoped = matching(parse_scopes(owner.scopes), "Observation", "r", ("patient",))
    if grant.patient is not None or (patient_scoped and read_grant(owner, "Observation", BACKEND_CONTEXTS) is None):
        raise Forbidden(
            "Outcome reports count many people: they need user/ or system/ scopes, not a patient-scoped token"
        )
    observations = read_grant(owner, "Observation", BACKEND_CONTEXTS)
    if observations is None:
        raise Forbidden(
            "The token's scopes do not allow reading the Observations an outcome report counts "
            "(user/Observation.rs or system/Observation.rs is needed)"
        )
    return owner, observations


def _population(session: Session, owner: Owner, subject: str | None) -> store.Population:
    if subject is None:
        return store.Population()
    subject_type, subject_id = split_reference({"reference": subject})
    assert subject_id is not None
    if subject_type == "Patient":
        audit.note_patients([subject_id])
        return store.Population(patient=subject_id)
    if read_grant(owner, "Group", BACKEND_CONTEXTS) is None:
        raise Forbidden("The token's scopes do not allow reading Group resources (user/Group.rs or system/Group.rs)")
    row = ResourceRepository(session, GROUP).get_row(subject_id)
    if row is None:
        raise NotFound(f"Group/{subject_id} is not known")
    if row.deleted:
        raise Gone(f"Group/{subject_id} was deleted")
    audit.note("Group", subject_id, None)
    return store.Population(group_pk=row.pk)


def library_facts(services: Services, session: Session) -> list[ScoreFacts]:
    """The facts of every score of the Questionnaires in use (the latest active version of each, else retired)."""
    refs = refs_with_status(session, USABLE_STATUSES)
    return score_facts(latest_versions(services.questionnaires.get(session, ref) for ref in refs))


def _grant_conditions(services: Services, observations: Grant) -> list[ColumnElement[bool]]:
    request = SearchRequest()
    restrict_search(OBSERVATION, observations, request, services.settings.base_url)
    return conditions_for(OBSERVATION, request, include_deleted=True)


def evaluate_outcomes(
    services: Services, *, subject: str | None, period: Period, grant: Grant, with_members: bool = False
) -> Outcomes:
    """Every score's outcome counts for the subject (a Group, a Patient, or everyone the grant may read) over the
    period; the people counted are noted for the request's AuditEvent. ``with_members``: also who is in each
    population (subject-list reports)."""
    owner, observations = _observation_grant(grant)
    conditions = _grant_conditions(services, observations)
    with services.db.read_session() as session:
        population = _population(session, owner, subject)
        facts = library_facts(services, session)
        tallies = {f.key: Tally.new(f, with_members=with_members) for f in facts}
        counted: set[str] = set()
        for row in store.score_series(session, list(tallies), period.low, period.high, population, conditions):
            series = Series(row.subject, row.count, Decimal(repr(row.first)), Decimal(repr(row.last)))
            tallies[(row.system, row.code)].add(series)
            counted.add(row.subject)
    audit.note_patients(counted)
    return Outcomes(list(tallies.values()), subject, period)


# $evaluate-measure ------------------------------------------------------------------------------------------


def _parameters(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in IGNORED:
            continue
        if name in UNSUPPORTED:
            raise BadRequest(Issue("error", "not-supported", f"The parameter {name} is not supported", name))
        if name not in PARAMETERS:
            raise BadRequest(
                Issue(
                    "error",
                    "not-supported",
                    f"Unknown parameter {name!r}; $evaluate-measure takes {', '.join(PARAMETERS)}",
                    name,
                )
            )
        if name in found:
            raise BadRequest(Issue("error", "invalid", f"The parameter {name} is given more than once", name))
        found[name] = value
    return found


def _report_type(given: str | None, subject: str | None) -> ReportType:
    if given is None:
        return "individual" if subject is not None and subject.startswith("Patient/") else "summary"
    if given not in REPORT_TYPES:
        raise BadRequest(
            Issue("error", "code-invalid", f"reportType must be one of {', '.join(REPORT_TYPES)}, got {given!r}",
                  "reportType")
        )  # fmt: skip
    if given == "subject" and (subject is None or not subject.startswith("Patient/")):
        raise BadRequest(Issue("error", "invalid", "reportType subject needs subject=Patient/{id}", "reportType"))
    return REPORT_TYPES[given]


def _stored_measure(session: Session, measure_id: str | None, measure: str | None) -> tuple[str, dict[str, Any]]:
    """The Measure the request names (its id, its resource): the instance, or the type-level ``measure``
    parameter as a canonical url (``|version``), ``Measure/{id}`` or an id."""
    if measure_id is not None and measure is not None:
        raise BadRequest(Issue("error", "invalid", "measure is only for Measure/$evaluate-measure", "measure"))
    repository = ResourceRepository(session, MEASURE)
    row = None
    if measure_id is not None:
        row = repository.get_row(measure_id)
        named = f"Measure/{measure_id}"
    elif measure is None:
        raise BadRequest(Issue("error", "required", "measure is required (the Measure's canonical url)", "measure"))
    elif "://" in measure:
        url, _, version = measure.partition("|")
        row = store_measures.find_by_canonical(session, url, version or None)
        named = measure
    else:
        named = measure if measure.startswith("Measure/") else f"Measure/{measure}"
        row = repository.get_row(named.removeprefix("Measure/"))
    if row is None:
        raise NotFound(f"{named} is not known")
    if row.deleted or row.resource_json is None:
        raise Gone(f"{named} was deleted")
    return row.id, jsonio.loads_object(row.resource_json.encode())


def evaluate_measure(
    services: Services, measure_id: str | None, parameters: Sequence[tuple[str, str]], grant: Grant
) -> StoredVersion:
    """Measure/[id]/$evaluate-measure: the MeasureReport, stored with its AuditEvent (the Measure, the Group, the
    report and every patient counted)."""
    given = _parameters(parameters)
    period = parse_period(given.get("periodStart"), given.get("periodEnd"))
    subject = parse_subject(given.get("subject"))
    report_type = _report_type(given.get("reportType"), subject)
    with services.db.read_session() as session:
        stored_id, measure = _stored_measure(session, measure_id, given.get("measure"))
    audit.note("Measure", stored_id, None)
    outcome = measure_for(str(measure.get("url", "")))
    if outcome is None:
        raise Unprocessable(
            f"Measure/{stored_id} ({measure.get('url')}) is not one of the outcome Measures this service evaluates: "
            f"{', '.join(MEASURE_BASE + name for name in MEASURES)}",
            code="not-supported",
        )
    outcomes = evaluate_outcomes(
        services, subject=subject, period=period, grant=grant, with_members=report_type == "subject-list"
    )
    request = ReportRequest(measure, outcome, report_type, subject, period.start, period.end)
    report = measure_report(request, outcomes.tallies, date=instant_text(utcnow()))
    with services.db.transaction() as session:
        _, stored = insert(session, services, MEASURE_REPORT, report, grant)
    return stored
