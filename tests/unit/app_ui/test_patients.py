"""Mapping the launched EHR patient to the service's subject: by id, or by an identifier such as an MRN."""

from __future__ import annotations

from typing import Any

import pytest

from service.app_ui.patients import PatientMappingError, map_patient, patient_name

MRN = "urn:oid:1.2.36.146.595.217.0.1"
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "ehr-77",
    "identifier": [{"system": "http://other", "value": "x"}, {"system": MRN, "value": "12345"}],
    "name": [{"use": "nickname", "given": ["Jo"]}, {"use": "official", "given": ["Joanne", "M"], "family": "Doe"}],
}


def test_by_reference_the_ehr_id_is_the_subject() -> None:
    context = map_patient("ehr-77", PATIENT, None)
    assert (context.subject, context.ehr_patient, context.identifier, context.name) == (
        "ehr-77", "ehr-77", None, "Joanne M Doe",
    )  # fmt: skip
    assert map_patient("ehr-77", None, None).name is None


def test_by_identifier_the_value_in_the_configured_system_is_the_subject() -> None:
    context = map_patient("ehr-77", PATIENT, MRN)
    assert (context.subject, context.identifier) == ("12345", f"{MRN}|12345")


@pytest.mark.parametrize(
    ("ehr_patient", "patient", "message"),
    [
        ("not an id!", PATIENT, "is not a FHIR id"),
        ("ehr-77", None, "could not be read"),
        ("ehr-77", {"identifier": [{"system": "http://other", "value": "x"}]}, "has no identifier in"),
        ("ehr-77", {"identifier": [{"system": MRN, "value": "1"}, {"system": MRN, "value": "2"}]}, "more than one"),
        ("ehr-77", {"identifier": [{"system": MRN, "value": "12 345/6"}]}, "cannot name a Patient"),
    ],
)
def test_a_patient_that_cannot_be_mapped_is_refused_with_a_reason(
    ehr_patient: str, patient: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(PatientMappingError, match=message):
        map_patient(ehr_patient, patient, MRN)


def test_names_prefer_the_text_then_official_then_usual() -> None:
    assert patient_name({"name": [{"text": " Dr J Doe "}]}) == "Dr J Doe"
    assert patient_name({"name": [{"use": "usual", "given": ["Jo"]}, {"use": "old", "family": "X"}]}) == "Jo"
    assert patient_name({"name": []}) is None
    assert patient_name(None) is None
