"""Small builders for inline Questionnaires and responses, and helpers to read the issues found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.fhir.issues import Issue
from service.validation import ValueSetResolver, validate_response

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
JSON = dict[str, Any]


def load(relative: str) -> JSON:
    value = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def questionnaire(*items: JSON, **fields: Any) -> JSON:
    return {"resourceType": "Questionnaire", "status": "active", **fields, "item": list(items)}


def q_item(link_id: str, kind: str, **fields: Any) -> JSON:
    return {"linkId": link_id, "type": kind, **fields}


def response(*items: JSON, status: str = "completed", **fields: Any) -> JSON:
    found: JSON = {"resourceType": "QuestionnaireResponse", "status": status, **fields}
    if items:
        found["item"] = list(items)
    return found


def answered(link_id: str, *values: JSON, **fields: Any) -> JSON:
    """A response item; each value is an answer such as ``{"valueString": "a"}``."""
    return {"linkId": link_id, **fields, "answer": [dict(value) for value in values]}


def group(link_id: str, *items: JSON) -> JSON:
    return {"linkId": link_id, "item": list(items)}


def ext(url: str, **value: Any) -> JSON:
    return {"url": url, **value}


def coding(code: str, system: str | None = "http://example.org/codes", display: str | None = None) -> JSON:
    found = {"code": code}
    if system is not None:
        found["system"] = system
    if display is not None:
        found["display"] = display
    return found


def check(q: JSON, r: JSON, value_sets: ValueSetResolver | None = None) -> list[Issue]:
    issues = validate_response(q, r, value_sets=value_sets)
    assert all(issue.code != "exception" for issue in issues), issues
    return issues


def errors(issues: list[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.is_error]


def warnings(issues: list[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity == "warning"]


def one_error(issues: list[Issue]) -> Issue:
    found = errors(issues)
    assert len(found) == 1, json.dumps([repr(issue) for issue in issues], indent=1)
    return found[0]


def ext_url(name: str) -> str:
    return "http://hl7.org/fhir/StructureDefinition/" + name


SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
