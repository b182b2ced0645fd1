"""Look-ups for what is derived from responses: their Observations, and a person's previous response."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, exists, select
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


def _previous_query(row: QuestionnaireResponseRow) -> Select[str, int, datetime | None]:
    """The same person's latest scored response to the same instrument authored before ``row``: one with a score
    that stands (a response saved with too few answers to score is passed over, so change is still measured)."""
    QR = QuestionnaireResponseRow
    scored = exists().where(
        ObservationRow.derived_from_id == QR.id,
        ObservationRow.source_key != "panel",
        ObservationRow.deleted.is_(False),
        ObservationRow.status != "entered-in-error",
    )
    return (
        select(QR.id, QR.version_id, QR.authored_low)
        .where(
            QR.subject_id == row.subject_id,
            QR.subject_type == row.subject_type,
            QR.questionnaire_url == row.questionnaire_url,
            QR.status.in_(SCORED_STATUSES),
            QR.deleted.is_(False),
            QR.id != row.id,
            QR.authored_key < row.authored_key,
            scored,
        )
        .order_by(QR.authored_key.desc(), QR.pk.desc())
        .limit(1)
    )


def previous_response_of(
    session: Session, row: QuestionnaireResponseRow
) -> tuple[PreviousResponse | None, list[tuple[str, dict[str, Any]]]]:
    """The same person's latest scored response to the same instrument authored before this one, and its score
    Observations that still stand (not the panel, not entered-in-error) as (score key, resource): one query.
    ``row`` needs only its search columns (it may be a row not stored yet)."""
    if row.subject_id is None:
        return None, []
    previous = _previous_query(row).subquery()
    query = select(
        previous.c.id, previous.c.version_id, previous.c.authored_low, ObservationRow.source_key,
        ObservationRow.resource_json,
    ).join(
        ObservationRow,
        and_(ObservationRow.derived_from_id == previous.c.id, ObservationRow.deleted.is_(False)),
        isouter=True,
    )  # fmt: skip
    found: PreviousResponse | None = None
    scores: list[tuple[str, dict[str, Any]]] = []
    for result in session.execute(query):
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
    found = session.execute(_previous_query(row)).first()
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
