"""Safety flags are raised by scoring; a clinician's only change to one is to mark it reviewed (inactive)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.fhir.errors import Unprocessable
from service.fhir.issues import Issue
from service.interactions import Prepared, ReadOnlyRules
from service.store.models import ResourceRow

REVIEWABLE = ("active", "inactive")


class FlagRules(ReadOnlyRules):
    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared:
        if current is None:
            raise Unprocessable(f"Flag/{row.id} was deleted with its response", code="not-found")
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
        return Prepared({**current, "status": resource["status"]})
