"""One person's measures at a glance, for the CDS Hooks cards: read in a handful of queries, every resource shown
noted for the audit."""

from __future__ import annotations

from typing import Any

from service import audit, resources
from service.app_ui.safety import flagged_answer
from service.auth.access import Grant
from service.cds.cards import PatientData
from service.cds.measures import (
    Measure,
    SafetyConcern,
    flag_message,
    flag_response_id,
    instrument_label,
    previous_response_ids,
    read_flag,
    read_measure,
)
from service.fhir.errors import FhirError
from service.invitations.tasks import open_requests
from service.services import Services
from service.store import summary


def patient_data(services: Services, patient_id: str, grant: Grant) -> PatientData:
    """The latest score on each measure with its change, the unreviewed safety flags and the open requests to
    complete a measure, of ``Patient/{id}``; each flag with how its safety item was answered (read from its response
    as the API reads it, with ``grant``)."""
    audit.note_patient(patient_id)
    with services.db.read_session() as session:
        records = summary.patient_records(session, patient_id)
        scores = [o.resource for observations in records.observations.values() for o in observations]
        earlier = summary.completed_dates(session, previous_response_ids(scores))
    measures: list[Measure] = []
    for latest in records.latest:
        stored = records.questionnaires.get(latest.questionnaire_pk) if latest.questionnaire_pk else None
        observations = records.observations.get(latest.id, [])
        for observation in observations:
            audit.note("Observation", str(observation.resource.get("id")), patient_id)
        measures.append(
            read_measure(
                response_id=latest.id,
                questionnaire_url=latest.questionnaire_url,
                questionnaire_id=stored.id if stored else None,
                questionnaire=stored.resource if stored else None,
                completed=latest.completed,
                observations=[(observation.key, observation.resource) for observation in observations],
                earlier=earlier,
                unscored_after=latest.unscored_after,
            )
        )
    concerns: list[SafetyConcern] = []
    for flag in records.flags:
        stored = records.questionnaires.get(flag.questionnaire_pk) if flag.questionnaire_pk else None
        label = instrument_label(stored.resource, stored.url or "") if stored else None
        response = _flagged_response(services, flag_response_id(flag.resource), grant) if stored else None
        answered = flagged_answer(stored.resource if stored else None, response, flag_message(flag.resource))
        concern = read_flag(flag.resource, label, answered)
        audit.note("Flag", concern.flag_id, patient_id)
        concerns.append(concern)
    requests = open_requests(services, patient_id, grant)
    return PatientData(patient_id, tuple(measures), tuple(concerns), tuple(requests))


def _flagged_response(services: Services, response_id: str | None, grant: Grant) -> dict[str, Any] | None:
    """The response that raised a safety Flag (noted for the audit as any read), so that the card can say how the
    safety item was answered; None if it cannot be read."""
    if response_id is None:
        return None
    try:
        return resources.read(services, "QuestionnaireResponse", response_id, grant).resource()
    except FhirError as exc:
        if exc.status >= 500:
            raise
        return None
