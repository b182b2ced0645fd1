"""The one audit seam: every FHIR interaction is reported here with who, what and the outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from service.auth.access import Interaction

log = logging.getLogger("proms.audit")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    interaction: Interaction
    status: int
    client_address: str | None


class Auditor(Protocol):
    def record(self, record: AuditRecord) -> None: ...


class LogAuditor:
    """Writes one structured log line per interaction (no resource content, no answers)."""

    def record(self, record: AuditRecord) -> None:
        interaction = record.interaction
        log.info(
            "audit",
            extra={
                "interaction": interaction.name,
                "resource_type": interaction.resource_type,
                "resource_id": interaction.resource_id,
                "outcome": record.status,
                "client": record.client_address,
            },
        )
