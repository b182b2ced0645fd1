"""Scores and marked answers as US Core-style Observations (a panel plus members) and a Provenance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from service.change import Change
from service.scoring import BandRange, Score

BASE = "https://recovery-proms.org/fhir"
CHANGE_EXTENSION = f"{BASE}/StructureDefinition/reliable-change-result"
OBSERVATION_EXTRACT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract"
SURVEY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey",
        }
    ]
}
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CHANGE_INTERPRETATION = {"improved": ("B", "Better"), "deteriorated": ("W", "Worse")}
SCORE_UNIT = {"unit": "{score}", "system": "http://unitsofmeasure.org", "code": "{score}"}
PANEL = "panel"


@dataclass(frozen=True, slots=True)
class Extracted:
    """One Observation to store; ``key`` is the score or item linkId it comes from, or 'panel'."""

    key: str
    resource: dict[str, Any]


def _extract_flag(extensions: Sequence[Mapping[str, Any]]) -> bool | None:
    for extension in extensions:
        if extension.get("url") == OBSERVATION_EXTRACT and isinstance(extension.get("valueBoolean"), bool):
            return bool(extension["valueBoolean"])
    return None


def _marked_items(questionnaire: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Questionnaire items marked for SDC observation-based extraction (the mark is inherited downwards)."""
    marked: dict[str, Mapping[str, Any]] = {}

    def walk(items: Sequence[Mapping[str, Any]], inherited: bool) -> None:
        for item in items:
            flag = _extract_flag(item.get("extension", []))
            extract = inherited if flag is None else flag
            if extract and item.get("code") and item.get("type") not in ("group", "display"):
                marked[str(item.get("linkId"))] = item
            walk(item.get("item", []), extract)

    walk(questionnaire.get("item", []), bool(_extract_flag(questionnaire.get("extension", []))))
    return marked


def _response_answers(response: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    def walk(items: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for item in items:
            for answer in item.get("answer", []):
                yield str(item.get("linkId")), answer
                yield from walk(answer.get("item", []))
            yield from walk(item.get("item", []))

    yield from walk(response.get("item", []))


def observation_value(answer: Mapping[str, Any]) -> dict[str, Any]:
    """An answer's value as an Observation value[x] (the SDC mapping: decimal becomes a Quantity)."""
    for key, value in answer.items():
        if not key.startswith("value"):
            continue
        match key:
            case "valueCoding":
                return {"valueCodeableConcept": {"coding": [value]}}
            case "valueDecimal":
                return {"valueQuantity": {"value": value}}
            case "valueDate":
                return {"valueDateTime": value}
            case "valueInteger" | "valueString" | "valueBoolean" | "valueQuantity" | "valueDateTime" | "valueTime":
                return {key: value}
            case "valueReference" | "valueAttachment" | "valueUri":
                return {"valueString": str(value.get("reference") or value.get("url") or value)}
    return {}


def _score_value(score: Score) -> dict[str, Any]:
    if score.item_type == "integer" and float(score.value or 0).is_integer():
        return {"valueInteger": int(score.value or 0)}
    return {"valueQuantity": {"value": score.value, **SCORE_UNIT}}


def _quantity(bound: Decimal) -> dict[str, Any]:
    value: int | float = int(bound) if bound == bound.to_integral_value() else float(bound)
    return {"value": value, **SCORE_UNIT}


def reference_ranges(bands: Sequence[BandRange]) -> list[dict[str, Any]]:
    """A score's bands as Observation.referenceRange, so that a chart can shade them without the Questionnaire.

    Each band's bounds are inclusive, as the ``score-band`` extension defines them (PHQ-9 "Mild" is 5 to 9, then
    "Moderate" 10 to 14), and the extension requires both, so every range has a low and a high.
    """
    return [{"low": _quantity(band.low), "high": _quantity(band.high), "text": band.band.display} for band in bands]


def _change_parts(change: Change | None, reference: Callable[[str], str]) -> tuple[list[dict[str, Any]], list[Any]]:
    if change is None:
        return [], []
    interpretation = []
    if change.result in CHANGE_INTERPRETATION:
        code, display = CHANGE_INTERPRETATION[change.result]
        interpretation.append(
            {
                "coding": [{"system": INTERPRETATION, "code": code, "display": display}],
                "text": f"Reliably {change.result}",
            }
        )
    extension = {
        "url": CHANGE_EXTENSION,
        "extension": [
            {"url": "result", "valueCode": change.result},
            {"url": "difference", "valueDecimal": change.difference},
            {"url": "previousValue", "valueDecimal": change.previous.value},
            {
                "url": "previousResponse",
                "valueReference": {"reference": f"QuestionnaireResponse/{change.previous.response_id}"},
            },
        ],
    }
    return interpretation, [extension]


def extract_observations(
    questionnaire: Mapping[str, Any],
    response: Mapping[str, Any],
    scores: Sequence[Score],
    changes: Mapping[str, Change],
    *,
    response_reference: str,
    issued: str,
    ids: Callable[[str], str],
    reference: Callable[[str], str],
) -> list[Extracted]:
    """Observations for every score with a value and every answer to an item marked for extraction.

    ``ids(key)`` gives the id of the Observation for a key (a linkId or 'panel') and ``reference(id)`` how
    to refer to it (``Observation/{id}`` when stored, ``urn:uuid:{id}`` inside an $extract Bundle).
    """
    status = "amended" if response.get("status") == "amended" else "final"
    common: dict[str, Any] = {"status": status, "category": [SURVEY]}
    for element in ("subject", "encounter"):
        if element in response:
            common[element] = response[element]
    if "authored" in response:
        common["effectiveDateTime"] = response["authored"]
    common["issued"] = issued
    if "author" in response:
        common["performer"] = [response["author"]]
    common["derivedFrom"] = [{"reference": response_reference}]

    members: list[Extracted] = []
    for score in scores:
        if score.value is None:
            continue
        interpretation: list[dict[str, Any]] = []
        if score.band is not None:
            interpretation.append(
                {
                    "coding": [{"system": score.band.system, "code": score.band.code, "display": score.band.display}],
                    "text": score.band.display,
                }
            )
        change_interpretation, extensions = _change_parts(changes.get(score.link_id), reference)
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": ids(score.link_id),
            **({"extension": extensions} if extensions else {}),
            **common,
            "code": {"coding": list(score.codes), **({"text": score.text} if score.text else {})},
            **_score_value(score),
        }
        if interpretation or change_interpretation:
            resource["interpretation"] = interpretation + change_interpretation
        if score.bands:
            resource["referenceRange"] = reference_ranges(score.bands)
        members.append(Extracted(score.link_id, resource))

    scored = {score.link_id for score in scores}
    marked = _marked_items(questionnaire)
    for link_id, answer in _response_answers(response):
        if link_id in scored or link_id not in marked or any(m.key == link_id for m in members):
            continue
        value = observation_value(answer)
        if not value:
            continue
        item = marked[link_id]
        members.append(
            Extracted(
                link_id,
                {
                    "resourceType": "Observation",
                    "id": ids(link_id),
                    **common,
                    "code": {"coding": list(item["code"]), **({"text": item["text"]} if item.get("text") else {})},
                    **value,
                },
            )
        )
    if not members:
        return []
    panel_code = list(questionnaire.get("code", [])) or [
        {"system": f"{BASE}/CodeSystem/instrument", "code": str(questionnaire.get("name") or questionnaire.get("id"))}
    ]
    panel = {
        "resourceType": "Observation",
        "id": ids(PANEL),
        **common,
        "code": {"coding": panel_code, "text": str(questionnaire.get("title") or questionnaire.get("name") or "")},
        "hasMember": [{"reference": reference(member.resource["id"])} for member in members],
    }
    return [Extracted(PANEL, panel), *members]


def provenance(
    *,
    targets: Sequence[str],
    response: Mapping[str, Any],
    questionnaire_reference: str,
    questionnaire_canonical: str,
    recorded: str,
    software: str,
    activity: str,
) -> dict[str, Any]:
    """Who submitted the response, and which Questionnaire version and scoring produced the Observations."""
    submitter = response.get("author") or response.get("source") or {"display": "unidentified submitter"}
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target} for target in targets],
        "recorded": recorded,
        "activity": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": activity}]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": submitter,
            },
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                        }
                    ]
                },
                "who": {"display": software},
            },
        ],
        "entity": [
            {"role": "source", "what": {"reference": questionnaire_reference, "display": questionnaire_canonical}}
        ],
    }


FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"


def safety_flag(message: str, response: Mapping[str, Any], response_reference: str) -> dict[str, Any]:
    """A raised safety item as a FHIR Flag: active until a clinician has reviewed it."""
    flag: dict[str, Any] = {
        "resourceType": "Flag",
        "extension": [{"url": FLAG_DETAIL, "valueReference": {"reference": response_reference}}],
        "status": "active",
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical",
                     "display": "Clinical"}
                ]
            }
        ],
        "code": {"coding": [{"system": f"{BASE}/CodeSystem/flag", "code": "safety", "display": "Safety item"}],
                 "text": message},
    }  # fmt: skip
    if "subject" in response:
        flag["subject"] = response["subject"]
    if "authored" in response:
        flag["period"] = {"start": response["authored"]}
    return flag
