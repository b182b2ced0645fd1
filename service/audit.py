"""The one audit seam: every FHIR interaction becomes an AuditEvent (IHE Basic Audit Log Patterns style).

Writes are audited inside their own transaction (the event and the change commit together); reads,
searches and refusals are audited after the fact in a transaction of their own, and a failure to audit
fails the request rather than going unrecorded.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from service.auth.access import HEALTH_DATA_OPERATIONS, PUBLIC_DEFINITIONS, Grant, Interaction
from service.fhir.dates import instant_text, utcnow
from service.store.db import Database
from service.store.kinds import AUDIT_EVENT
from service.store.repository import ResourceRepository

ACTIONS = {"create": "C", "read": "R", "vread": "R", "update": "U", "delete": "D", "search-type": "E"}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
# Interactions on one named resource: their AuditEvent names it even when the access was refused.
INSTANCE_INTERACTIONS = frozenset({"read", "vread", "history-instance", "update", "delete"})
SOURCE = "recovery-proms"


@dataclass
class AuditContext:
    """What one request did, gathered as it runs; written as one AuditEvent."""

    interaction: Interaction
    address: str | None
    query: str | None
    grant: Grant | None = None
    entities: list[str] = field(default_factory=list)  # "Type/id" of the resources touched
    patients: set[str] = field(default_factory=set)
    written_in_transaction: bool = False


current_audit: ContextVar[AuditContext | None] = ContextVar("current_audit", default=None)


def note(resource_type: str, resource_id: str, patient: str | None) -> None:
    """Remember a resource (and its patient) the current request touched."""
    context = current_audit.get()
    if context is None:
        return
    reference = f"{resource_type}/{resource_id}"
    if reference not in context.entities:
        context.entities.append(reference)
    if patient:
        context.patients.add(patient)


def note_patient(patient: str) -> None:
    """Remember a patient whose data the current request disclosed or touched."""
    context = current_audit.get()
    if context is not None:
        context.patients.add(patient)


def note_patients(patients: Iterable[str]) -> None:
    """Remember the patients whose data the current request read in bulk (an outcome report's population)."""
    context = current_audit.get()
    if context is not None:
        context.patients.update(patients)


def _outcome(status: int) -> tuple[str, str]:
    if status < 400:
        return "0", "success"
    if status < 500:
        return "4", f"refused or invalid ({status})"
    return "8", f"server failure ({status})"


def audit_event(context: AuditContext, status: int) -> dict[str, Any]:
    """The AuditEvent for a request (pure)."""
    interaction = context.interaction
    outcome, description = _outcome(status)
    grant = context.grant
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP",
                    "display": "information recipient",
                }
            ]
        },
        "requestor": True,
        "who": {"identifier": {"value": (grant.client_id if grant else None) or "anonymous"}},
    }
    if grant and grant.user:
        agent["altId"] = grant.user
    if context.address:
        agent["network"] = {"address": context.address, "type": "2"}
    references = list(context.entities)
    if interaction.name in INSTANCE_INTERACTIONS and interaction.resource_type and interaction.resource_id:
        asked = f"{interaction.resource_type}/{interaction.resource_id}"
        if asked not in references:  # refused, or unknown: what was asked for is recorded all the same
            references.insert(0, asked)
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": reference},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
        }
        for reference in references
    ]
    for patient in sorted(context.patients | ({grant.patient} if grant and grant.patient else set())):
        entities.append(
            {
                "what": {"reference": f"Patient/{patient}"},
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"},
            }
        )
    if context.query:
        entities.append(
            {
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24"},
                "query": base64.b64encode(context.query.encode()).decode(),
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": INTERACTION_SYSTEM, "code": interaction.name}],
        "action": ACTIONS.get(interaction.name, "E"),
        "recorded": instant_text(utcnow()),
        "outcome": outcome,
        "outcomeDesc": description,
        "agent": [agent],
        "source": {
            "observer": {"display": SOURCE},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}],
        },
    }
    if entities:
        event["entity"] = entities
    return event


def touches_health_data(interaction: Interaction) -> bool:
    """Reading definitions (Questionnaires, Measures, the CapabilityStatement, extensions) is not audited; the rest
    is, and so is an operation on a definition that reads health data ($evaluate-measure reads what it counts)."""
    if interaction.resource_type is None:
        return False
    if interaction.name in HEALTH_DATA_OPERATIONS:
        return True
    return not (interaction.resource_type in PUBLIC_DEFINITIONS and interaction.permission in ("r", "s"))


def write_in_transaction(session: Session, status: int) -> None:
    """Audit the current request's write in the write's own transaction (committed with it, or not at all)."""
    context = current_audit.get()
    if context is None:
        return
    ResourceRepository(session, AUDIT_EVENT).append(audit_event(context, status))
    context.written_in_transaction = True


class DatabaseAuditor:
    """Stores AuditEvents; what was not written with a write is written here, after the request."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, context: AuditContext, status: int, *, failed: bool) -> None:
        if not failed and (context.written_in_transaction or not touches_health_data(context.interaction)):
            return
        with self.db.transaction(append_only=True) as session:
            ResourceRepository(session, AUDIT_EVENT).append(audit_event(context, status))
