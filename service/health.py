"""Whether this process can serve: the database answers and its schema is at the latest migration."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.services import Services
from service.store.migrations import current_revision, head_revision

log = logging.getLogger("proms.health")


@dataclass(frozen=True, slots=True)
class Readiness:
    reachable: bool
    current: str | None = None  # the database's migration revision
    head: str | None = None  # the latest revision this code knows

    @property
    def ready(self) -> bool:
        return self.reachable and self.current == self.head


def readiness(services: Services) -> Readiness:
    try:
        current = current_revision(services.db.engine)
    except Exception as exc:  # any driver error means the same thing here: not ready
        log.warning("database not reachable", extra={"error": type(exc).__name__})
        return Readiness(reachable=False)
    return Readiness(True, current, head_revision(services.settings.migrations_dir))
