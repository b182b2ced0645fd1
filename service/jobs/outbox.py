"""The outbox: topic events recorded in the same transaction as the submission that causes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from service.store import derived
from service.store.kinds import OBSERVATION
from service.store.models import FlagRow, ObservationRow, OutboxEvent, QuestionnaireResponseRow
from service.store.repository import ResourceRepository, StoredVersion
from service.topics import RESPONSE_COMPLETED, SAFETY_FLAG, SCORE_ALERT

CHANGE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DETERIORATED = "W"


def _band(observation: Mapping[str, Any]) -> tuple[str, str] | None:
    """The interpretation band of a score Observation: its interpretation that is not a change code."""
    for concept in observation.get("interpretation", []):
        for coding in concept.get("coding", []):
            if coding.get("system") != CHANGE_SYSTEM and coding.get("code"):
                return str(coding.get("system", "")), str(coding["code"])
    return None


def _deteriorated(observation: Mapping[str, Any]) -> bool:
    return any(
        coding.get("system") == CHANGE_SYSTEM and coding.get("code") == DETERIORATED
        for concept in observation.get("interpretation", [])
        for coding in concept.get("coding", [])
    )


def _codes(observation: Mapping[str, Any]) -> list[list[str]]:
    return [
        [str(coding.get("system", "")), str(coding["code"])]
        for coding in (observation.get("code") or {}).get("coding", [])
        if coding.get("code")
    ]


def bands_of(scores: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, tuple[str, str] | None]:
    """The interpretation band of each score Observation, by its score key."""
    return {key: _band(resource) for key, resource in scores}


def _announced_before(session: Session, obs: ObservationRow, band: tuple[str, str] | None, worse: bool) -> bool:
    """The same alert was already raised by an earlier version of this Observation (the response was amended)."""
    if obs.version_id <= 1:
        return False
    earlier = ResourceRepository(session, OBSERVATION).version(obs.id, obs.version_id - 1)
    if earlier is None or earlier.json is None:
        return False
    resource = earlier.resource()
    return _band(resource) == band and _deteriorated(resource) == worse


def record_events(
    session: Session,
    row: QuestionnaireResponseRow,
    stored: StoredVersion,
    *,
    scores: Sequence[tuple[ObservationRow, Mapping[str, Any]]],
    previous_bands: Mapping[str, tuple[str, str] | None],
    raised_flags: Sequence[FlagRow],
) -> None:
    """Outbox events for a scored (completed or amended) response version, written in its transaction.

    ``scores`` are the response's standing score Observations after this write, ``previous_bands`` the bands of
    the person's previous response to the instrument, ``raised_flags`` the Flags this write created.
    """
    if row.status not in derived.SCORED_STATUSES:
        return
    patient = row.subject_id if row.subject_type == "Patient" else None
    canonical = row.questionnaire_url + (f"|{row.questionnaire_version}" if row.questionnaire_version else "")

    def event(topic_url: str, focus_type: str, focus_id: str, version: int, codes: Any = None) -> dict[str, Any]:
        return {
            "topic": topic_url,
            "focus_type": focus_type,
            "focus_id": focus_id,
            "focus_version": version,
            "occurred_at": stored.last_updated,
            "patient_id": patient,
            "questionnaire": canonical,
            "codes": orjson.dumps(codes).decode() if codes else None,
            "dispatched": False,
        }

    events = [event(RESPONSE_COMPLETED.url, "QuestionnaireResponse", row.id, stored.version_id)]
    for obs, resource in scores:
        band, worse = _band(resource), _deteriorated(resource)
        # A first score "crosses into" its band; later ones when the band differs from last time.
        crossed = band is not None and band != previous_bands.get(str(obs.source_key))
        if (crossed or worse) and not _announced_before(session, obs, band, worse):
            events.append(event(SCORE_ALERT.url, "Observation", obs.id, obs.version_id, _codes(resource)))
    for flag in raised_flags:
        events.append(event(SAFETY_FLAG.url, "Flag", flag.id, flag.version_id))
    session.connection().execute(insert(cast(Table, OutboxEvent.__table__)), events)
