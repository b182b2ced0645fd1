"""Grants re-derived from a client's stored scopes, for work done later on its behalf (notifications, exports)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.auth.access import (
    PUBLIC_DEFINITIONS,
    UNRESTRICTED,
    Grant,
    _merge_filters,  # one rule for combining scope filters, not two
)
from service.auth.scopes import matching, parse_scopes
from service.fhir.errors import Forbidden

ALL_CONTEXTS = ("patient", "user", "system")
BACKEND_CONTEXTS = ("user", "system")


@dataclass(frozen=True, slots=True)
class Owner:
    """Who asked for the work, as their token said when they asked."""

    client_id: str | None
    user: str | None
    patient: str | None
    scopes: tuple[str, ...]
    # No authentication in force (development mode): the request was not limited by any token.
    open: bool = False

    @classmethod
    def of(cls, grant: Grant) -> Owner:
        return cls(grant.client_id, grant.user, grant.patient, tuple(grant.scopes), grant.open)

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "client_id": self.client_id,
                "user": self.user,
                "patient": self.patient,
                "scopes": list(self.scopes),
                "open": self.open,
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str | None) -> Owner:
        data: dict[str, Any] = orjson.loads(text) if text else {}
        return cls(
            client_id=data.get("client_id"),
            user=data.get("user"),
            patient=data.get("patient"),
            scopes=tuple(data.get("scopes") or ()),
            open=bool(data.get("open")),
        )

    def same_caller(self, grant: Grant) -> bool:
        """The grant is the one that asked: the same client acting for the same user (in development mode there is
        only one caller)."""
        if self.open or grant.open:
            return self.open and grant.open
        return self.client_id is not None and grant.client_id == self.client_id and grant.user == self.user


def read_grant(owner: Owner, resource_type: str, contexts: tuple[str, ...] = ALL_CONTEXTS) -> Grant | None:
    """What the owner may read of a resource type (None: nothing), with the patient and filters that apply."""
    if owner.open:
        return UNRESTRICTED
    if resource_type in PUBLIC_DEFINITIONS:
        return Grant(unrestricted=True, client_id=owner.client_id, user=owner.user, scopes=owner.scopes)
    found = matching(parse_scopes(owner.scopes), resource_type, "r", contexts)
    if not found:
        return None
    try:
        broad = [scope for scope in found if scope.context != "patient"]
        if broad:
            filters = _merge_filters(broad)
            return Grant(not filters, None, filters, owner.client_id, owner.user, owner.scopes)
        if owner.patient is None:
            return None
        return Grant(False, owner.patient, _merge_filters(found), owner.client_id, owner.user, owner.scopes)
    except Forbidden:
        return None
