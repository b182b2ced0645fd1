"""Look-ups for what is derived from responses: their Observations, and a person's previous response."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.orm import Session, lazyload

from service.fhir.jsonio import loads_object
from service.fhir.response_status import SCORED_STATUSES
from service.store.models import FlagRow, ObservationRow, QuestionnaireResponseRow

Derived = TypeVar("Derived", ObservationRow, FlagRow)


def derived_from(session: Session, model: type[Derived], response_id: str) -> list[Derived]:
    """The live Observations (or Flags) derived from one response, any status (search-index rows load if used)."""
    query = select(model).options(lazyload("*")).where(model.derived_from_id == response_id, model.deleted.is_(False))
    return list(session.scalars(query))


def observations_of(session: Session, response_id: str) -> list[ObservationRow]:
    return derived_from(session, ObservationRow, response_id)


@dataclass(frozen=True, slots=True)
class PreviousResponse:
    id: str
    version_id: int
    authored_low: datetime | None


_QR = QuestionnaireResponseRow
# The same person's latest scored response to the same instrument authored before a given one, with a score that
# stands (a response saved with too few answers to score is passed over, so change is still measured). Built once
# with bound parameters: a submission runs it twice (to plan, then to re-check inside its transaction).
_PREVIOUS = (
    select(_QR.id, _QR.version_id, _QR.authored_low)
    .where(
        _QR.subject_id == bindparam("subject_id"),
        _QR.subject_type == bindparam("subject_type"),
        _QR.questionnaire_url == bindparam("questionnaire_url"),
        _QR.status.in_(SCORED_STATUSES),
        _QR.deleted.is_(False),
        _QR.id != bindparam("id"),
        _QR.authored_key < bindparam("authored_key"),
        exists().where(
            ObservationRow.derived_from_id == _QR.id,
            ObservationRow.source_key != "panel",
            ObservationRow.deleted.is_(False),
            ObservationRow.status != "entered-in-error",
        ),
    )
    .order_by(_QR.authored_key.desc(), _QR.pk.desc())
    .limit(1)
)
_PREVIOUS_ROW = _PREVIOUS.subquery()
_PREVIOUS_AND_SCORES = select(
    _PREVIOUS_ROW.c.id, _PREVIOUS_ROW.c.version_id, _PREVIOUS_ROW.c.authored_low, ObservationRow.source_key,
    ObservationRow.resource_json,
).join(
    ObservationRow,
    and_(ObservationRow.derived_from_id == _PREVIOUS_ROW.c.id, ObservationRow.deleted.is_(False)),
    isouter=True,
)  # fmt: skip


def _previous_parameters(row: QuestionnaireResponseRow) -> dict[str, Any]:
    return {
        "subject_id": row.subject_id,
        "subject_type": row.subject_type,
        "questionnaire_url": row.questionnaire_url,
        "id": row.id,
        "authored_key": row.authored_key,
    }


def previous_response_of(
    session: Session, row: QuestionnaireResponseRow
) -> tuple[PreviousResponse | None, list[tuple[str, dict[str, Any]]]]:
    """The same person's latest scored response to the same instrument authored before this one, and its score
    Observations that still stand (not the panel, not entered-in-error) as (score key, resource): one query.
    ``row`` needs only its search columns (it may be a row not stored yet)."""
    if row.subject_id is None:
        return None, []
    found: PreviousResponse | None = None
    scores: list[tuple[str, dict[str, Any]]] = []
    for result in session.connection().execute(_PREVIOUS_AND_SCORES, _previous_parameters(row)):
        found = PreviousResponse(result.id, result.version_id, result.authored_low)
        if result.source_key in (None, "panel") or result.resource_json is None:
            continue
        resource = loads_object(result.resource_json.encode())
        if resource.get("status") != "entered-in-error":
            scores.append((str(result.source_key), resource))
    return found, scores


def previous_version_of(session: Session, row: QuestionnaireResponseRow) -> tuple[str, int] | None:
    """(id, version) of the previous response previous_response_of finds: a cheap check that it is still the same."""
    if row.subject_id is None:
        return None
    found = session.connection().execute(_PREVIOUS, _previous_parameters(row)).first()
    return (found.id, found.version_id) if found else None


def observations_for_responses(session: Session, response_ids: list[str]) -> list[tuple[str, str]]:
    """(id, JSON) of the live Observations derived from any of these responses (for _revinclude)."""
    if not response_ids:
        return []
    rows = session.execute(
        select(ObservationRow.id, ObservationRow.resource_json)
        .where(ObservationRow.derived_from_id.in_(response_ids), ObservationRow.deleted.is_(False))
        .order_by(ObservationRow.pk)
    )
    return [(row.id, row.resource_json) for row in rows if row.resource_json is not None]
