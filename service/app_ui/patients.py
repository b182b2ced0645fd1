"""Which of the service's subjects a launched EHR patient is: by reference (Patient/{id}) or by an identifier."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.scoring.extensions import as_list, as_mapping

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class PatientMappingError(ValueError):
    """The launched patient cannot be matched to a subject of this service; the message says why."""


@dataclass(frozen=True)
class PatientContext:
    ehr_patient: str  # the id the EHR gave in the launch context
    subject: str  # the service's Patient id: responses are about Patient/{subject}
    name: str | None
    identifier: str | None  # "system|value" when the mapping went through an identifier


def patient_name(patient: Mapping[str, Any] | None) -> str | None:
    """A Patient's name for display: the official (else usual, else first) HumanName."""
    names = [as_mapping(name) for name in as_list(as_mapping(patient).get("name"))]
    if not names:
        return None
    ranked = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(str(n.get("use")), 2))
    chosen = ranked[0]
    if isinstance(chosen.get("text"), str) and chosen["text"].strip():
        return str(chosen["text"]).strip()
    parts = [str(part) for part in as_list(chosen.get("given"))]
    if isinstance(chosen.get("family"), str):
        parts.append(chosen["family"])
    return " ".join(parts) or None


def map_patient(ehr_patient: str, patient: Mapping[str, Any] | None, identifier_system: str | None) -> PatientContext:
    """The service subject for a launched patient.

    Without ``identifier_system`` the EHR's id is the subject (both systems use the same Patient ids).
    With it, the subject is the value of the Patient's identifier in that system (e.g. the MRN the
    service's responses are filed under); the EHR's Patient resource is then required.
    """
    if not FHIR_ID.match(ehr_patient):
        raise PatientMappingError(f"The EHR's patient id {ehr_patient!r} is not a FHIR id")
    name = patient_name(patient)
    if identifier_system is None:
        return PatientContext(ehr_patient, ehr_patient, name, None)
    if patient is None:
        raise PatientMappingError(
            "The EHR's Patient record could not be read, so its identifier in "
            f"{identifier_system} is unknown (the app needs a scope such as patient/Patient.rs)"
        )
    values: list[str] = [
        value
        for identifier in as_list(patient.get("identifier"))
        if as_mapping(identifier).get("system") == identifier_system
        and isinstance(value := as_mapping(identifier).get("value"), str)
        and value
    ]
    if not values:
        raise PatientMappingError(f"The patient has no identifier in {identifier_system}")
    if len(set(values)) > 1:
        raise PatientMappingError(f"The patient has more than one identifier in {identifier_system}")
    if not FHIR_ID.match(values[0]):
        raise PatientMappingError(
            f"The patient's identifier in {identifier_system} cannot name a Patient in this service "
            "(letters, digits, '-' and '.' only, at most 64)"
        )
    return PatientContext(ehr_patient, values[0], name, f"{identifier_system}|{values[0]}")
