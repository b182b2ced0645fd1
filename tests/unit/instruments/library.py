"""The built-in instrument library as test data: definitions, golden cases and the responses they describe."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config import PROJECT_ROOT

LIBRARY = PROJECT_ROOT / "questionnaires"
SD = "https://recovery-proms.org/fhir/StructureDefinition"
CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
SCORE_BAND = f"{SD}/score-band"
CASE_KEYS = ("description", "note", "arithmetic", "status", "answers", "expected", "bands", "safety_flags")


def load_json(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(value, dict), path
    return value


def slugs() -> list[str]:
    return sorted(path.parent.name for path in LIBRARY.glob("*/questionnaire.json"))


def questionnaire(slug: str) -> dict[str, Any]:
    return load_json(LIBRARY / slug / "questionnaire.json")


@dataclass(frozen=True)
class Case:
    slug: str
    name: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.slug}/{self.name}"


def cases(slug: str | None = None) -> list[Case]:
    found = []
    for name in [slug] if slug else slugs():
        for path in sorted((LIBRARY / name / "cases").glob("*.json")):
            found.append(Case(name, path.stem, load_json(path)))
    return found


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every item, depth-first."""
    for item in items:
        yield item
        yield from walk(item.get("item", []))


def extensions(element: Mapping[str, Any], url: str) -> list[dict[str, Any]]:
    return [ext for ext in element.get("extension", []) if ext.get("url") == url]


def sub_value(extension: Mapping[str, Any], url: str) -> Any:
    for sub in extension.get("extension", []):
        if sub.get("url") == url:
            return next(value for key, value in sub.items() if key.startswith("value"))
    return None


def is_score(item: Mapping[str, Any]) -> bool:
    return bool(extensions(item, CALCULATED))


def score_items(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [item for item in walk(resource["item"]) if is_score(item)]


def question_items(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        item
        for item in walk(resource["item"])
        if item["type"] not in ("group", "display") and not is_score(item) and not item.get("readOnly")
    ]


def limits(item: Mapping[str, Any]) -> tuple[float, float]:
    low, high = (
        next(value for key, value in ext.items() if key.startswith("value"))
        for ext in (extensions(item, MIN_VALUE)[0], extensions(item, MAX_VALUE)[0])
    )
    return float(low), float(high)


@dataclass(frozen=True)
class BandRange:
    low: float
    high: float
    code: str
    system: str
    severity: str


def bands(item: Mapping[str, Any]) -> list[BandRange]:
    found = []
    for ext in extensions(item, SCORE_BAND):
        coding = sub_value(ext, "code")
        found.append(
            BandRange(
                float(sub_value(ext, "low")),
                float(sub_value(ext, "high")),
                coding["code"],
                coding.get("system", ""),
                sub_value(ext, "severity"),
            )
        )
    return found


def band_code(value: float, item: Mapping[str, Any]) -> str | None:
    """The code of the band of ``item`` whose closed range holds ``value``."""
    for band in bands(item):
        if band.low <= value <= band.high:
            return band.code
    return None


def expressions(resource: Mapping[str, Any]) -> Iterator[str]:
    """Every FHIRPath expression of the definition: variables, calculations and safety-flag conditions."""
    for element in [resource, *walk(resource["item"])]:
        for ext in element.get("extension", []):
            if ext["url"] in (VARIABLE, CALCULATED):
                yield ext["valueExpression"]["expression"]
            elif ext["url"] == f"{SD}/safety-flag":
                yield sub_value(ext, "condition")["expression"]


def _answer(item: Mapping[str, Any], value: Any) -> dict[str, Any]:
    if item["type"] == "choice":
        options = [o["valueCoding"] for o in item["answerOption"] if o["valueCoding"]["code"] == value]
        assert len(options) == 1, f"{item['linkId']}: no single answer option with code {value!r}"
        return {"valueCoding": {key: options[0][key] for key in ("system", "code", "display") if key in options[0]}}
    if item["type"] in ("string", "text"):
        return {"valueString": value}
    if item["type"] == "integer":
        return {"valueInteger": value}
    raise AssertionError(f"{item['linkId']}: cases cannot answer items of type {item['type']!r}")


def _response_items(items: list[dict[str, Any]], answers: Mapping[str, Any]) -> list[dict[str, Any]]:
    built = []
    for item in items:
        if item["type"] == "group":
            children = _response_items(item.get("item", []), answers)
            if children:
                built.append({"linkId": item["linkId"], "item": children})
        elif item["type"] != "display" and not is_score(item) and item["linkId"] in answers:
            answer = _answer(item, answers[item["linkId"]])
            built.append({"linkId": item["linkId"], "text": item["text"], "answer": [answer]})
    return built


def build_response(resource: Mapping[str, Any], case: Case) -> dict[str, Any]:
    """The QuestionnaireResponse a case describes, nested as the Questionnaire nests its items."""
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"golden-{case.slug}-{case.name}",
        "questionnaire": f"{resource['url']}|{resource['version']}",
        "status": case.data["status"],
        "subject": {"reference": "Patient/golden"},
        "authored": "2026-11-23T09:00:00Z",
        "item": _response_items(resource["item"], case.data["answers"]),
    }
