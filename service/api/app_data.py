"""The launched patient's data for the clinician app, through the same use cases, grants and audit as the API.

The app reads the service's own store, not the EHR: each read or write is the API's use case, called with the
Grant a patient-scoped SMART token for that patient would get, inside an audit context, so the compartment
rules, validation, scoring, extraction and AuditEvents are exactly the API's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import request

from service import questionnaires, resources
from service.api.http import audited as audit_scope
from service.api.web import services
from service.audit import AuditContext
from service.auth.access import PUBLIC_DEFINITIONS, Grant, Interaction
from service.auth.delegated import BACKEND_CONTEXTS, Owner, read_grant
from service.fhir import jsonio
from service.fhir.errors import Forbidden
from service.fhir.issues import Issue
from service.flags import FlagReview, mark_flag_reviewed, reviews_of
from service.invitations import tasks
from service.invitations.shape import OpenRequest
from service.outcomes.classify import Tally
from service.outcomes.evaluate import Period, evaluate_outcomes
from service.responses.checks import validation_outcome
from service.responses.submit import submit_response
from service.terminology import value_set_resolver
from service.writes import WriteResult

MAX_RESULTS = 5000  # a dashboard bound: years of weekly measures, far below anything slow
CLINICIAN_TYPES = ("Practitioner", "PractitionerRole")  # a fhirUser of these types is a clinician
PATIENT_TYPES = ("Patient", "RelatedPerson")  # ... of these, the person or someone answering for them


@dataclass(frozen=True)
class Clinician:
    """Who is looking, for whom: the launch context as the service's access rules see it."""

    subject: str  # the service's Patient id
    client_id: str | None
    user: str | None  # the signed-in user's fhirUser (from the EHR's verified id_token), when it gave one
    scopes: tuple[str, ...]

    @property
    def user_type(self) -> str | None:
        """The resource type the fhirUser names ('Practitioner' for '.../Practitioner/123')."""
        parts = (self.user or "").rstrip("/").split("/")
        return parts[-2] if len(parts) >= 2 else None

    @property
    def is_clinician(self) -> bool:
        """The EHR says a clinician signed in: only they may mark a safety item reviewed."""
        return self.user_type in CLINICIAN_TYPES

    def grant(self, resource_type: str) -> Grant:
        """The API's grant for a patient-scoped token: definitions are open, health data is this patient's only."""
        if resource_type in PUBLIC_DEFINITIONS:
            return Grant(unrestricted=True, client_id=self.client_id, user=self.user, scopes=self.scopes)
        # Confined to the launched patient, acting as the user who launched the app: a clinician, unless the EHR
        # says the person (or someone answering for them) signed in, whose acts are never a clinician's.
        return Grant(
            unrestricted=False,
            patient=self.subject,
            client_id=self.client_id,
            user=self.user,
            scopes=self.scopes,
            acting_as="patient" if self.user_type in PATIENT_TYPES else "user",
        )

    def service_grant(self) -> Grant:
        """What the launch's own scopes allow beyond the patient (its user/ scopes), for service-wide views such as
        the outcomes page: the use case derives from these scopes what may be read, as for an API token."""
        return Grant(unrestricted=False, client_id=self.client_id, user=self.user, scopes=self.scopes)


@contextmanager
def audited(interaction: Interaction, grant: Grant, query: str | None = None) -> Iterator[None]:
    """Record the interaction as an AuditEvent, as the API's interaction seam does (a failure is recorded too)."""
    context = AuditContext(interaction, request.remote_addr, query, grant=grant)
    with audit_scope(context) as outcome:
        outcome.status = 201 if interaction.name == "create" else 200
        yield


def search_all(clinician: Clinician, resource_type: str, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every match of a search, page after page (one audited search)."""
    grant = clinician.grant(resource_type)
    pairs = [*pairs, ("_count", str(services().settings.max_page_size))]
    found: list[dict[str, Any]] = []
    with audited(Interaction("search-type", resource_type), grant, urlencode(pairs)):
        page_token: str | None = None
        while len(found) < MAX_RESULTS:
            page = [*pairs, *([("_page", page_token)] if page_token else [])]
            search = resources.parse_search(services(), resource_type, page, strict=True)
            result = resources.search(services(), resource_type, search, grant)
            found.extend(jsonio.loads_object(body) for _, body in result.matches)
            page_token = result.next_page
            if page_token is None:
                break
    return found


def read(clinician: Clinician, resource_type: str, resource_id: str) -> dict[str, Any]:
    grant = clinician.grant(resource_type)
    with audited(Interaction("read", resource_type, resource_id), grant):
        return resources.read(services(), resource_type, resource_id, grant).resource()


def definitions_named(canonicals: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The Questionnaires these canonicals name, resolved as submissions resolve them (definitions, not health data:
    not audited, as the API does not audit reading them)."""
    return questionnaires.definitions_named(services(), canonicals)


def submit(clinician: Clinician, response: dict[str, Any]) -> WriteResult:
    """Store a QuestionnaireResponse exactly as POST /fhir/QuestionnaireResponse would: validated, scored, audited."""
    grant = clinician.grant("QuestionnaireResponse")
    with audited(Interaction("create", "QuestionnaireResponse"), grant):
        return submit_response(services(), response, grant)


def outcomes(clinician: Clinician, subject: str | None, period: Period) -> list[Tally]:
    """The outcome counts $evaluate-measure reports, for the outcomes page (one audited evaluation)."""
    grant = clinician.service_grant()
    query = urlencode([("subject", subject or ""), ("periodStart", period.start), ("periodEnd", period.end)])
    with audited(Interaction("operation-evaluate-measure", "Measure"), grant, query):
        return evaluate_outcomes(services(), subject=subject, period=period, grant=grant).tallies


def groups(clinician: Clinician) -> list[dict[str, Any]]:
    """The Groups the launch may read (user/Group.rs), for choosing whose outcomes to see; none without the scope."""
    grant = read_grant(Owner.of(clinician.service_grant()), "Group", BACKEND_CONTEXTS)
    if grant is None:
        return []
    pairs = [("_count", str(services().settings.max_page_size))]
    with audited(Interaction("search-type", "Group"), grant, urlencode(pairs)):
        search = resources.parse_search(services(), "Group", pairs, strict=True)
        result = resources.search(services(), "Group", search, grant)
    found = [jsonio.loads_object(body) for _, body in result.matches]
    return sorted(found, key=lambda group: str(group.get("name") or group.get("id")).lower())


def check(questionnaire: dict[str, Any], response: dict[str, Any]) -> list[Issue]:
    """Every issue submitting this response would meet, as $validate reports them: nothing is stored."""
    return validation_outcome(questionnaire, response, value_set_resolver(services()))


def review_flag(clinician: Clinician, flag_id: str) -> bool:
    """Mark a safety Flag reviewed as PUT Flag or CDS feedback would (Flag inactive, period ended, the reviewer's
    Provenance), audited; False when it was not active (reviewed already, or withdrawn)."""
    grant = clinician.grant("Flag")
    with audited(Interaction("update", "Flag", flag_id), grant):
        if not clinician.is_clinician:
            raise Forbidden(
                "Marking a safety item reviewed is a clinician's act: the EHR did not say that a clinician "
                "(a Practitioner) signed in to this app"
            )
        return mark_flag_reviewed(services(), flag_id, grant)


def flag_reviews(clinician: Clinician, flag_id: str) -> list[FlagReview]:
    """Who reviewed a safety Flag and when (an audited read of its Provenance)."""
    grant = clinician.grant("Provenance")
    with audited(Interaction("search-type", "Provenance"), grant, urlencode([("target", f"Flag/{flag_id}")])):
        return reviews_of(services(), flag_id, grant)


def open_requests(clinician: Clinician) -> list[OpenRequest]:
    """The launched person's open requests to complete a measure (their Tasks, read within the launch's grant)."""
    grant = clinician.grant("Task")
    query = urlencode([("patient", clinician.subject), ("status", "open")])
    with audited(Interaction("search-type", "Task"), grant, query):
        return tasks.open_requests(services(), clinician.subject, grant)
