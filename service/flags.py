"""Reviewing safety Flags. Scoring raises them; a clinician's only change to one is to mark it reviewed (inactive),
or active again."""

from __future__ import annotations

from typing import Any

from service.auth.access import Grant
from service.fhir.errors import Gone, MethodNotAllowed, NotFound, PreconditionFailed, Unprocessable
from service.fhir.issues import Issue
from service.resources import read
from service.services import Services
from service.store.access import check_body, subject_patient
from service.store.kinds import FLAG
from service.writes import WriteResult, check_update_id, current_resource, refusing_conflicts, replace, row_to_update

REVIEWABLE = ("active", "inactive")


def update_flag(
    services: Services, flag_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
) -> WriteResult:
    """PUT Flag/{id}: only the status may change, between active and inactive (reviewed)."""
    check_update_id(FLAG, flag_id, resource)
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
        unchanged = {k: v for k, v in current.items() if k not in ("meta", "status")}
        proposed = {k: v for k, v in resource.items() if k not in ("meta", "status")}
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
        stored = replace(session, FLAG, row, {**current, "status": resource["status"]})
    return WriteResult(stored, created=False)


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
