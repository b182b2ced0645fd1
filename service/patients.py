"""One person's measures at a glance, for the CDS Hooks cards: read in a handful of queries, every resource shown
noted for the audit."""

from __future__ import annotations

from service import audit
from service.cds.cards import PatientData
from service.cds.measures import (
    Measure,
    SafetyConcern,
    instrument_label,
    previous_response_ids,
    read_flag,
    read_measure,
)
from service.services import Services
from service.store import summary


def patient_data(services: Services, patient_id: str) -> PatientData:
    """The latest score on each measure with its change, and the unreviewed safety flags, of ``Patient/{id}``."""
    audit.note("Patient", patient_id, patient_id)
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
            )
        )
    concerns: list[SafetyConcern] = []
    for flag in records.flags:
        stored = records.questionnaires.get(flag.questionnaire_pk) if flag.questionnaire_pk else None
        label = instrument_label(stored.resource, stored.url or "") if stored else None
        concern = read_flag(flag.resource, label)
        audit.note("Flag", concern.flag_id, patient_id)
        concerns.append(concern)
    return PatientData(patient_id, tuple(measures), tuple(concerns))
