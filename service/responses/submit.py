"""Submitting a QuestionnaireResponse: resolve its Questionnaire, validate and score it, work out what it derives,
then store it all in one transaction. Also its update (an amendment) and its deletion.

    submit_response
      resolve the Questionnaire          (one small query; parsed copies are cached)
      validate, score                    (pure: responses.checks)
      the person's previous response     (one query)
      Observations, Flags, Provenance,   (pure: responses.derived)
        outbox events
      one transaction: the open Task it answers completed, the response and its AuditEvent, what it derives
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth.access import Grant
from service.fhir import jsonio
from service.fhir.dates import utcnow
from service.fhir.errors import BadRequest, Conflict, Unprocessable
from service.fhir.issues import Issue
from service.fhir.response_status import RESPONSE_STATUSES
from service.fhir.versions import StoredVersion
from service.invitations.tasks import complete_open_task
from service.resources import visible
from service.responses.checks import CheckedResponse, check_response
from service.responses.derived import DerivedWrites, Existing, Previous, ResponseVersion, plan_derived
from service.services import Services
from service.store import derived as store_derived
from service.store import outbox
from service.store import questionnaires as store
from service.store import responses as store_responses
from service.store.access import check_body, subject_patient
from service.store.kinds import FLAG, OBSERVATION, PROVENANCE, QUESTIONNAIRE_RESPONSE, split_reference
from service.store.models import FlagRow, ObservationRow, QuestionnaireResponseRow, ResourceRow
from service.store.repository import ResourceRepository, new_id, new_row
from service.terminology import value_set_resolver
from service.writes import (
    WriteResult,
    audit_write,
    check_update_id,
    delete,
    find_existing,
    integrity_message,
    match,
    refusing_conflicts,
    replace,
    row_to_delete,
    row_to_update,
    within_grant,
)

QR = QUESTIONNAIRE_RESPONSE


@dataclass(frozen=True, slots=True)
class ResolvedQuestionnaire:
    ref: store.QuestionnaireRef
    resource: dict[str, Any]

    @property
    def canonical(self) -> str:
        return f"{self.ref.url}|{self.ref.version}" if self.ref.version else str(self.ref.url)


def resolve_questionnaire(services: Services, response: Mapping[str, Any]) -> ResolvedQuestionnaire:
    """The stored Questionnaire version a response answers (400 for a status R4 does not know, 422 if unknown)."""
    status = response.get("status")
    if status not in RESPONSE_STATUSES:
        raise BadRequest(
            Issue(
                "error",
                "code-invalid",
                f"QuestionnaireResponse.status must be one of {', '.join(RESPONSE_STATUSES)}, got {status!r}",
                "QuestionnaireResponse.status",
            )
        )
    canonical = response.get("questionnaire")
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
    with services.db.read_session() as session:
        ref = store.resolve_reference(session, str(canonical), services.settings.base_url)
        if ref is None:
            raise Unprocessable(
                Issue(
                    "error",
                    "not-found",
                    f"QuestionnaireResponse.questionnaire {canonical!r} does not resolve to a stored "
                    "Questionnaire; load the Questionnaire first (GET /fhir/Questionnaire lists them)",
                    "QuestionnaireResponse.questionnaire",
                )
            )
        return ResolvedQuestionnaire(ref, services.questionnaires.get(session, ref))


def _held_identifier(services: Services, resource: Mapping[str, Any], grant: Grant) -> StoredVersion | None:
    """The stored response with this response's business identifier, if it is the same response sent again: a
    retry about the same subject, which the caller may see. None when no live response holds the identifier.

    An identifier names one response: held by a response about another subject (or one the caller may not see),
    it is a 409, and nothing about that response is told."""
    identifier = resource.get("identifier")
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
        return None
    system = identifier.get("system")
    with services.db.read_session() as session:
        held = store_responses.holder_of_identifier(
            session, system if isinstance(system, str) else None, identifier["value"]
        )
        if held is None:
            return None
        row = ResourceRepository(session, QR).get_row(held)
        assert row is not None
        same_subject = (getattr(row, "subject_type", None), getattr(row, "subject_id", None)) == split_reference(
            resource.get("subject")
        )
        if not (same_subject and visible(session, services, QR, row, grant)):
            raise Conflict(
                Issue(
                    "error",
                    "duplicate",
                    "This identifier is already used by another QuestionnaireResponse: a business identifier names "
                    "one response, about one subject. Send this response with an identifier of its own",
                    "QuestionnaireResponse.identifier",
                )
            )
        return ResourceRepository.stored(QR, row)


# create ---------------------------------------------------------------------------------------------------


def submit_response(
    services: Services, resource: dict[str, Any], grant: Grant, *, if_none_exist: str | None = None
) -> WriteResult:
    """POST QuestionnaireResponse. A retry with the same business identifier (same subject) or If-None-Exist is
    answered with the stored response, before any work; so is a submission that loses a race for its identifier."""
    check_body(QR, grant, subject_patient(resource))
    if if_none_exist is not None and (found := find_existing(services, QR, if_none_exist, grant)) is not None:
        return WriteResult(found, created=False, existing=True)
    if (found := _held_identifier(services, resource, grant)) is not None:
        return WriteResult(found, created=False, existing=True)
    questionnaire = resolve_questionnaire(services, resource)
    checked = check_response(questionnaire.resource, resource, value_set_resolver(services))
    row, stored = new_row(QR, checked.scoring.response, None, {"questionnaire_pk": questionnaire.ref.pk}, utcnow())
    assert isinstance(row, QuestionnaireResponseRow)
    with services.db.read_session() as session:
        previous = _previous(session, row)
    plan = _plan(services, row, stored, questionnaire, checked, previous, {}, {})
    rows = _new_rows(plan, stored)  # built before the write lock is taken: inside it, only inserts
    try:
        with services.db.transaction() as session:
            if if_none_exist is not None and (found := match(session, services, QR, if_none_exist, grant)):
                return WriteResult(found, created=False, existing=True)
            if store_derived.previous_version_of(session, row) != _identity(previous):
                # Another response of the same person and instrument was stored meanwhile: compare with it.
                plan = _plan(services, row, stored, questionnaire, checked, _previous(session, row), {}, {})
                rows = _new_rows(plan, stored)
            complete_open_task(session, row.id, checked.scoring.response, stored.last_updated)
            _insert_audited(session, services, row, stored, grant)
            services.faults.reached("after-response")
            _write_derived(session, services, plan, rows)
            services.faults.reached("before-commit")
    except IntegrityError as exc:
        if (found := _held_identifier(services, resource, grant)) is not None:
            return WriteResult(found, created=False, existing=True)  # a concurrent retry stored it first
        raise Unprocessable(integrity_message(QR, exc), code="duplicate") from None
    return WriteResult(stored, created=True, issues=checked.warnings)


def _insert_audited(
    session: Session, services: Services, row: ResourceRow, stored: StoredVersion, grant: Grant
) -> None:
    ResourceRepository(session, QR).insert([(row, stored)])
    within_grant(session, services, QR, row, grant)
    audit_write(session, QR, row, stored, 201)


# update ---------------------------------------------------------------------------------------------------


def update_response(
    services: Services, resource_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
) -> WriteResult:
    """PUT QuestionnaireResponse/{id}: a new version (e.g. ``amended``); what it derives follows it."""
    check_update_id(QR, resource_id, resource)
    check_body(QR, grant, subject_patient(resource))
    questionnaire = resolve_questionnaire(services, resource)
    checked = check_response(questionnaire.resource, resource, value_set_resolver(services))
    columns = {"questionnaire_pk": questionnaire.ref.pk}
    with refusing_conflicts(QR), services.db.transaction() as session:
        row = row_to_update(session, services, QR, resource_id, grant, if_match=if_match)
        if row is None:  # the client chose the id: stored as a new response
            new, stored = new_row(QR, checked.scoring.response, resource_id, columns, utcnow())
            assert isinstance(new, QuestionnaireResponseRow)
            plan = _plan(services, new, stored, questionnaire, checked, _previous(session, new), {}, {})
            complete_open_task(session, new.id, checked.scoring.response, stored.last_updated)
            _insert_audited(session, services, new, stored, grant)
            _write_derived(session, services, plan, _new_rows(plan, stored))
            return WriteResult(stored, created=True, issues=checked.warnings)
        assert isinstance(row, QuestionnaireResponseRow)
        complete_open_task(session, row.id, checked.scoring.response, utcnow())
        stored = replace(session, services, QR, row, checked.scoring.response, grant, columns=columns)
        observations = _existing(store_derived.derived_from(session, ObservationRow, row.id))
        flags = _existing(store_derived.derived_from(session, FlagRow, row.id))
        plan = _plan(services, row, stored, questionnaire, checked, _previous(session, row), observations, flags)
        _write_derived(session, services, plan, _new_rows(plan, stored))
        return WriteResult(stored, created=False, issues=checked.warnings)


# delete ---------------------------------------------------------------------------------------------------


def delete_response(services: Services, resource_id: str, grant: Grant) -> StoredVersion | None:
    """DELETE QuestionnaireResponse/{id}: its Observations and Flags go with it (their Provenance stays, a record
    of what happened). None when it was already deleted."""
    with refusing_conflicts(QR, lost_race=Conflict), services.db.transaction() as session:
        row = row_to_delete(session, services, QR, resource_id, grant)
        if row.deleted:
            return None
        stored = delete(session, QR, row)
        observations = ResourceRepository(session, OBSERVATION)
        for observation in store_derived.derived_from(session, ObservationRow, row.id):
            observations.delete(observation)
        flags = ResourceRepository(session, FLAG)
        for flag in store_derived.derived_from(session, FlagRow, row.id):
            flags.delete(flag)
        return stored


# the steps ------------------------------------------------------------------------------------------------


def _previous(session: Session, row: QuestionnaireResponseRow) -> Previous | None:
    found, scores = store_derived.previous_response_of(session, row)
    if found is None:
        return None
    return Previous(found.id, found.version_id, found.authored_low, scores)


def _identity(previous: Previous | None) -> tuple[str, int] | None:
    return (previous.id, previous.version_id) if previous else None


def _existing(rows: list[ObservationRow] | list[FlagRow]) -> dict[str | None, Existing]:
    found: dict[str | None, Existing] = {}
    for row in rows:
        if row.resource_json is not None:
            resource = jsonio.loads_object(row.resource_json.encode())
            found[row.source_key] = Existing(row.id, row.version_id, row.source_key, resource)
    return found


def _plan(
    services: Services,
    row: QuestionnaireResponseRow,
    stored: StoredVersion,
    questionnaire: ResolvedQuestionnaire,
    checked: CheckedResponse,
    previous: Previous | None,
    observations: Mapping[str | None, Existing],
    flags: Mapping[str | None, Existing],
) -> DerivedWrites:
    version = ResponseVersion(
        id=row.id,
        version_id=stored.version_id,
        stored_at=stored.last_updated,
        resource=checked.scoring.response,
        questionnaire=questionnaire.resource,
        questionnaire_id=questionnaire.ref.id,
        questionnaire_version_id=questionnaire.ref.version_id,
        questionnaire_canonical=questionnaire.canonical,
        patient=row.subject_id if row.subject_type == "Patient" else None,
    )
    return plan_derived(
        version, checked.scoring, previous, observations=observations, flags=flags, new_id=new_id,
        software=services.software,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewRows:
    """The rows of what a plan creates (Flags, Observations, Provenance), stamped as the response is: built
    without the database, so a new submission builds them before its transaction."""

    flags: list[tuple[ResourceRow, StoredVersion]]
    observations: list[tuple[ResourceRow, StoredVersion]]
    provenance: list[tuple[ResourceRow, StoredVersion]]


def _new_rows(plan: DerivedWrites, stored: StoredVersion) -> NewRows:
    now = stored.last_updated
    return NewRows(
        [new_row(FLAG, resource, resource_id, columns, now) for resource, resource_id, columns in plan.new_flags],
        [
            new_row(OBSERVATION, resource, resource_id, columns, now)
            for resource, resource_id, columns in plan.new_observations
        ],
        [new_row(PROVENANCE, plan.provenance, None, {}, now)] if plan.provenance is not None else [],
    )


def _write_derived(session: Session, services: Services, plan: DerivedWrites, rows: NewRows) -> None:
    """Everything the plan says, in the response's transaction: the new rows as built, then the changes."""
    observations = ResourceRepository(session, OBSERVATION)
    flags = ResourceRepository(session, FLAG)
    flags.insert(rows.flags)
    for observation_id, resource in plan.changed_observations:
        row = observations.get_row(observation_id)
        assert row is not None
        observations.update(row, resource)
    observations.insert(rows.observations)
    for resource_type, resource_id, resource in plan.withdrawn:
        repository = observations if resource_type == "Observation" else flags
        row = repository.get_row(resource_id)
        assert row is not None
        repository.update(row, resource)
    services.faults.reached("after-observations")
    ResourceRepository(session, PROVENANCE).insert(rows.provenance)
    # The outbox: committed with the response, or not at all.
    outbox.add_events(session, plan.events)
