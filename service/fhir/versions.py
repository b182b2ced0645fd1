"""One stored version of a resource, as FHIR versioning sees it: what reads, ETags and history entries are made of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.fhir import jsonio


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as stored: what reads, ETags and history entries are made from."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    json: bytes | None  # None for a deletion
    method: str = "PUT"

    def resource(self) -> dict[str, Any]:
        assert self.json is not None
        return jsonio.loads_object(self.json)
