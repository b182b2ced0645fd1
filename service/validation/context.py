"""Shared state of one validation run: the inputs, the issues found so far, and tolerant JSON accessors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from service.fhir.issues import Issue, Severity
from service.fhir.response_status import RESPONSE_STATUSES, SCORED_STATUSES

JSON = Mapping[str, Any]
ValueSetResolver = Callable[[str], Mapping[str, Any] | None]

EXT_MIN_OCCURS = "http://hl7.org/fhir/StructureDefinition/questionnaire-minOccurs"
EXT_MAX_OCCURS = "http://hl7.org/fhir/StructureDefinition/questionnaire-maxOccurs"
EXT_MIN_LENGTH = "http://hl7.org/fhir/StructureDefinition/minLength"
EXT_REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_MIN_QUANTITY = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-minQuantity"
EXT_MAX_QUANTITY = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-maxQuantity"
EXT_MAX_DECIMALS = "http://hl7.org/fhir/StructureDefinition/maxDecimalPlaces"
EXT_MAX_SIZE = "http://hl7.org/fhir/StructureDefinition/maxSize"
EXT_MIME_TYPE = "http://hl7.org/fhir/StructureDefinition/mimeType"
EXT_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
EXT_UNIT_OPTION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption"
EXT_UNIT_VALUE_SET = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitValueSet"
EXT_REFERENCE_RESOURCE = "http://hl7.org/fhir/StructureDefinition/questionnaire-referenceResource"
EXT_OPTION_EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
EXT_CONSTRAINT = "http://hl7.org/fhir/StructureDefinition/questionnaire-constraint"
EXT_VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
EXT_ENABLE_WHEN_EXPRESSION = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-enableWhenExpression"


def objects(value: Any) -> list[tuple[int, JSON]]:
    """The JSON objects of a repeating element with their indexes; anything else is skipped."""
    if not isinstance(value, list):
        return []
    # ``type(...) is dict`` first: parsed JSON is made of dicts, and the abstract Mapping check is slower.
    return [(index, entry) for index, entry in enumerate(value) if type(entry) is dict or isinstance(entry, Mapping)]


def text_value(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def extensions(element: JSON, url: str) -> list[JSON]:
    return [ext for _, ext in objects(element.get("extension")) if ext.get("url") == url]


def extension_value(element: JSON, url: str) -> tuple[str, Any] | None:
    """The first ``value[x]`` (as key, value) of the first extension with this url."""
    for ext in extensions(element, url):
        for key, value in ext.items():
            if key.startswith("value") and key != "value":
                return key, value
    return None


def extension_values(element: JSON, url: str) -> list[tuple[str, Any]]:
    found = []
    for ext in extensions(element, url):
        for key, value in ext.items():
            if key.startswith("value") and key != "value":
                found.append((key, value))
                break
    return found


def extension_int(element: JSON, url: str) -> int | None:
    found = extension_value(element, url)
    if found is None:
        return None
    value = found[1]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def value_keys(element: JSON) -> list[str]:
    """The ``value[x]`` element names present in an answer (normally exactly one)."""
    return [key for key in element if key.startswith("value") and len(key) > 5 and key[5].isupper()]


def short_text(text: str, limit: int = 48) -> str:
    collapsed = " ".join(text.split())
    if len(collapsed) <= limit:
        return collapsed
    head = collapsed[: limit + 1]
    # End at a clause boundary when there is one late enough, else at a word boundary.
    clause = max(head.rfind(mark) for mark in (", ", "; ", ": ", " - "))
    cut = head[:clause] if clause >= limit // 2 else head.rsplit(" ", 1)[0]
    return (cut.rstrip(" ,.;:?!-") or collapsed[:limit]) + "..."


def describe(item: JSON | None, link_id: str | None = None) -> str:
    """``'9' (Thoughts that you would be better off dead...)``: how issue texts name an item."""
    if link_id is None and item is not None:
        link_id = text_value(item.get("linkId"))
    name = f"'{link_id}'" if link_id is not None else "without linkId"
    text = text_value(item.get("text")) if item is not None else None
    return f"{name} ({short_text(text)})" if text else name


class Context:
    """The inputs of one ``validate_response`` call and the issues it has found.

    Every check reports through :meth:`add`; missing-answer and too-many-answer problems go through
    :meth:`missing` / :meth:`excess`, which apply the response status (a form still being filled in
    is not yet expected to be complete).
    """

    def __init__(self, questionnaire: JSON, response: JSON, value_sets: ValueSetResolver | None) -> None:
        self.questionnaire = questionnaire
        self.response = response
        self.value_sets = value_sets
        self.issues: list[Issue] = []
        self._seen: set[tuple[str, str, str | None]] = set()
        status = response.get("status")
        self.status = status if isinstance(status, str) and status in RESPONSE_STATUSES else "completed"

    def add(
        self,
        severity: Severity,
        code: str,
        text: str,
        expression: str | None = None,
        link_id: str | None = None,
    ) -> None:
        self.issues.append(Issue(severity, code, text, expression, link_id))

    def once(
        self,
        severity: Severity,
        code: str,
        text: str,
        expression: str | None = None,
        link_id: str | None = None,
    ) -> None:
        """Report a problem of the Questionnaire itself only once, however many answers run into it."""
        key = (code, text, link_id)
        if key not in self._seen:
            self._seen.add(key)
            self.add(severity, code, text, expression, link_id)

    def missing(self, code: str, text: str, expression: str, link_id: str | None) -> None:
        if self.status in SCORED_STATUSES:
            self.add("error", code, text, expression, link_id)
        elif self.status == "in-progress":
            self.add("warning", code, text + " (the response is still in progress)", expression, link_id)
        # A stopped or entered-in-error response was never going to be complete.

    def excess(self, code: str, text: str, expression: str, link_id: str | None) -> None:
        if self.status in SCORED_STATUSES:
            self.add("error", code, text, expression, link_id)
        else:
            self.add("warning", code, text, expression, link_id)
