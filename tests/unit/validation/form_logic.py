"""The Questionnaire logic the response generator needs, written apart from ``service.validation``:
extension lookup, the response items with their Questionnaire items, and which items are enabled.

Enablement follows R4: the enableWhen operators (``!=`` holds when no answer equals), enableBehavior,
answers of disabled items not counting, and the question looked up in the innermost enclosing item
whose Questionnaire item contains it. A Coding answer compared with answerString / answerInteger /
answerDecimal is compared by its code, as the SDC enableWhen test form expects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhirpathpy import evaluate as fhirpath
from fhirpathpy.models import models

JSON = dict[str, Any]

SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
CORE = "http://hl7.org/fhir/StructureDefinition/"
ANSWER_TYPES = frozenset(
    {"boolean", "decimal", "integer", "date", "dateTime", "time", "string", "text", "url", "choice", "open-choice"}
    | {"attachment", "reference", "quantity"}
)


def ext(item: Mapping[str, Any], url: str) -> Any:
    """The value of the first extension with this url (whatever its value[x] type)."""
    for entry in item.get("extension", []):
        if entry.get("url") == url:
            for key, value in entry.items():
                if key.startswith("value"):
                    return value
    return None


def ext_all(item: Mapping[str, Any], url: str) -> list[Any]:
    found = []
    for entry in item.get("extension", []):
        if entry.get("url") == url:
            found += [value for key, value in entry.items() if key.startswith("value")]
    return found


def value_of(answer: Mapping[str, Any]) -> tuple[str, Any]:
    key = next(key for key in answer if key.startswith("value"))
    return key, answer[key]


@dataclass(eq=False)
class Place:
    """A response item with its Questionnaire item, its parent place and where it sits."""

    data: JSON
    q: Mapping[str, Any]
    parent: Place | None
    container: JSON
    path: str


def _q_children(questionnaire: Mapping[str, Any]) -> dict[str, list[JSON]]:
    found: dict[str, list[JSON]] = {}

    def walk(items: list[JSON]) -> None:
        for item in items:
            found[item["linkId"]] = item.get("item", [])
            walk(item.get("item", []))

    walk(questionnaire.get("item", []))
    return found


def places(questionnaire: Mapping[str, Any], response: JSON) -> list[Place]:
    """Every response item whose linkId the Questionnaire knows, parents before children."""
    found: list[Place] = []

    def walk(container: JSON, path: str, q_items: list[JSON], parent: Place | None) -> None:
        by_id = {item["linkId"]: item for item in q_items}
        for index, data in enumerate(container.get("item", [])):
            q = by_id.get(data.get("linkId"))
            if q is None:
                continue
            place = Place(data, q, parent, container, f"{path}.item[{index}]")
            found.append(place)
            walk(data, place.path, q.get("item", []), place)
            for a_index, answer in enumerate(data.get("answer", [])):
                walk(answer, f"{place.path}.answer[{a_index}]", q.get("item", []), place)

    walk(response, "QuestionnaireResponse", questionnaire.get("item", []), None)
    return found


def _matches(value: tuple[str, Any], operator: str, expected_key: str, expected: Any) -> bool:
    key, actual = value
    if key == "valueCoding" and expected_key == "answerCoding":
        same = actual.get("code") == expected.get("code") and (
            actual.get("system") is None
            or expected.get("system") is None
            or actual.get("system") == expected.get("system")
        )
        return same if operator == "=" else False
    if key == "valueCoding" and expected_key in ("answerString", "answerInteger", "answerDecimal"):
        # Forms such as the SDC enableWhen test compare a coded answer's code with a plain value.
        code = actual.get("code")
        actual = code if expected_key == "answerString" else _number(code)
        if actual is None:
            return False
    if isinstance(actual, bool) or isinstance(expected, bool):
        return operator == "=" and actual is expected
    if isinstance(actual, Mapping) or isinstance(expected, Mapping):
        return False
    try:
        if isinstance(expected, (int, float)) != isinstance(actual, (int, float)):
            return False
        ordered = {"=": actual == expected, ">": actual > expected, "<": actual < expected}
        ordered.update({">=": actual >= expected, "<=": actual <= expected})
    except TypeError:
        return False
    return bool(ordered.get(operator, False))


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class Enabled:
    """Whether items are enabled in a given response, by the Questionnaire's rules."""

    def __init__(self, questionnaire: Mapping[str, Any], response: JSON) -> None:
        self.questionnaire = questionnaire
        self.response = response
        self.places = places(questionnaire, response)
        self.parent_of_q = {}
        for parent_id, children in _q_children(questionnaire).items():
            for child in children:
                self.parent_of_q[child["linkId"]] = parent_id
        self._memo: dict[int, bool] = {}

    def place(self, place: Place) -> bool:
        if id(place) not in self._memo:
            self._memo[id(place)] = True  # guards against cycles
            parent_ok = place.parent is None or self.place(place.parent)
            self._memo[id(place)] = parent_ok and self.own(place.q, place.parent, place.data)
        return self._memo[id(place)]

    def own(self, item: Mapping[str, Any], parent: Place | None, focus: JSON | None) -> bool:
        expression = ext(item, SDC + "sdc-questionnaire-enableWhenExpression")
        if expression is not None:
            variables = {
                "resource": copy.deepcopy(self.response),
                "questionnaire": copy.deepcopy(self.questionnaire),
            }
            try:
                result = fhirpath(copy.deepcopy(self.response), expression["expression"], variables, models["r4"])
            except Exception:
                return True  # an expression that cannot be evaluated neither requires nor forbids answers
            return result == [True]
        conditions = item.get("enableWhen", [])
        if not conditions:
            return True
        outcomes = [self._condition(condition, parent) for condition in conditions]
        return all(outcomes) if item.get("enableBehavior") == "all" else any(outcomes)

    def _condition(self, condition: Mapping[str, Any], parent: Place | None) -> bool:
        values = self._nearest_values(condition["question"], parent)
        expected_key = next(key for key in condition if key.startswith("answer"))
        expected = condition[expected_key]
        operator = condition["operator"]
        if operator == "exists":
            return bool(values) is expected
        if operator == "!=":
            return not any(_matches(value, "=", expected_key, expected) for value in values)
        return any(_matches(value, operator, expected_key, expected) for value in values)

    def _nearest_values(self, link_id: str, parent: Place | None) -> list[tuple[str, Any]]:
        """Answers to ``link_id`` within the closest enclosing item whose Questionnaire item contains the
        question (the innermost repetition both share), else anywhere in the response."""
        scope = parent
        while scope is not None:
            if scope.data.get("linkId") == link_id:
                return [value_of(a) for a in scope.data.get("answer", [])] if self.place(scope) else []
            if link_id in _descendant_ids(scope.q):
                break
            scope = scope.parent
        scope_path = scope.path if scope is not None else "QuestionnaireResponse"
        values = []
        for place in self.places:
            inside = place.path.startswith(scope_path + ".")
            if inside and place.data.get("linkId") == link_id and self.place(place):
                values += [value_of(answer) for answer in place.data.get("answer", [])]
        return values


def _descendant_ids(item: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for child in item.get("item", []):
        found.add(child["linkId"])
        found |= _descendant_ids(child)
    return found


def prune_disabled(questionnaire: Mapping[str, Any], response: JSON) -> None:
    for _ in range(10):
        enabled = Enabled(questionnaire, response)
        doomed = [place for place in enabled.places if not enabled.place(place)]
        if not doomed:
            return
        for place in doomed:
            siblings = place.container.get("item", [])
            place.container["item"] = [item for item in siblings if item is not place.data]
        _drop_empty(response)


def _drop_empty(element: JSON) -> None:
    """Remove lists left empty by pruning (FHIR has no empty arrays)."""
    for key in ("item", "answer"):
        for child in element.get(key, []):
            _drop_empty(child)
        if key in element and not element[key]:
            del element[key]
