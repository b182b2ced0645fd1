"""The topic events a stored response raises (pure): written to the outbox in the response's own transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from service.fhir.response_status import SCORED_STATUSES
from service.subscriptions.topics import RESPONSE_COMPLETED, SAFETY_FLAG, SCORE_ALERT

CHANGE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DETERIORATED = "W"


def band_of(observation: Mapping[str, Any]) -> tuple[str, str] | None:
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
    return {key: band_of(resource) for key, resource in scores}


@dataclass(frozen=True, slots=True)
class ScoreVersion:
    """A standing score Observation as this write leaves it, and its version before (None: new)."""

    id: str
    version_id: int
    key: str
    resource: Mapping[str, Any]
    earlier: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """What the events say about the response version that raised them."""

    id: str
    version_id: int
    status: str
    occurred_at: datetime
    patient: str | None
    questionnaire: str  # canonical url|version


def response_events(
    response: StoredResponse,
    scores: Sequence[ScoreVersion],
    previous_bands: Mapping[str, tuple[str, str] | None],
    raised_flags: Sequence[tuple[str, int]],
) -> list[dict[str, Any]]:
    """Outbox rows for a scored (completed or amended) response version; none for other statuses.

    ``previous_bands``: the bands of the person's previous response to the instrument, by score key;
    ``raised_flags``: (id, version) of the Flags this write created."""
    if response.status not in SCORED_STATUSES:
        return []

    def event(topic_url: str, focus_type: str, focus_id: str, version: int, codes: Any = None) -> dict[str, Any]:
        return {
            "topic": topic_url,
            "focus_type": focus_type,
            "focus_id": focus_id,
            "focus_version": version,
            "occurred_at": response.occurred_at,
            "patient_id": response.patient,
            "questionnaire": response.questionnaire,
            "codes": orjson.dumps(codes).decode() if codes else None,
            "dispatched": False,
        }

    events = [event(RESPONSE_COMPLETED.url, "QuestionnaireResponse", response.id, response.version_id)]
    for score in scores:
        band, worse = band_of(score.resource), _deteriorated(score.resource)
        # A first score "crosses into" its band; later ones when the band differs from last time.
        crossed = band is not None and band != previous_bands.get(score.key)
        # An amendment that leaves the band and the change as they were announces nothing new.
        earlier = score.earlier
        announced = earlier is not None and band_of(earlier) == band and _deteriorated(earlier) == worse
        if (crossed or worse) and not announced:
            events.append(event(SCORE_ALERT.url, "Observation", score.id, score.version_id, _codes(score.resource)))
    for flag_id, flag_version in raised_flags:
        events.append(event(SAFETY_FLAG.url, "Flag", flag_id, flag_version))
    return events
