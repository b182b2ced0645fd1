"""Groups of patients, stored as sent (members are referenced, not owned): what Group-level export reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.auth.access import Grant
from service.fhir.errors import Unprocessable
from service.fhir.issues import Issue
from service.fhir.versions import StoredVersion
from service.services import Services
from service.store.kinds import GROUP
from service.writes import (
    WriteResult,
    create,
    delete_resource,
    update,
)


def check_members(resource: Mapping[str, Any]) -> None:
    for index, member in enumerate(resource.get("member", [])):
        reference = (member.get("entity") or {}).get("reference")
        if not isinstance(reference, str) or reference.count("/") != 1 or reference.startswith("#"):
            raise Unprocessable(
                Issue(
                    "error",
                    "value",
                    "A member must be a literal reference such as Patient/123",
                    f"Group.member[{index}].entity",
                )
            )


def create_group(
    services: Services, resource: dict[str, Any], grant: Grant, *, if_none_exist: str | None = None
) -> WriteResult:
    """POST Group."""
    check_members(resource)
    return create(services, GROUP, resource, grant, patient=None, if_none_exist=if_none_exist)


def update_group(
    services: Services, group_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
) -> WriteResult:
    """PUT Group/{id}."""
    return update(
        services, GROUP, group_id, resource, grant, patient=None, if_match=if_match,
        check=lambda: check_members(resource),
    )  # fmt: skip


def delete_group(services: Services, group_id: str, grant: Grant) -> StoredVersion | None:
    """DELETE Group/{id}."""
    return delete_resource(services, GROUP, group_id, grant)
