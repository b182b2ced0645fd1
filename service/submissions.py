"""Submitting a QuestionnaireResponse: resolve its Questionnaire, validate, score, extract, store: one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from service.change import Change, PreviousScore, compare_scores
from service.extraction import extract_observations, provenance, safety_flag
from service.faults import FaultPoints
from service.fhir import jsonio
from service.fhir.dates import instant_text
from service.fhir.errors import BadRequest, Unprocessable
from service.fhir.issues import Issue
from service.interactions import Prepared
from service.jobs import outbox
from service.jobs.outbox import record_events
from service.scoring import ScoringResult, score_response
from service.store import derived
from service.store import questionnaires as store
from service.store.kinds import FLAG, OBSERVATION, PROVENANCE
from service.store.models import FlagRow, ObservationRow, QuestionnaireResponseRow, QuestionnaireRow, ResourceRow
from service.store.repository import ResourceRepository, StoredVersion, new_id
from service.validation import validate_response

RESPONSE_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
SCORED_STATUSES = derived.SCORED_STATUSES
Found = TypeVar("Found")


def _resolve(
    canonical: str, base_url: str, by_id: Callable[[str], Found], by_url: Callable[[str, str | None], Found]
) -> Found:
    local_prefix = base_url.rstrip("/") + "/Questionnaire/"
    if canonical.startswith(local_prefix) or canonical.startswith("Questionnaire/"):
        found = by_id(canonical.rsplit("/", 1)[-1].split("|")[0])
        if found is not None:
            return found
    url, _, version = canonical.partition("|")
    return by_url(url, version or None)


def resolve_questionnaire(session: Session, canonical: str, base_url: str) -> QuestionnaireRow | None:
    """A response's ``questionnaire``: ``url|version``, ``url`` (the latest version), or ``Questionnaire/id``."""
    return _resolve(
        canonical,
        base_url,
        lambda resource_id: store.find_by_id(session, resource_id),
        lambda url, version: store.find_by_canonical(session, url, version),
    )


def resolve_reference(session: Session, canonical: str, base_url: str) -> store.QuestionnaireRef | None:
    """As resolve_questionnaire, the identity of the version only (one small query)."""
    return _resolve(
        canonical,
        base_url,
        lambda resource_id: store.ref_by_id(session, resource_id),
        lambda url, version: store.ref_by_canonical(session, url, version),
    )


@dataclass(slots=True)
class Submission:
    """What preparing a response worked out, carried to the derived writes after it is stored."""

    questionnaire_row: store.QuestionnaireRef
    questionnaire: dict[str, Any]
    scoring: ScoringResult
    warnings: list[Issue] = field(default_factory=list)


class QuestionnaireCache:
    """Parsed Questionnaires by (id, version): stored versions never change, so parse each once."""

    def __init__(self, capacity: int = 256) -> None:
        self._entries: dict[tuple[str, int], dict[str, Any]] = {}
        self._capacity = capacity

    def get(self, session: Session, ref: store.QuestionnaireRef) -> dict[str, Any]:
        key = (ref.id, ref.version_id)
        found = self._entries.get(key)
        if found is None:
            text = store.json_of(session, ref.pk)
            assert text is not None
            found = jsonio.loads_object(text.encode())
            if len(self._entries) >= self._capacity:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = found
        return found


def check_response(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> tuple[ScoringResult, list[Issue]]:
    """Validate then score (pure): raises 422 listing every error; returns the scored response and warnings."""
    issues = validate_response(questionnaire, response)
    errors = [issue for issue in issues if issue.is_error]
    if errors:
        raise Unprocessable(errors)
    scoring = score_response(questionnaire, response)
    scoring_errors = [issue for issue in scoring.issues if issue.is_error]
    if scoring_errors:
        raise Unprocessable(scoring_errors)
    warnings = [issue for issue in issues if not issue.is_error] + list(scoring.issues)
    return scoring, warnings


def validation_outcome(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> list[Issue]:
    """Every issue a submission of this response would meet (for $validate): nothing raised, nothing stored."""
    issues = validate_response(questionnaire, response)
    if not any(issue.is_error for issue in issues):
        issues += list(score_response(questionnaire, response).issues)
    return issues


class QuestionnaireResponseRules:
    def __init__(self, base_url: str, software: str, faults: FaultPoints | None = None) -> None:
        self.base_url = base_url
        self.software = software
        self.faults = faults or FaultPoints()
        self.questionnaires = QuestionnaireCache()

    # preparing --------------------------------------------------------------------------------------------

    def prepare_early(self, session: Session, resource: dict[str, Any]) -> Prepared | None:
        # Resolving, validating and scoring need no write transaction: done before it, so the database's
        # write lock is held only for the writes.
        return self._prepare(session, resource)

    def prepare_create(self, session: Session, resource: dict[str, Any]) -> Prepared:
        return self._prepare(session, resource)

    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared:
        return self._prepare(session, resource)

    def check_delete(self, session: Session, row: ResourceRow) -> None:
        return None

    def resolve(self, session: Session, resource: Mapping[str, Any]) -> tuple[store.QuestionnaireRef, dict[str, Any]]:
        status = resource.get("status")
        if status not in RESPONSE_STATUSES:
            raise BadRequest(
                Issue(
                    "error",
                    "code-invalid",
                    f"QuestionnaireResponse.status must be one of {', '.join(RESPONSE_STATUSES)}, got {status!r}",
                    "QuestionnaireResponse.status",
                )
            )
        canonical = resource.get("questionnaire")
        if not canonical:
            raise Unprocessable(
                Issue(
                    "error",
                    "required",
                    "QuestionnaireResponse.questionnaire is required: name the Questionnaire answered by its "
                    "canonical url|version",
                    "QuestionnaireResponse.questionnaire",
                )
            )
        row = resolve_reference(session, str(canonical), self.base_url)
        if row is None:
            raise Unprocessable(
                Issue(
                    "error",
                    "not-found",
                    f"QuestionnaireResponse.questionnaire {canonical!r} does not resolve to a stored "
                    "Questionnaire; load the Questionnaire first (GET /fhir/Questionnaire lists them)",
                    "QuestionnaireResponse.questionnaire",
                )
            )
        return row, self.questionnaires.get(session, row)

    def _prepare(self, session: Session, resource: dict[str, Any]) -> Prepared:
        row, questionnaire = self.resolve(session, resource)
        scoring, warnings = check_response(questionnaire, resource)
        submission = Submission(row, questionnaire, scoring, warnings)
        return Prepared(scoring.response, warnings, {"questionnaire_pk": row.pk}, submission)

    # derived writes, in the response's transaction --------------------------------------------------------

    def after_write(self, session: Session, row: ResourceRow, stored: StoredVersion, prepared: Prepared) -> None:
        assert isinstance(row, QuestionnaireResponseRow)
        submission: Submission = prepared.context
        response = prepared.resource
        self.faults.reached("after-response")
        observations = ResourceRepository(session, OBSERVATION)
        # A new response has nothing derived from it yet: only a new version of one needs the look-ups.
        first = stored.version_id == 1
        existing = {} if first else {obs.source_key: obs for obs in derived.observations_of(session, row.id)}
        raised = self._sync_flags(session, row, submission, response, first=first)
        if response.get("status") not in SCORED_STATUSES:
            self._withdraw(observations, existing.values())
            return
        previous, previous_scores = derived.previous_response_of(session, row)
        changes = self._changes(previous, previous_scores, submission)
        ids = {key: obs.id for key, obs in existing.items() if key is not None}
        extracted = extract_observations(
            submission.questionnaire,
            {**response, "id": row.id},
            submission.scoring.scores,
            changes,
            response_reference=f"QuestionnaireResponse/{row.id}",
            issued=instant_text(stored.last_updated),
            ids=lambda key: ids.setdefault(key, new_id()),
            reference=lambda oid: f"Observation/{oid}",
        )
        written: dict[int, tuple[ResourceRow, StoredVersion]] = {}
        new_items: list[tuple[int, tuple[dict[str, Any], str | None, dict[str, Any]]]] = []
        for position, item in enumerate(extracted):
            current = existing.pop(item.key, None)
            if current is None:
                resource = dict(item.resource)
                new_items.append((position, (resource, resource.pop("id"), {"source_key": item.key})))
            else:
                written[position] = (current, observations.update(current, item.resource))
        created = observations.create_many([new for _, new in new_items])
        written.update(zip((position for position, _ in new_items), created, strict=True))
        targets = [f"QuestionnaireResponse/{row.id}/_history/{stored.version_id}"]
        scores: list[tuple[ObservationRow, dict[str, Any]]] = []
        for position, item in enumerate(extracted):
            obs_row, obs_stored = written[position]
            assert isinstance(obs_row, ObservationRow)
            targets.append(f"Observation/{obs_stored.id}/_history/{obs_stored.version_id}")
            if item.key not in (None, "panel") and item.resource.get("status") != "entered-in-error":
                scores.append((obs_row, item.resource))
        self._withdraw(observations, existing.values())
        self.faults.reached("after-observations")
        q_row = submission.questionnaire_row
        record = provenance(
            targets=targets,
            response=response,
            questionnaire_reference=f"Questionnaire/{q_row.id}/_history/{q_row.version_id}",
            questionnaire_canonical=f"{q_row.url}|{q_row.version}" if q_row.version else str(q_row.url),
            recorded=instant_text(stored.last_updated),
            software=self.software,
            activity="CREATE" if stored.version_id == 1 else "UPDATE",
        )
        ResourceRepository(session, PROVENANCE).create_many([(record, None, {})])
        # The outbox: committed with the response, or not at all.
        record_events(
            session,
            row,
            stored,
            scores=scores,
            previous_bands=outbox.bands_of(previous_scores),
            raised_flags=raised,
        )
        session.flush()
        self.faults.reached("before-commit")

    def identity_query(self, resource: dict[str, Any]) -> str | None:
        """A response with a business identifier is stored once: a repeat (a client's retry) finds it."""
        identifier = resource.get("identifier")
        if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
            return None
        system = identifier.get("system")
        value = identifier["value"].replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|")
        return urlencode({"identifier": f"{system}|{value}" if isinstance(system, str) else f"|{value}"})

    def after_delete(self, session: Session, row: ResourceRow) -> None:
        observations = ResourceRepository(session, OBSERVATION)
        for observation in derived.derived_from(session, ObservationRow, row.id):
            observations.delete(observation)
        flags = ResourceRepository(session, FLAG)
        for flag in derived.derived_from(session, FlagRow, row.id):
            flags.delete(flag)

    def _sync_flags(
        self,
        session: Session,
        row: QuestionnaireResponseRow,
        submission: Submission,
        response: dict[str, Any],
        *,
        first: bool,
    ) -> list[FlagRow]:
        """One Flag per raised safety item. A reviewed flag stays reviewed when the response is amended; a flag
        whose item is no longer raised (or whose response is withdrawn) is marked entered-in-error. Returns the
        Flags this write raised."""
        flags = ResourceRepository(session, FLAG)
        existing = {} if first else {flag.source_key: flag for flag in derived.derived_from(session, FlagRow, row.id)}
        raised = submission.scoring.safety_flags if response.get("status") in SCORED_STATUSES else ()
        new_flags: list[tuple[dict[str, Any], str | None, dict[str, Any]]] = []
        for raised_flag in raised:
            key = raised_flag.link_id or raised_flag.message
            if existing.pop(key, None) is None:
                resource = safety_flag(raised_flag.message, response, f"QuestionnaireResponse/{row.id}")
                new_flags.append((resource, None, {"source_key": key}))
        created = [flag for flag, _ in flags.create_many(new_flags)]
        self._withdraw(flags, existing.values())
        return [flag for flag in created if isinstance(flag, FlagRow)]

    @staticmethod
    def _withdraw(repository: ResourceRepository, rows: Any) -> None:
        """Observations no longer backed by a scored response are marked entered-in-error, never left stale."""
        for obs in rows:
            if obs.resource_json is None:
                continue
            resource = jsonio.loads_object(obs.resource_json.encode())
            if resource.get("status") != "entered-in-error":
                repository.update(obs, {**resource, "status": "entered-in-error"})

    @staticmethod
    def _changes(
        previous: derived.PreviousResponse | None,
        previous_scores: list[tuple[str, dict[str, Any]]],
        submission: Submission,
    ) -> dict[str, Change]:
        if previous is None:
            return {}
        authored = previous.authored_low.isoformat() if isinstance(previous.authored_low, datetime) else None
        values: dict[str, PreviousScore] = {}
        for key, resource in previous_scores:
            value = resource.get("valueInteger", (resource.get("valueQuantity") or {}).get("value"))
            if isinstance(value, int | float):
                values[key] = PreviousScore(float(value), previous.id, authored)
        return compare_scores(submission.scoring.scores, values)
