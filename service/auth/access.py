"""The one access-check seam every route passes through before it touches data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Interaction:
    """What a request is about to do: a FHIR interaction on a resource type (and instance)."""

    name: str  # read | vread | update | delete | history-instance | history-type | create | search-type | ...
    resource_type: str | None = None
    resource_id: str | None = None


class AccessPolicy(Protocol):
    def authorize(self, interaction: Interaction) -> None:
        """Return if allowed; raise a FhirError (401/403) if not."""


class AllowAll:
    """No access control (development only)."""

    def authorize(self, interaction: Interaction) -> None:
        return None
