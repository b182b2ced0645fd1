"""A quick structural check for the plain shape most submitted QuestionnaireResponses take.

Building the fhir.resources model of a response is the structural check every body gets, and it is costly: a
model object per element, each with its own validators in Python. Most responses are plain: items with linkIds,
text and answers that are codings, numbers, strings or dates, a subject, an author, a date. For those this
module answers "valid" by walking the JSON once and checking each primitive value with the very type the
fhir.resources model declares for that element (its pydantic annotation, so the same patterns and ranges).

It only ever says "valid" or "not sure": anything outside the plain shape (extensions, contained resources,
``_element`` siblings, nulls, empty arrays, an unknown element, a value its type refuses) is "not sure", and
the caller builds the full model, whose verdict and messages stand. So the two give the same verdict on every
body; tests/unit/test_plain_shapes.py checks that on every fixture and on generated bodies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse,
    QuestionnaireResponseItem,
    QuestionnaireResponseItemAnswer,
)
from fhir.resources.R4B.reference import Reference

MAX_DEPTH = 32  # deeper nesting goes to the full model

Check = Callable[[Any], bool]


def _primitive(model: type[pydantic.BaseModel], field: str) -> Check:
    """Whether a value is one the model's own type for ``field`` accepts (verdicts cached: the same linkIds,
    codes, systems and displays come back in every response)."""
    annotation = model.model_fields[field].annotation
    assert annotation is not None, f"{model.__name__}.{field} declares its type"
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)

    @functools.lru_cache(maxsize=4096, typed=True)  # typed: True and 1 are different answers
    def accepted(value: Any) -> bool:
        try:
            adapter.validate_python(value)
        except pydantic.ValidationError:
            return False
        return True

    def check(value: Any) -> bool:
        if value is None or isinstance(value, list | dict):
            return False  # nulls and repeated or complex values are the full model's to judge
        return bool(accepted(value))

    return check


def _fields(model: type[pydantic.BaseModel], *names: str) -> dict[str, Check]:
    return {name: _primitive(model, name) for name in names}


def _object(primitives: Mapping[str, Check]) -> Check:
    """A complex element made only of primitives: known names, each value accepted by its type."""

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for key, entry in value.items():
            primitive = primitives.get(key)
            if primitive is None or not primitive(entry):
                return False
        return True

    return check


_REFERENCE = _object(_fields(Reference, "reference", "display", "type"))
_IDENTIFIER = _object(_fields(Identifier, "system", "value", "use"))
_CODING = _object(_fields(Coding, "system", "version", "code", "display", "userSelected"))

_RESPONSE = _fields(QuestionnaireResponse, "id", "questionnaire", "status", "authored")
_RESPONSE_REFERENCES = ("subject", "author", "source", "encounter")
_RESPONSE_REFERENCE_LISTS = ("basedOn", "partOf")
_ITEM = _fields(QuestionnaireResponseItem, "linkId", "text", "definition")
_VALUES: dict[str, Check] = {
    **_fields(
        QuestionnaireResponseItemAnswer,
        "valueBoolean", "valueDecimal", "valueInteger", "valueDate", "valueDateTime", "valueTime", "valueString",
        "valueUri",
    ),
    "valueCoding": _CODING,
    "valueReference": _REFERENCE,
}  # fmt: skip


def _list_of(value: Any, check: Check) -> bool:
    return type(value) is list and bool(value) and all(check(entry) for entry in value)


def _items(value: Any, depth: int) -> bool:
    if depth > MAX_DEPTH or type(value) is not list or not value:
        return False
    for item in value:
        if type(item) is not dict or "linkId" not in item:
            return False
        for key, entry in item.items():
            if key == "answer":
                if not _answers(entry, depth):
                    return False
            elif key == "item":
                if not _items(entry, depth + 1):
                    return False
            else:
                primitive = _ITEM.get(key)
                if primitive is None or not primitive(entry):
                    return False
    return True


def _answers(value: Any, depth: int) -> bool:
    if type(value) is not list or not value:
        return False
    for answer in value:
        if type(answer) is not dict:
            return False
        chosen = 0
        for key, entry in answer.items():
            if key == "item":
                if not _items(entry, depth + 1):
                    return False
                continue
            check = _VALUES.get(key)
            if check is None or not check(entry):
                return False
            chosen += 1
        if chosen > 1:
            return False  # value[x] takes one type: the full model says so, and where
    return True


def plainly_valid_response(resource: Mapping[str, Any]) -> bool:
    """True when ``resource`` is a QuestionnaireResponse of the plain shape that the fhir.resources model
    accepts; False when it is not sure (build the model to know)."""
    if type(resource) is not dict or resource.get("resourceType") != "QuestionnaireResponse":
        return False
    if "status" not in resource:
        return False
    for key, value in resource.items():
        if key == "resourceType":
            continue
        if key == "item":
            if not _items(value, 1):
                return False
        elif key in _RESPONSE_REFERENCES:
            if not _REFERENCE(value):
                return False
        elif key in _RESPONSE_REFERENCE_LISTS:
            if not _list_of(value, _REFERENCE):
                return False
        elif key == "identifier":
            if not _IDENTIFIER(value):
                return False
        else:
            primitive = _RESPONSE.get(key)
            if primitive is None or not primitive(value):
                return False
    return True
