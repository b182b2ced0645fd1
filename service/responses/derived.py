"""What a stored response version derives, worked out before anything is written (pure).

From the scored response, the person's previous response to the same instrument, and whatever an earlier
version of the same response already derived: its score Observations (new, changed, or withdrawn), its safety
Flags (raised, kept as reviewed, or withdrawn), a Provenance, and the outbox events for subscriptions. The
use case writes the plan in the response's transaction; nothing here reads or writes the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.change import Change, PreviousScore, compare_scores
from service.extraction import extract_observations, provenance, safety_flag
from service.fhir.dates import instant_text
from service.fhir.response_status import SCORED_STATUSES
from service.scoring import ScoringResult
from service.subscriptions.events import ScoreVersion, StoredResponse, bands_of, response_events

WITHDRAWN = "entered-in-error"


@dataclass(frozen=True, slots=True)
class Existing:
    """A resource an earlier version of the response derived (an Observation or a Flag), as it stands now."""

    id: str
    version_id: int
    key: str | None  # the score (or marked item) it is for; a Flag's safety item
    resource: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Previous:
    """The person's latest scored response to the same instrument before this one, and its standing scores."""

    id: str
    version_id: int
    authored: datetime | None
    scores: Sequence[tuple[str, Mapping[str, Any]]]  # (score key, Observation)


@dataclass(frozen=True, slots=True)
class ResponseVersion:
    """The response version being stored: the scored resource and where it is stored."""

    id: str
    version_id: int
    stored_at: datetime
    resource: Mapping[str, Any]  # as stored, scores filled in
    questionnaire: Mapping[str, Any]
    questionnaire_id: str
    questionnaire_version_id: int
    questionnaire_canonical: str  # url|version (or url)
    patient: str | None


@dataclass(slots=True)
class DerivedWrites:
    new_observations: list[tuple[dict[str, Any], str, dict[str, Any]]] = field(default_factory=list)  # resource, id
    changed_observations: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (id, new resource)
    new_flags: list[tuple[dict[str, Any], str, dict[str, Any]]] = field(default_factory=list)
    withdrawn: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (type, id, entered-in-error)
    provenance: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def plan_derived(
    version: ResponseVersion,
    scoring: ScoringResult,
    previous: Previous | None,
    *,
    observations: Mapping[str | None, Existing],
    flags: Mapping[str | None, Existing],
    new_id: Any,
    software: str,
) -> DerivedWrites:
    """Every derived write for this response version. ``observations`` and ``flags``: what earlier versions
    derived, by key (empty for a new response); ``new_id()`` makes the id of each new resource."""
    plan = DerivedWrites()
    response = version.resource
    scored = response.get("status") in SCORED_STATUSES
    reference = f"QuestionnaireResponse/{version.id}"

    # Safety flags: one per raised item. A reviewed flag stays reviewed when the response is amended; a flag
    # whose item is no longer raised (or whose response is withdrawn) is marked entered-in-error.
    standing_flags = dict(flags)
    raised_flags: list[tuple[str, int]] = []
    for raised in scoring.safety_flags if scored else ():
        key = raised.link_id or raised.message
        if standing_flags.pop(key, None) is None:
            flag_id = new_id()
            plan.new_flags.append((safety_flag(raised.message, response, reference), flag_id, {"source_key": key}))
            raised_flags.append((flag_id, 1))
    _withdraw(plan, "Flag", standing_flags.values())

    standing = dict(observations)
    if not scored:
        # Observations no longer backed by a scored response are marked entered-in-error, never left stale.
        _withdraw(plan, "Observation", standing.values())
        return plan

    changes = _changes(previous, scoring)
    ids = {key: existing.id for key, existing in standing.items() if key is not None}
    extracted = extract_observations(
        version.questionnaire,
        {**response, "id": version.id},
        scoring.scores,
        changes,
        response_reference=reference,
        issued=instant_text(version.stored_at),
        ids=lambda key: ids.setdefault(key, new_id()),
        reference=lambda oid: f"Observation/{oid}",
    )
    targets = [f"{reference}/_history/{version.version_id}"]
    scores: list[ScoreVersion] = []
    for item in extracted:
        resource = dict(item.resource)
        earlier = standing.pop(item.key, None)
        if earlier is None:
            obs_id, obs_version = resource.pop("id"), 1
            plan.new_observations.append((resource, obs_id, {"source_key": item.key}))
        else:
            obs_id, obs_version = earlier.id, earlier.version_id + 1
            plan.changed_observations.append((obs_id, resource))
        targets.append(f"Observation/{obs_id}/_history/{obs_version}")
        if item.key not in (None, "panel") and resource.get("status") != WITHDRAWN:
            scores.append(
                ScoreVersion(obs_id, obs_version, str(item.key), resource, earlier.resource if earlier else None)
            )
    _withdraw(plan, "Observation", standing.values())
    plan.provenance = provenance(
        targets=targets,
        response=response,
        questionnaire_reference=f"Questionnaire/{version.questionnaire_id}/_history/{version.questionnaire_version_id}",
        questionnaire_canonical=version.questionnaire_canonical,
        recorded=instant_text(version.stored_at),
        software=software,
        activity="CREATE" if version.version_id == 1 else "UPDATE",
    )
    stored = StoredResponse(
        version.id,
        version.version_id,
        str(response.get("status")),
        version.stored_at,
        version.patient,
        version.questionnaire_canonical,
    )
    plan.events = response_events(stored, scores, bands_of(previous.scores if previous else ()), raised_flags)
    return plan


def _withdraw(plan: DerivedWrites, resource_type: str, standing: Any) -> None:
    for existing in standing:
        if existing.resource.get("status") != WITHDRAWN:
            plan.withdrawn.append((resource_type, existing.id, {**existing.resource, "status": WITHDRAWN}))


def _changes(previous: Previous | None, scoring: ScoringResult) -> dict[str, Change]:
    if previous is None:
        return {}
    authored = previous.authored.isoformat() if isinstance(previous.authored, datetime) else None
    values: dict[str, PreviousScore] = {}
    for key, resource in previous.scores:
        value = resource.get("valueInteger", (resource.get("valueQuantity") or {}).get("value"))
        if isinstance(value, int | float):
            values[key] = PreviousScore(float(value), previous.id, authored)
    return compare_scores(scoring.scores, values)
