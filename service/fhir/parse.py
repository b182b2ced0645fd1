"""Structural validation of incoming resources with the fhir.resources R4B models (R4 4.0.1 wire format)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.group import Group
from fhir.resources.R4B.measure import Measure
from fhir.resources.R4B.measurereport import MeasureReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.subscription import Subscription
from fhir.resources.R4B.task import Task
from fhir.resources.R4B.valueset import ValueSet
from orjson import dumps

from service.fhir.errors import BadRequest
from service.fhir.issues import Issue
from service.fhir.plain_shapes import plainly_valid_response

MODELS: Mapping[str, type[FHIRResourceModel]] = {
    "Bundle": Bundle,
    "Questionnaire": Questionnaire,
    "QuestionnaireResponse": QuestionnaireResponse,
    "Observation": Observation,
    "Flag": Flag,
    "Subscription": Subscription,
    "Group": Group,
    "Measure": Measure,
    "MeasureReport": MeasureReport,
    "Task": Task,
    "ValueSet": ValueSet,
    "CodeSystem": CodeSystem,
}


def loc_to_expression(resource_type: str, loc: tuple[int | str, ...]) -> str:
    """('item', 0, 'answer', 1) -> 'QuestionnaireResponse.item[0].answer[1]'."""
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("__root__",):
            path += f".{part}"
    return path


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def issues_from_validation_error(resource_type: str, exc: pydantic.ValidationError) -> list[Issue]:
    issues = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        expression = loc_to_expression(resource_type, loc)
        kind = str(error.get("type", ""))
        if kind == "extra_forbidden":
            text = f"Unknown element '{loc[-1]}' at {expression}"
            code = "structure"
        elif kind.endswith("missing"):
            text = f"{expression} is required: {_message(error)}"
            code = "required"
        else:
            text = f"Invalid value at {expression}: {_message(error)}"
            code = "value" if kind not in ("value_error",) else "invalid"
        issues.append(Issue("error", code, text, expression))
    return issues


def _element_with_nul(resource: Mapping[str, Any], resource_type: str) -> tuple[str, bool] | None:
    """(where, whether it is an element's name) of the first string holding U+0000, e.g.
    ('QuestionnaireResponse.item[0].text', False)."""
    pending: list[tuple[Any, str]] = [(resource, resource_type)]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path, False
        elif isinstance(value, Mapping):
            for key, child in reversed(list(value.items())):
                if "\x00" in str(key):
                    return path, True
                pending.append((child, f"{path}.{key}"))
        elif isinstance(value, list):
            pending.extend((child, f"{path}[{index}]") for index, child in reversed(list(enumerate(value))))
    return None


def check_no_nul(resource: Mapping[str, Any], resource_type: str) -> None:
    """Refuse a resource with U+0000 in a string: FHIR strings may not hold it, and PostgreSQL text cannot,
    so it is refused alike on every database, naming the element."""
    try:
        if b"\\u0000" not in dumps(resource):  # JSON writes U+0000 so: the walk only finds where it is
            return
    except TypeError:
        pass
    found = _element_with_nul(resource, resource_type)
    if found is not None:
        element, is_name = found
        where = f"An element name in {element}" if is_name else element
        raise BadRequest(
            Issue(
                "error",
                "value",
                f"{where} contains the character U+0000 (NUL), which FHIR strings may not contain",
                element,
            )
        )


def validate_structure(resource: Mapping[str, Any], resource_type: str) -> None:
    """Raise BadRequest listing every structural problem (element names, types, cardinality, formats)."""
    actual = resource.get("resourceType")
    if actual != resource_type:
        raise BadRequest(
            Issue(
                "error",
                "invalid",
                f"Expected a {resource_type} resource but the body's resourceType is {actual!r}",
                f"{resource_type}.resourceType" if actual is None else str(actual),
            )
        )
    check_no_nul(resource, resource_type)
    if resource_type == "QuestionnaireResponse" and plainly_valid_response(resource):
        return  # the same verdict as the model's, without building it (see plain_shapes)
    model = MODELS[resource_type]
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        raise BadRequest(issues_from_validation_error(resource_type, exc)) from None
