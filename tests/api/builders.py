"""Small resources for API tests: the least a Questionnaire or response needs to show a behaviour."""

from __future__ import annotations

from typing import Any

QUESTIONNAIRE_URL = "http://proms.test/Questionnaire/mood"


def questionnaire(
    *, url: str = QUESTIONNAIRE_URL, version: str | None = "1.0.0", status: str = "active", **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "url": url,
        "name": "MoodCheck",
        "title": "Mood check",
        "status": status,
        "code": [{"system": "http://loinc.org", "code": "44249-1"}],
        "item": [{"linkId": "1", "text": "How is your mood?", "type": "integer"}],
        **extra,
    }
    if version is not None:
        resource["version"] = version
    return resource


def response(
    *,
    questionnaire: str = f"{QUESTIONNAIRE_URL}|1.0.0",
    patient: str = "p1",
    authored: str | None = "2024-01-15T10:00:00Z",
    status: str = "completed",
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": status,
        "subject": {"reference": f"Patient/{patient}"},
        "item": [{"linkId": "1", "text": "How is your mood?", "answer": [{"valueInteger": 3}]}],
        **extra,
    }
    if authored is not None:
        resource["authored"] = authored
    return resource
