"""A Task asking a person to complete a Questionnaire, as SDC shapes it (for the invitation tests)."""

from __future__ import annotations

from typing import Any

from tests.api.builders import QUESTIONNAIRE_URL

SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"


def task(
    *,
    patient: str = "p1",
    questionnaire: str = f"{QUESTIONNAIRE_URL}|1.0.0",
    status: str = "requested",
    due: str | None = "2024-02-01",
    start: str | None = "2024-01-01",
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-task"]},
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": SDC_TEMP, "code": "complete-questionnaire"}]},
        "for": {"reference": f"Patient/{patient}"},
        "requester": {"reference": "Practitioner/dr-1"},
        "authoredOn": "2024-01-01T09:00:00Z",
        "input": [
            {
                "type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire"}]},
                "valueCanonical": questionnaire,
            }
        ],
        **extra,
    }
    period = {k: v for k, v in (("start", start), ("end", due)) if v}
    if period:
        resource["restriction"] = {"period": period}
    return resource
