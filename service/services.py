"""The service's parts, built once and handed on typed: what the use cases, the HTTP layer, the CLI and the worker
share."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.audit import DatabaseAuditor
from service.config import LOOPBACK_HOSTS, Settings, package_version
from service.faults import FaultPoints
from service.store.db import Database
from service.store.questionnaires import QuestionnaireCache
from service.store.terminology import VersionCache


@dataclass(frozen=True, slots=True)
class Services:
    """Settings, the database, the audit sink and the caches: one per process (an app, a CLI command, a worker)."""

    settings: Settings
    db: Database
    auditor: DatabaseAuditor
    questionnaires: QuestionnaireCache  # parsed Questionnaire versions
    faults: FaultPoints  # test-only crash points inside a submission's transaction
    software: str  # what Provenance names as the software that derived a resource
    # Expansions of stored ValueSets, by (type, id, versionId) of the ValueSet; default: a new cache per Services.
    expansions: VersionCache[object] = field(default_factory=lambda: VersionCache(capacity=32))

    def close(self) -> None:
        self.db.dispose()


def build_services(settings: Settings) -> Services:
    db = Database(settings.database_url)
    return Services(
        settings=settings,
        db=db,
        auditor=DatabaseAuditor(db),
        questionnaires=QuestionnaireCache(),
        faults=FaultPoints(settings.faults, enabled=settings.host in LOOPBACK_HOSTS),
        software=f"recovery-proms {package_version()}",
    )
