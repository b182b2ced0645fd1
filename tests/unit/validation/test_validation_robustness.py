"""Odd input yields issues, never exceptions; inputs are never changed; the Questionnaire's own state."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qr_builders import (
    JSON,
    SDC,
    answered,
    check,
    coding,
    errors,
    ext,
    group,
    load,
    one_error,
    q_item,
    questionnaire,
    response,
    warnings,
)

from service.fhir.issues import Issue
from service.validation import validate_response


def test_inputs_that_are_not_the_right_resources() -> None:
    assert [issue.code for issue in validate_response({"resourceType": "Patient"}, response())] == ["structure"]
    assert [issue.code for issue in validate_response(questionnaire(), {"item": []})] == ["structure"]
    assert validate_response([], 3) == [  # type: ignore[arg-type]
        Issue("error", "structure", "The questionnaire given is not a Questionnaire resource")
    ]


ODD_RESPONSES: list[Any] = [
    {"item": "q1"},
    {"item": [None, 1, "x", []]},
    {"item": [{"linkId": 5}]},
    {"item": [{"linkId": "q1", "answer": {"valueString": "a"}}]},
    {"item": [{"linkId": "q1", "answer": [{"valueString": None}]}]},
    {"item": [{"linkId": "g", "item": [{"linkId": "c", "answer": [{"valueCoding": {"code": 1, "system": []}}]}]}]},
    {"item": [{"linkId": "g", "item": {"linkId": "c"}}]},
    {"item": [{"linkId": "q1", "text": 7, "answer": [{"valueString": "a", "item": "x"}]}]},
    {"status": ["completed"], "authored": 2020},
]
ODD_QUESTIONNAIRE = questionnaire(
    q_item(
        "q1",
        "string",
        maxLength="ten",
        extension=[{"url": 5}, ext("http://hl7.org/fhir/StructureDefinition/regex")],
    ),
    {"linkId": "g", "type": "group", "item": [q_item("c", "choice", answerOption=[{"valueCoding": "a"}, 3])]},
    {"linkId": "w", "type": "string", "enableWhen": [{"question": 1}, "x"], "enableBehavior": 3},
    {"linkId": "v", "type": "choice", "answerValueSet": "#nope"},
    {"linkId": "x", "type": "integer", "item": "not an item"},
    effectivePeriod={"start": 1},
    contained=[None, {"resourceType": "ValueSet", "id": "nope", "expansion": {"contains": "x"}}],
)
ODD_QUESTIONNAIRE["item"].append("not an item")


@pytest.mark.parametrize("fields", ODD_RESPONSES)
def test_malformed_but_parseable_responses_give_issues(fields: JSON) -> None:
    issues = check(ODD_QUESTIONNAIRE, {"resourceType": "QuestionnaireResponse", "status": "completed", **fields})
    assert errors(issues), issues


_KEYS = [
    "linkId", "item", "answer", "type", "text", "required", "repeats", "maxLength", "readOnly",
    "enableWhen", "enableBehavior", "question", "operator", "answerBoolean", "answerInteger", "answerCoding",
    "answerOption", "answerValueSet", "extension", "url", "valueInteger", "valueString", "valueCoding",
    "valueBoolean", "valueQuantity", "valueDecimal", "valueExpression", "valueReference", "valueAttachment",
    "code", "system", "display", "value", "unit", "reference", "data", "size", "contentType", "language",
    "expression", "resourceType", "id", "expansion", "contains", "compose", "include", "concept",
]  # fmt: skip
_LEAVES = st.none() | st.booleans() | st.integers(-3, 3) | st.floats() | st.sampled_from(
    ["q1", "g", "c", "=", "!=", "exists", ">", "group", "choice", "string", "integer", "boolean", "quantity",
     "attachment", "reference", "open-choice", "display", "text/fhirpath", "%resource.item.count() > 0", "#vs",
     "vs", "ValueSet", "all", "any", "Patient/1", "aGk=", "", "2020-01-01", "(a+)+",
     SDC + "sdc-questionnaire-enableWhenExpression", "http://hl7.org/fhir/StructureDefinition/minValue",
     "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption"]
)  # fmt: skip
JSON_VALUES = st.recursive(
    _LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(q_items=JSON_VALUES, r_items=JSON_VALUES, contained=JSON_VALUES)
def test_any_json_shape_is_validated_without_raising(q_items: Any, r_items: Any, contained: Any) -> None:
    q = {"resourceType": "Questionnaire", "status": "active", "item": q_items, "contained": contained}
    r = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "#q",
        "item": r_items,
    }
    r["contained"] = contained
    before = json.dumps([q, r], sort_keys=True, default=repr)
    issues = validate_response(q, r)
    assert all(isinstance(issue, Issue) and issue.code != "exception" for issue in issues)
    assert json.dumps([q, r], sort_keys=True, default=repr) == before


def test_deep_nesting_is_bounded() -> None:
    inner: JSON = q_item("leaf", "string")
    answer: JSON = answered("leaf", {"valueString": "x"})
    for depth in range(200):
        inner = q_item(f"g{depth}", "group", item=[inner])
        answer = group(f"g{depth}", answer)
    issues = check(questionnaire(inner), response(answer))
    assert any("nested too deeply" in issue.text for issue in errors(issues))


def test_inputs_are_not_changed() -> None:
    rule = {"language": "text/fhirpath", "expression": "%resource.item.where(linkId='t').answer.value = true"}
    q = questionnaire(
        q_item("t", "boolean"),
        q_item(
            "d",
            "choice",
            answerValueSet="#vs",
            extension=[ext(SDC + "sdc-questionnaire-enableWhenExpression", valueExpression=rule)],
        ),
        q_item("e", "string", enableWhen=[{"question": "t", "operator": "=", "answerBoolean": True}]),
    )
    q["contained"] = [
        {"resourceType": "ValueSet", "id": "vs", "status": "active", "expansion": {"contains": [coding("a")]}}
    ]
    r = response(
        answered("t", {"valueBoolean": True}),
        answered("d", {"valueCoding": coding("b")}),
        answered("e", {"valueString": "x"}),
    )
    q_before, r_before = copy.deepcopy(q), copy.deepcopy(r)
    assert one_error(check(q, r)).link_id == "d"
    assert (q, r) == (q_before, r_before)
    nested = load("fhir-test-cases/nested-questionnaire-nested-valueset.json")
    nested_before = copy.deepcopy(nested)
    check(nested["contained"][0], nested)
    assert nested == nested_before


@pytest.mark.parametrize(
    ("fields", "authored", "expected"),
    [
        ({"status": "active"}, None, []),
        ({"status": "draft"}, None, ["draft"]),
        ({"status": "retired"}, None, ["retired"]),
        ({"status": "active", "effectivePeriod": {"start": "2022"}}, "2021-12-31T23:00:00-02:00", []),
        ({"status": "active", "effectivePeriod": {"start": "2022"}}, "2021-12-31T23:00:00+02:00", ["before"]),
        ({"status": "active", "effectivePeriod": {"end": "2021-12-11"}}, "2021-12-11", []),
        ({"status": "active", "effectivePeriod": {"end": "2021-12-11"}}, "2021-12-12", ["after"]),
        ({"status": "retired", "effectivePeriod": {"start": "2030"}}, "2024", ["retired", "before"]),
    ],
)
def test_questionnaire_status_and_effective_period(fields: JSON, authored: str | None, expected: list[str]) -> None:
    q = questionnaire(q_item("q1", "string"), **fields)
    extra = {"authored": authored} if authored else {}
    issues = check(q, response(answered("q1", {"valueString": "a"}), **extra))
    assert errors(issues) == []
    found = warnings(issues)
    assert len(found) == len(expected) and all(word in issue.text for word, issue in zip(expected, found, strict=True))
