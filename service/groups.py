"""Groups of patients: stored as sent, for Group-level Bulk Data export (members are referenced, not owned)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.fhir.errors import Unprocessable
from service.fhir.issues import Issue
from service.interactions import NoDerivedWrites, Prepared
from service.store.models import ResourceRow


def _check_members(resource: dict[str, Any]) -> None:
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


class GroupRules(NoDerivedWrites):
    def prepare_create(self, session: Session, resource: dict[str, Any]) -> Prepared:
        _check_members(resource)
        return Prepared(resource)

    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared:
        _check_members(resource)
        return Prepared(resource)

    def check_delete(self, session: Session, row: ResourceRow) -> None:
        return None
