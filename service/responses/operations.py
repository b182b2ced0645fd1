"""The operations on QuestionnaireResponse: $validate (FHIR core) and $extract (SDC). Neither stores anything."""

from __future__ import annotations

import uuid
from typing import Any

from service.auth.access import Grant
from service.extraction import Extracted, extract_observations
from service.fhir.dates import instant_text, utcnow
from service.fhir.errors import BadRequest, FhirError
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.resources import read
from service.responses.checks import check_response, validation_outcome
from service.responses.submit import resolve_questionnaire
from service.services import Services
from service.store.access import check_body, subject_patient
from service.store.kinds import QUESTIONNAIRE_RESPONSE
from service.terminology import value_set_resolver

QR = "QuestionnaireResponse"
VALIDATE_MODES = ("create", "update", "delete")


def validate(
    services: Services, resource: dict[str, Any] | None, mode: str | None, resource_id: str | None, grant: Grant
) -> list[Issue]:
    """What storing (or, with mode=delete, deleting) this response would meet: every issue, nothing raised for
    the response's own problems, nothing stored."""
    if mode is not None and mode not in VALIDATE_MODES:
        raise BadRequest(f"mode must be one of {', '.join(VALIDATE_MODES)}, got {mode!r}", code="value")
    if mode == "delete":
        if resource_id is None:
            raise BadRequest(
                "mode=delete needs the id of a stored response: POST .../QuestionnaireResponse/{id}/$validate"
            )
        read(services, QR, resource_id, grant)
        return []
    if resource is None:
        raise BadRequest("Send the QuestionnaireResponse to validate in the body (or as the 'resource' parameter)")
    if mode == "update" or (mode is None and resource_id is not None):
        if resource_id is None or resource.get("id") != resource_id:
            return [Issue("error", "invalid", "For an update the resource id must equal the id in the URL", f"{QR}.id")]
        read(services, QR, resource_id, grant)
    check_body(QUESTIONNAIRE_RESPONSE, grant, subject_patient(resource))
    try:
        validate_structure(resource, QR)
        questionnaire = resolve_questionnaire(services, resource)
    except FhirError as exc:
        if exc.status >= 500:
            raise
        return exc.issues
    return validation_outcome(questionnaire.resource, resource, value_set_resolver(services))


def extract(services: Services, response: dict[str, Any], grant: Grant) -> list[Extracted]:
    """The Observations the service would derive from this response (SDC $extract), with urn:uuid ids."""
    check_body(QUESTIONNAIRE_RESPONSE, grant, subject_patient(response))
    validate_structure(response, QR)
    questionnaire = resolve_questionnaire(services, response)
    scoring = check_response(questionnaire.resource, response, value_set_resolver(services)).scoring
    reference = f"{QR}/{response['id']}" if response.get("id") else f"urn:uuid:{uuid.uuid4()}"
    ids: dict[str, str] = {}
    return extract_observations(
        questionnaire.resource,
        scoring.response,
        scoring.scores,
        {},
        response_reference=reference,
        issued=instant_text(utcnow()),
        ids=lambda key: ids.setdefault(key, str(uuid.uuid4())),
        reference=lambda oid: f"urn:uuid:{oid}",
    )


def extract_stored(services: Services, resource_id: str, grant: Grant) -> list[Extracted]:
    """$extract on a stored response."""
    return extract(services, read(services, QR, resource_id, grant).resource(), grant)
