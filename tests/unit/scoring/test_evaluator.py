"""ResponseEvaluator: the engine's entry point for the rest of the service (validation's expressions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from service.scoring import FhirPathError, ResponseEvaluator, compile_expression, plain

WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"


def option(code: str, weight: int) -> dict[str, Any]:
    return {"valueCoding": {"code": code}, "extension": [{"url": WEIGHT, "valueDecimal": weight}]}


FORM: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "status": "draft",
    "item": [
        {
            "linkId": "g",
            "type": "group",
            "repeats": True,
            "item": [{"linkId": "a", "type": "choice", "answerOption": [option("lo", 1), option("hi", 5)]}],
        }
    ],
}


def occurrence(code: str) -> dict[str, Any]:
    return {"linkId": "g", "item": [{"linkId": "a", "answer": [{"valueCoding": {"code": code}}]}]}


RESPONSE: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "item": [occurrence("lo"), occurrence("hi")],
}
A = FORM["item"][0]["item"][0]


@pytest.fixture
def evaluator() -> ResponseEvaluator:
    return ResponseEvaluator(FORM, RESPONSE)


def values(evaluator: ResponseEvaluator, expression: str, location: str = "QuestionnaireResponse", **kw: Any) -> Any:
    return plain(evaluator.evaluate(expression, location, **kw))


def test_the_environment(evaluator: ResponseEvaluator) -> None:
    assert values(evaluator, "%resource.item.count()") == [2]
    assert values(evaluator, "%rootResource.status") == ["completed"]
    assert values(evaluator, "%questionnaire.item.linkId") == ["g"]
    assert values(evaluator, "%qitem") == []
    assert values(evaluator, "%qitem.linkId", qitem=A) == ["a"]
    assert values(evaluator, "%ucum") == ["http://unitsofmeasure.org"]


def test_the_focus_is_the_item_at_the_location(evaluator: ResponseEvaluator) -> None:
    second = "QuestionnaireResponse.item[1].item[0]"
    assert values(evaluator, "answer.value.code", second) == ["hi"]
    assert values(evaluator, "%context.answer.value.code", second) == ["hi"]
    assert values(evaluator, "%resource.item.count()", second) == [2]


def test_weight_of_the_focus_and_of_the_whole_response(evaluator: ResponseEvaluator) -> None:
    assert values(evaluator, "answer.weight()", "QuestionnaireResponse.item[0].item[0]") == [1]
    assert values(evaluator, "%context.answer.value.ordinal()", "QuestionnaireResponse.item[1].item[0]") == [5]
    assert values(evaluator, "%resource.repeat(item).answer.value.weight().sum()") == [6]
    assert values(evaluator, "%resource.answers().weight().max()") == [5]


def test_variables_keep_what_weight_needs(evaluator: ResponseEvaluator) -> None:
    chosen = evaluator.evaluate("%resource.repeat(item).where(linkId = 'a').answer.value")
    assert values(evaluator, "%chosen.weight().sum()", variables={"chosen": chosen}) == [6]
    five = [5]
    assert values(evaluator, "-%n", variables={"n": five}) == [-5]
    assert five == [5]


def test_a_variable_cannot_replace_the_environment(evaluator: ResponseEvaluator) -> None:
    assert values(evaluator, "%resource.status", variables={"resource": {"status": "other"}}) == ["completed"]


def test_the_inputs_are_not_changed() -> None:
    form, response = copy.deepcopy(FORM), copy.deepcopy(RESPONSE)
    evaluator = ResponseEvaluator(form, response)
    evaluator.evaluate("%resource.repeat(item).answer.value.weight()")
    evaluator.evaluate("%qitem.answerOption.first()", "QuestionnaireResponse.item[0].item[0]", qitem=form["item"][0])
    assert (form, response) == (FORM, RESPONSE)
    assert evaluator.response is not response and evaluator.questionnaire is not form


@pytest.mark.parametrize(
    "location", ["QuestionnaireResponse.item[5]", "QuestionnaireResponse.item[0].answer[0]", "Patient.item[0]", ""]
)
def test_a_location_the_response_does_not_have_is_an_error(evaluator: ResponseEvaluator, location: str) -> None:
    with pytest.raises(FhirPathError, match="no item at"):
        evaluator.evaluate("true", location)


def test_failures_are_fhirpath_errors(evaluator: ResponseEvaluator) -> None:
    with pytest.raises(FhirPathError, match="undefined environment variable"):
        evaluator.evaluate("%nope")
    with pytest.raises(FhirPathError, match="syntax error"):
        evaluator.evaluate("item.where(")


class TestCompiling:
    def test_a_syntax_error_says_where_briefly(self) -> None:
        with pytest.raises(FhirPathError) as raised:
            compile_expression("answer.count() = 3 asdf")
        assert str(raised.value) == "syntax error at character 20: extraneous input 'asdf'"

    def test_deep_nesting_is_an_error_not_a_crash(self) -> None:
        with pytest.raises(FhirPathError, match="nests too deeply"):
            compile_expression("(" * 2000 + "1" + ")" * 2000)

    def test_a_failure_is_remembered_and_raised_afresh(self) -> None:
        errors = []
        for _ in range(2):
            with pytest.raises(FhirPathError) as raised:
                compile_expression("1 +* 2")
            errors.append(raised.value)
        assert errors[0] is not errors[1] and str(errors[0]) == str(errors[1])
