"""Reviewing safety Flags. Scoring raises them; a clinician's only change to one is to mark it reviewed (inactive),
or active again. Reviewing is a clinician's act: never a patient-scoped token's. A review ends the Flag's period
and is recorded, with who did it, as a Provenance of the reviewed version (and in the request's AuditEvent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.auth.access import UNRESTRICTED, Grant
from service.fhir import jsonio
from service.fhir.dates import instant_text, utcnow
from service.fhir.errors import Forbidden, Gone, MethodNotAllowed, NotFound, PreconditionFailed, Unprocessable
from service.fhir.issues import Issue
from service.fhir.versions import StoredVersion
from service.resources import parse_search, read, search
from service.services import Services
from service.store.access import check_body, subject_patient
from service.store.kinds import FLAG, PROVENANCE
from service.store.repository import ResourceRepository
from service.writes import WriteResult, check_update_id, current_resource, refusing_conflicts, replace, row_to_update

REVIEWABLE = ("active", "inactive")
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
REVIEWER = "verifier"  # the participant type of a review's agent
REVIEWED = "safety flag reviewed"
REOPENED = "safety flag marked for review again"


@dataclass(frozen=True, slots=True)
class FlagReview:
    """One review of a safety Flag, from its Provenance."""

    recorded: str  # when (an instant)
    reviewer: str  # who, as the Provenance names them
    reviewed: bool  # True: marked reviewed; False: marked for review again


def update_flag(
    services: Services, flag_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
) -> WriteResult:
    """PUT Flag/{id}: only the status may change, between active and inactive (reviewed)."""
    check_update_id(FLAG, flag_id, resource)
    if grant.is_patient:
        raise Forbidden(
            "Reviewing a safety flag is a clinician's act: a patient-scoped token cannot change a Flag (a user/ or "
            "system/ scope is needed)"
        )
    check_body(FLAG, grant, subject_patient(resource))
    with refusing_conflicts(FLAG), services.db.transaction() as session:
        row = row_to_update(session, services, FLAG, flag_id, grant, if_match=if_match)
        if row is None:
            raise MethodNotAllowed(
                f"Flag/{flag_id} is not known, and flags are raised by scoring, never created by clients",
                headers={"Allow": "GET"},
            )
        current = current_resource(row)
        if current is None:
            raise Unprocessable(f"Flag/{flag_id} was deleted with its response", code="not-found")
        unchanged = {k: v for k, v in current.items() if k not in ("meta", "status", "period")}
        proposed = {k: v for k, v in resource.items() if k not in ("meta", "status", "period")}
        if unchanged != proposed or resource.get("status") not in REVIEWABLE or current.get("status") not in REVIEWABLE:
            raise Unprocessable(
                Issue(
                    "error",
                    "business-rule",
                    "A safety flag can only be marked reviewed (status 'inactive') or active again; everything "
                    "else about it comes from the scored response",
                    "Flag.status",
                )
            )
        status = str(resource["status"])
        if status == current.get("status"):
            stored = replace(session, services, FLAG, row, current, grant)
        else:
            stored = replace(session, services, FLAG, row, _with_status(current, status), grant)
            _record_review(session, services, stored, grant, status)
    return WriteResult(stored, created=False)


def _with_status(current: dict[str, Any], status: str) -> dict[str, Any]:
    """Reviewed: the flag's period ends now. Active again: it is open-ended once more."""
    period = dict(current.get("period") or {})
    if status == "inactive":
        period["end"] = instant_text(utcnow())
    else:
        period.pop("end", None)
    changed = {**current, "status": status}
    if period:
        changed["period"] = period
    else:
        changed.pop("period", None)
    return changed


def reviewer_of(grant: Grant) -> dict[str, Any]:
    """The reviewer as a Provenance agent names them: the user the token speaks for, and the client it came from."""
    who: dict[str, Any] = {"display": grant.user or grant.client_id or "unidentified reviewer"}
    if grant.user:
        who["identifier"] = {"value": grant.user}
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": REVIEWER, "display": "Verifier"}]},
        "who": who,
    }
    if grant.client_id:
        agent["onBehalfOf"] = {"display": f"client {grant.client_id}"}
    return agent


def _record_review(session: Session, services: Services, stored: StoredVersion, grant: Grant, status: str) -> None:
    record = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Flag/{stored.id}/_history/{stored.version_id}"}],
        "recorded": instant_text(stored.last_updated),
        "activity": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}],
            "text": REVIEWED if status == "inactive" else REOPENED,
        },
        "agent": [reviewer_of(grant)],
    }
    ResourceRepository(session, PROVENANCE).create_many([(record, None, {})], now=stored.last_updated)


def mark_flag_reviewed(services: Services, flag_id: str, grant: Grant) -> bool:
    """Mark an active safety Flag reviewed (inactive); False when there is no such active Flag."""
    for _ in range(3):
        try:
            stored = read(services, "Flag", flag_id, grant)
        except (NotFound, Gone):
            return False
        resource = stored.resource()
        if resource.get("status") != "active":
            return False
        try:
            update_flag(services, flag_id, {**resource, "status": "inactive"}, grant, if_match=stored.version_id)
            return True
        except PreconditionFailed:
            continue  # changed by someone else meanwhile: look at it again
    return False


def reviews_of(services: Services, flag_id: str, grant: Grant) -> list[FlagReview]:
    """Who reviewed a safety Flag and when, oldest first, from the Provenance each review recorded.

    For a caller who may see the Flag (it is read with their grant first) and who may review it: like the review
    itself, its record is the clinicians' (Provenance is never served to patient-scoped tokens)."""
    if grant.is_patient:
        raise Forbidden("Who reviewed a safety flag is part of the clinicians' record, not served to patient scopes")
    read(services, "Flag", flag_id, grant)
    pairs = [("target", f"Flag/{flag_id}"), ("_sort", "_lastUpdated"), ("_count", str(services.settings.max_page_size))]
    request = parse_search(services, "Provenance", pairs, strict=True)
    found = search(services, "Provenance", request, UNRESTRICTED)
    reviews = []
    for _, body in found.matches:
        record = jsonio.loads_object(body)
        for agent in record.get("agent") or ():
            codes = {coding.get("code") for coding in (agent.get("type") or {}).get("coding") or ()}
            if REVIEWER in codes:
                who = agent.get("who") or {}
                reviewer = str(who.get("display") or (who.get("identifier") or {}).get("value") or "unidentified")
                reviewed = (record.get("activity") or {}).get("text") != REOPENED
                reviews.append(FlagReview(str(record.get("recorded") or ""), reviewer, reviewed))
    return reviews
