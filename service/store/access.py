"""Applying a caller's Grant to stored data: patient compartments and SMART v2 scope filters, on reads, searches and
writes (what the token allows is the auth package's to say; this is where it meets the queries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from service.auth.access import Grant
from service.fhir.errors import BadRequest, Forbidden
from service.fhir.search import Criterion, ReferenceValue, SearchRequest, TokenValue, parse_search
from service.store import search as store_search
from service.store.kinds import ResourceKind, split_reference
from service.store.models import ResourceRow

COMPARTMENT_PARAMS = ("patient", "subject")


def _filter_criteria(kind: ResourceKind, grant: Grant, base_url: str) -> list[Criterion]:
    if not grant.filters:
        return []
    try:
        parsed = parse_search(
            list(grant.filters), kind.capabilities, base_url=base_url, default_count=1, max_count=1, strict=True
        )
    except BadRequest:
        raise Forbidden(f"The token's scope filter cannot be applied to {kind.resource_type}") from None
    if len(parsed.criteria) != len(grant.filters):
        # e.g. ?_count=1: a result parameter restricts nothing, so a filter made of one would mean no filter at all.
        raise Forbidden("The token's scope filter names parameters that do not select resources (such as _count)")
    return parsed.criteria


def _patient_criterion(kind: ResourceKind, patient: str) -> Criterion:
    return Criterion(kind.capabilities.params["patient"], None, (ReferenceValue("Patient", patient),))


def _outside(kind: ResourceKind, patient: str) -> Forbidden:
    return Forbidden(
        f"This {kind.resource_type} is outside the compartment of Patient/{patient}, the only patient this "
        "token may access"
    )


def restrict_search(kind: ResourceKind, grant: Grant, request: SearchRequest, base_url: str) -> None:
    """Confine a search to what the grant allows; a search naming another patient is refused, never emptied."""
    if grant.unrestricted:
        return
    if grant.patient is not None:
        if kind.compartment is None:
            raise Forbidden(f"{kind.resource_type} is not available to patient-scoped tokens")
        for criterion in request.criteria:
            if criterion.param.name not in COMPARTMENT_PARAMS:
                continue
            for value in criterion.values:
                assert isinstance(value, ReferenceValue)
                if value.id != grant.patient or value.resource_type not in (None, "Patient"):
                    raise _outside(kind, grant.patient)
        request.criteria.append(_patient_criterion(kind, grant.patient))
    request.criteria.extend(_filter_criteria(kind, grant, base_url))


def check_row(session: Session, kind: ResourceKind, grant: Grant, row: ResourceRow, base_url: str) -> None:
    """Refuse access to a stored resource outside the grant (its patient, or its scope filter)."""
    if grant.unrestricted:
        return
    if grant.patient is not None:
        if kind.compartment is None or kind.compartment(row) != grant.patient:
            raise _outside(kind, grant.patient)
    criteria = _filter_criteria(kind, grant, base_url)
    if criteria:
        request = SearchRequest(criteria=criteria)
        request.criteria.append(Criterion(kind.capabilities.params["_id"], None, (TokenValue(None, row.id),)))
        if store_search.count(session, kind, request) != 1:
            raise Forbidden(f"The token's scope filter does not allow this {kind.resource_type}")


def check_body(kind: ResourceKind, grant: Grant, patient: str | None) -> None:
    """A patient-scoped client may only write resources about its own patient (``patient``: the one the written
    resource is about, e.g. ``subject_patient(resource)``; None when it is about no patient)."""
    if grant.unrestricted or grant.patient is None:
        return
    if kind.compartment is None:
        raise Forbidden(f"{kind.resource_type} cannot be written with a patient-scoped token")
    if patient != grant.patient:
        raise Forbidden(f"A patient-scoped token may only write a {kind.resource_type} about Patient/{grant.patient}")


def subject_patient(resource: Mapping[str, Any]) -> str | None:
    """The patient a resource's ``subject`` names (None: another kind of subject, or none)."""
    subject_type, subject_id = split_reference(resource.get("subject"))
    return subject_id if subject_type == "Patient" else None


def history_condition(kind: ResourceKind, grant: Grant, base_url: str, id_column: Any) -> ColumnElement[bool] | None:
    """For type-level history: only versions of resources the grant can see now."""
    if grant.unrestricted:
        return None
    request = SearchRequest()
    restrict_search(kind, grant, request, base_url)
    visible = select(kind.model.id).where(*store_search.conditions_for(kind, request, include_deleted=True))
    condition: ColumnElement[bool] = id_column.in_(visible)
    return condition
