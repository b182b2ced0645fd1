"""Look-ups for what is derived from responses: their Observations, and a person's previous response."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from service.fhir.jsonio import loads_object
from service.store.models import FlagRow, ObservationRow, QuestionnaireResponseRow

Derived = TypeVar("Derived", ObservationRow, FlagRow)

SCORED_STATUSES = ("completed", "amended")


def derived_from(session: Session, model: type[Derived], response_id: str) -> list[Derived]:
    """The live Observations (or Flags) derived from one response, any status (search-index rows load if used)."""
    query = select(model).options(lazyload("*")).where(model.derived_from_id == response_id, model.deleted.is_(False))
    return list(session.scalars(query))


def observations_of(session: Session, response_id: str) -> list[ObservationRow]:
    return derived_from(session, ObservationRow, response_id)


def live_scores(session: Session, response_id: str) -> Iterator[tuple[ObservationRow, dict[str, Any]]]:
    """The score Observations of a response that still stand (not the panel, not entered-in-error)."""
    for row in observations_of(session, response_id):
        if row.source_key in (None, "panel") or row.resource_json is None:
            continue
        resource = loads_object(row.resource_json.encode())
        if resource.get("status") != "entered-in-error":
            yield row, resource


@dataclass(frozen=True, slots=True)
class PreviousResponse:
    id: str
    authored_low: datetime | None


def previous_response_of(session: Session, row: QuestionnaireResponseRow) -> PreviousResponse | None:
    """The same person's latest scored response to the same instrument authored before this one."""
    if row.subject_id is None:
        return None
    query = (
        select(QuestionnaireResponseRow.id, QuestionnaireResponseRow.authored_low)
        .where(
            QuestionnaireResponseRow.subject_id == row.subject_id,
            QuestionnaireResponseRow.subject_type == row.subject_type,
            QuestionnaireResponseRow.questionnaire_url == row.questionnaire_url,
            QuestionnaireResponseRow.status.in_(SCORED_STATUSES),
            QuestionnaireResponseRow.deleted.is_(False),
            QuestionnaireResponseRow.id != row.id,
            QuestionnaireResponseRow.authored_key < row.authored_key,
        )
        .order_by(QuestionnaireResponseRow.authored_key.desc(), QuestionnaireResponseRow.pk.desc())
        .limit(1)
    )
    found = session.execute(query).one_or_none()
    return PreviousResponse(found.id, found.authored_low) if found is not None else None


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
