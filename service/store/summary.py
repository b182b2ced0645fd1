"""One person's measures at a glance: latest scored responses per instrument, their scores, active safety flags."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from service.fhir.response_status import SCORED_STATUSES
from service.store.models import FlagRow, ObservationRow, QuestionnaireResponseRow, QuestionnaireRow

QR = QuestionnaireResponseRow
LIVE_OBSERVATION_STATUSES = ("final", "amended")
PANEL_KEY = "panel"


@dataclass(frozen=True, slots=True)
class ScoredResponse:
    """A scored response, as far as a summary needs it (no answers)."""

    id: str
    questionnaire_url: str
    questionnaire_pk: int | None
    completed: datetime  # authored (UTC), or when it was stored if it carries no authored date
    # When a later response to the same instrument was completed that has no score (too few answers for the
    # instrument's rule): this one still stands as the latest score, and the later one must not hide it.
    unscored_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScoreObservation:
    key: str  # the linkId of the score (or marked item) it was extracted from
    resource: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredQuestionnaire:
    id: str
    url: str | None
    resource: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ActiveFlag:
    resource: dict[str, Any]
    questionnaire_pk: int | None  # of the response that raised it


@dataclass(slots=True)
class PatientRecords:
    """Everything the clinician's summary of one patient is made from, read in a handful of indexed queries."""

    latest: list[ScoredResponse] = field(default_factory=list)  # one per instrument (questionnaire url)
    observations: dict[str, list[ScoreObservation]] = field(default_factory=dict)  # latest response id -> scores
    questionnaires: dict[int, StoredQuestionnaire] = field(default_factory=dict)  # by questionnaire pk
    flags: list[ActiveFlag] = field(default_factory=list)  # newest first


def _loads(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = orjson.loads(text)
    return value if isinstance(value, dict) else None


def _latest_responses(session: Session, patient_id: str) -> list[ScoredResponse]:
    """The latest response with a standing score to each instrument, noting a later one that has none; an
    instrument answered only without a score gives its latest response (two window queries over the subject's
    index)."""
    scored = _latest(session, patient_id, with_score=True)
    latest = _latest(session, patient_id, with_score=False)
    found = []
    for url, newest in latest.items():
        standing = scored.get(url)
        if standing is None:
            found.append(newest)
        elif newest.id != standing.id:
            found.append(replace(standing, unscored_after=newest.completed))
        else:
            found.append(standing)
    return found


def _latest(session: Session, patient_id: str, *, with_score: bool) -> dict[str, ScoredResponse]:
    rank = (
        func.row_number()
        .over(partition_by=QR.questionnaire_url, order_by=(QR.authored_key.desc(), QR.pk.desc()))
        .label("rank")
    )
    conditions = [
        QR.subject_id == patient_id,
        QR.subject_type == "Patient",
        QR.status.in_(SCORED_STATUSES),
        QR.deleted.is_(False),
    ]
    if with_score:
        conditions.append(
            exists().where(
                ObservationRow.derived_from_id == QR.id,
                ObservationRow.source_key != PANEL_KEY,
                ObservationRow.deleted.is_(False),
                ObservationRow.status.in_(LIVE_OBSERVATION_STATUSES),
            )
        )
    ranked = (
        select(QR.id, QR.questionnaire_url, QR.questionnaire_pk, QR.authored_low, QR.last_updated, rank)
        .where(*conditions)
        .subquery()
    )
    rows = session.execute(select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.questionnaire_url))
    return {
        row.questionnaire_url: ScoredResponse(
            row.id, row.questionnaire_url, row.questionnaire_pk, row.authored_low or row.last_updated
        )
        for row in rows
    }


def completed_dates(session: Session, response_ids: set[str]) -> dict[str, datetime]:
    """When each of these responses was completed (authored, else stored), by id."""
    if not response_ids:
        return {}
    rows = session.execute(
        select(QR.id, QR.authored_low, QR.last_updated).where(QR.id.in_(response_ids), QR.deleted.is_(False))
    )
    return {row.id: row.authored_low or row.last_updated for row in rows}


def _score_observations(session: Session, response_ids: list[str]) -> dict[str, list[ScoreObservation]]:
    found: dict[str, list[ScoreObservation]] = {}
    if not response_ids:
        return found
    rows = session.execute(
        select(ObservationRow.derived_from_id, ObservationRow.source_key, ObservationRow.resource_json)
        .where(
            ObservationRow.derived_from_id.in_(response_ids),
            ObservationRow.deleted.is_(False),
            ObservationRow.status.in_(LIVE_OBSERVATION_STATUSES),
        )
        .order_by(ObservationRow.pk)
    )
    for row in rows:
        resource = _loads(row.resource_json)
        if row.derived_from_id is None or row.source_key in (None, PANEL_KEY) or resource is None:
            continue
        found.setdefault(row.derived_from_id, []).append(ScoreObservation(row.source_key, resource))
    return found


def _active_flags(session: Session, patient_id: str) -> list[ActiveFlag]:
    rows = session.execute(
        select(FlagRow.resource_json, QR.questionnaire_pk)
        .outerjoin(QR, QR.id == FlagRow.derived_from_id)
        .where(
            FlagRow.subject_id == patient_id,
            FlagRow.subject_type == "Patient",
            FlagRow.status == "active",
            FlagRow.deleted.is_(False),
        )
        .order_by(FlagRow.pk.desc())
    )
    flags = []
    for row in rows:
        resource = _loads(row.resource_json)
        if resource is not None:
            flags.append(ActiveFlag(resource, row.questionnaire_pk))
    return flags


def _questionnaires(session: Session, pks: set[int]) -> dict[int, StoredQuestionnaire]:
    if not pks:
        return {}
    rows = session.execute(
        select(QuestionnaireRow.pk, QuestionnaireRow.id, QuestionnaireRow.url, QuestionnaireRow.resource_json).where(
            QuestionnaireRow.pk.in_(pks)
        )
    )
    found = {}
    for row in rows:
        resource = _loads(row.resource_json)
        if resource is not None:
            found[row.pk] = StoredQuestionnaire(row.id, row.url, resource)
    return found


def patient_records(session: Session, patient_id: str) -> PatientRecords:
    """What is known of ``Patient/{patient_id}``: only the latest responses' scores are read, never the answers."""
    latest = _latest_responses(session, patient_id)
    flags = _active_flags(session, patient_id)
    pks = {r.questionnaire_pk for r in latest} | {f.questionnaire_pk for f in flags}
    return PatientRecords(
        latest=latest,
        observations=_score_observations(session, [r.id for r in latest]),
        questionnaires=_questionnaires(session, {pk for pk in pks if pk is not None}),
        flags=flags,
    )
