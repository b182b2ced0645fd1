"""A small scored instrument for API tests: three weighted items, a total with bands and a change threshold."""

from __future__ import annotations

from typing import Any

BASE = "https://recovery-proms.org/fhir/StructureDefinition"
URL = "http://proms.test/Questionnaire/distress3"
CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
OPTIONS = [("never", "Never", 0), ("sometimes", "Sometimes", 1), ("often", "Often", 2), ("always", "Always", 3)]


def _band(low: int, high: int, code: str, severity: str) -> dict[str, Any]:
    return {
        "url": f"{BASE}/score-band",
        "extension": [
            {"url": "low", "valueDecimal": low},
            {"url": "high", "valueDecimal": high},
            {
                "url": "code",
                "valueCoding": {"system": "http://proms.test/bands", "code": code, "display": code.title()},
            },
            {"url": "severity", "valueCode": severity},
        ],
    }


def _question(link_id: str, text: str) -> dict[str, Any]:
    return {
        "linkId": link_id,
        "text": text,
        "type": "choice",
        "required": True,
        "answerOption": [
            {
                "valueCoding": {"system": "http://proms.test/answers", "code": code, "display": display},
                "extension": [{"url": WEIGHT, "valueDecimal": weight}],
            }
            for code, display, weight in OPTIONS
        ],
    }


def scored_questionnaire() -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "url": URL,
        "version": "1.0.0",
        "name": "Distress3",
        "title": "Distress (3 items)",
        "status": "active",
        "code": [{"system": "http://proms.test/instruments", "code": "distress3"}],
        "item": [
            _question("a", "Felt tense"),
            _question("b", "Felt low"),
            _question("c", "Could not sleep"),
            {
                "linkId": "total",
                "text": "Distress total",
                "type": "integer",
                "readOnly": True,
                "code": [{"system": "http://proms.test/scores", "code": "distress-total"}],
                "extension": [
                    {
                        "url": CALCULATED,
                        "valueExpression": {
                            "language": "text/fhirpath",
                            "expression": "%resource.item.where(linkId = 'a' or linkId = 'b' or linkId = 'c')"
                            ".answer.value.weight().sum()",
                        },
                    },
                    _band(0, 3, "low", "info"),
                    _band(4, 6, "moderate", "warning"),
                    _band(7, 9, "high", "warning"),
                    {"url": f"{BASE}/score-direction", "valueCode": "lower-is-better"},
                    {"url": f"{BASE}/reliable-change", "valueDecimal": 3},
                ],
            },
        ],
    }


def scored_response(
    answers: tuple[str, str, str],
    *,
    patient: str = "p1",
    authored: str = "2024-01-01T10:00:00Z",
    status: str = "completed",
    total: int | None = None,
) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    texts = {"a": "Felt tense", "b": "Felt low", "c": "Could not sleep"}
    for link_id, code in zip(("a", "b", "c"), answers, strict=True):
        display = next(d for c, d, _ in OPTIONS if c == code)
        items.append(
            {
                "linkId": link_id,
                "text": texts[link_id],
                "answer": [{"valueCoding": {"system": "http://proms.test/answers", "code": code, "display": display}}],
            }
        )
    if total is not None:
        items.append({"linkId": "total", "text": "Distress total", "answer": [{"valueInteger": total}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{URL}|1.0.0",
        "status": status,
        "subject": {"reference": f"Patient/{patient}"},
        "author": {"reference": "Practitioner/dr1"},
        "authored": authored,
        "item": items,
    }
