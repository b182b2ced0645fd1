"""calculatedExpression: evaluation order, variables in scope, typing, replaced values, failures, item placement."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import pytest

from service.scoring import ScoringResult, score_response

CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
Json = dict[str, Any]
Load = Callable[[str], Json]


def calc(expression: str) -> Json:
    return {"url": CALCULATED, "valueExpression": {"language": "text/fhirpath", "expression": expression}}


def var(name: str, expression: str, language: str = "text/fhirpath") -> Json:
    return {"url": VARIABLE, "valueExpression": {"name": name, "language": language, "expression": expression}}


def item(link_id: str, item_type: str, *extensions: Json, **more: Any) -> Json:
    found: Json = {"linkId": link_id, "type": item_type, **more}
    if extensions:
        found["extension"] = list(extensions)
    return found


def form(*items: Json, variables: tuple[Json, ...] = ()) -> Json:
    questionnaire: Json = {"resourceType": "Questionnaire", "status": "draft", "item": list(items)}
    if variables:
        questionnaire["extension"] = list(variables)
    return questionnaire


def response(*items: Json) -> Json:
    return {"resourceType": "QuestionnaireResponse", "status": "completed", "item": list(items)}


def answer(link_id: str, **value: Any) -> Json:
    return {"linkId": link_id, "answer": [value]}


def answers_of(result: ScoringResult) -> dict[str, Any]:
    """linkId -> answers, for every item of the completed response (nested items too)."""
    found: dict[str, Any] = {}

    def walk(items: list[Json]) -> None:
        for entry in items:
            if "answer" in entry:
                found[entry["linkId"]] = entry["answer"]
            walk(entry.get("item", []))

    walk(result.response.get("item", []))
    return found


A = "%resource.item.where(linkId = 'a').answer.value"


class TestTypes:
    def test_each_item_type_gets_an_answer_of_its_type(self) -> None:
        kg = {"system": "http://unitsofmeasure.org", "code": "kg", "display": "kilogram"}
        questionnaire = form(
            item("a", "integer"),
            item("i", "integer", calc(f"{A} * 2")),
            item("d", "decimal", calc(f"{A} / 2")),
            item("qty", "quantity", calc(f"{A} + 0.5"), {"url": UNIT, "valueCoding": kg}),
            item("s", "string", calc(f"'a=' + {A}.toString()")),
            item("b", "boolean", calc(f"{A} > 5")),
            item(
                "c",
                "choice",
                calc("%qitem.answerOption.valueCoding.where(code = 'high')"),
                answerOption=[
                    {"valueCoding": {"system": "x", "code": "low"}},
                    {"valueCoding": {"system": "x", "code": "high"}},
                ],
            ),
        )
        result = score_response(questionnaire, response(answer("a", valueInteger=7)))
        assert result.issues == ()
        assert answers_of(result) == {
            "a": [{"valueInteger": 7}],
            "i": [{"valueInteger": 14}],
            "d": [{"valueDecimal": 3.5}],
            "qty": [
                {
                    "valueQuantity": {
                        "value": 7.5,
                        "unit": "kilogram",
                        "system": "http://unitsofmeasure.org",
                        "code": "kg",
                    }
                }
            ],
            "s": [{"valueString": "a=7"}],
            "b": [{"valueBoolean": True}],
            "c": [{"valueCoding": {"system": "x", "code": "high"}}],
        }
        assert [(s.link_id, s.value) for s in result.scores][:3] == [("i", 14), ("d", 3.5), ("qty", 7.5)]

    def test_a_fraction_for_an_integer_item_is_an_error(self) -> None:
        questionnaire = form(item("a", "integer"), item("half", "integer", calc(f"{A} / 2")))
        result = score_response(questionnaire, response(answer("a", valueInteger=7)))
        assert "half" not in answers_of(result)
        [issue] = result.issues
        assert issue.severity == "error" and issue.link_id == "half"
        assert "3.5 is not a whole number" in issue.text and f"{A} / 2" in issue.text

    def test_several_values_for_a_single_item_is_an_error_but_fine_for_a_repeating_one(self) -> None:
        questionnaire = form(
            item("a", "integer", repeats=True),
            item("one", "integer", calc(A)),
            item("many", "integer", calc(A), repeats=True),
        )
        result = score_response(
            questionnaire, response({"linkId": "a", "answer": [{"valueInteger": 1}, {"valueInteger": 2}]})
        )
        assert answers_of(result)["many"] == [{"valueInteger": 1}, {"valueInteger": 2}]
        assert "one" not in answers_of(result)
        [issue] = result.issues
        assert issue.link_id == "one" and "gave 2 values" in issue.text


class TestOrder:
    def test_an_expression_may_read_a_calculated_item_that_comes_after_it(self) -> None:
        questionnaire = form(
            item("first", "integer", calc("%resource.item.where(linkId = 'later').answer.value + 1")),
            item("a", "integer"),
            item("later", "integer", calc(f"{A} * 10")),
        )
        result = score_response(questionnaire, response(answer("a", valueInteger=7)))
        assert answers_of(result)["first"] == [{"valueInteger": 71}]
        assert result.issues == ()

    def test_a_cycle_that_never_settles_is_stopped_and_reported(self) -> None:
        x = "%resource.item.where(linkId = 'x').answer.value"
        y = "%resource.item.where(linkId = 'y').answer.value"
        questionnaire = form(
            item("x", "integer", calc(f"iif({y}.exists(), {y} + 1, 0)")),
            item("y", "integer", calc(f"{x} + 1")),
        )
        result = score_response(questionnaire, response())
        assert answers_of(result) == {}
        [issue] = result.issues
        assert issue.severity == "error" and "cycle" in issue.text and "x, y" in issue.text

    def test_variables_are_evaluated_in_order_each_in_its_own_scope(self) -> None:
        questionnaire = form(
            item("a", "integer"),
            item(
                "g",
                "group",
                var("doubled", "%base * 2"),
                item=[
                    item("in-group", "integer", var("plusOne", "%doubled + 1"), calc("%plusOne + %base")),
                    item("sibling", "integer", calc("%plusOne")),
                    item("context", "string", calc("%context.linkId + '/' + %qitem.type")),
                ],
            ),
            variables=(var("base", f"{A}"),),
        )
        result = score_response(questionnaire, response(answer("a", valueInteger=5)))
        got = answers_of(result)
        assert got["in-group"] == [{"valueInteger": 16}]  # (5 * 2 + 1) + 5
        assert got["context"] == [{"valueString": "context/string"}]
        assert "sibling" not in got  # %plusOne belongs to the other item
        [issue] = result.issues
        assert issue.link_id == "sibling" and "plusOne" in issue.text

    def test_a_failed_variable_is_reported_once_and_reads_as_empty(self) -> None:
        questionnaire = form(
            item("a", "integer"),
            item("uses", "integer", calc("iif(%broken.exists(), 1, 2)")),
            variables=(var("broken", "'text' + 1"),),
        )
        result = score_response(questionnaire, response(answer("a", valueInteger=5)))
        assert answers_of(result)["uses"] == [{"valueInteger": 2}]
        [issue] = result.issues
        assert issue.link_id is None and "variable %broken on the Questionnaire" in issue.text

    def test_a_variable_in_another_language_reads_as_empty(self) -> None:
        questionnaire = form(
            item("uses", "integer", calc("%patient.count()")),
            variables=(var("patient", "Patient?_id={{%patient.id}}", "application/x-fhir-query"),),
        )
        result = score_response(questionnaire, response())
        assert answers_of(result)["uses"] == [{"valueInteger": 0}]
        assert result.issues == ()


class TestSubmittedValues:
    def test_a_differing_submitted_value_is_replaced_with_a_warning(self, fixture: Load) -> None:
        result = score_response(
            fixture("sdc/questionnaire-sdc-profile-example-PHQ9.json"),
            fixture("sdc/questionnaireresponse-sdc-profile-example-PHQ9.json"),
        )
        assert [(s.link_id, s.value, s.item_type) for s in result.scores] == [("H1/TS", 10, "quantity")]
        total = result.response["item"][0]["item"][9]
        assert total["answer"] == [{"valueQuantity": {"value": 10}}]
        [warning] = result.issues
        assert warning.severity == "warning" and warning.link_id == "H1/TS"
        assert warning.expression == "QuestionnaireResponse.item[0].item[9].answer[0]"
        assert "(13)" in warning.text and "(10)" in warning.text

    def test_an_equal_submitted_value_of_another_json_type_is_no_warning(self, fixture: Load) -> None:
        questionnaire = form(item("a", "integer"), item("total", "integer", calc(f"{A} + 1")))
        submitted = response(answer("a", valueInteger=11), answer("total", valueDecimal=12.0))
        result = score_response(questionnaire, submitted)
        assert answers_of(result)["total"] == [{"valueInteger": 12}]
        assert result.issues == ()

    def test_a_submitted_value_that_cannot_be_computed_is_removed(self) -> None:
        questionnaire = form(item("a", "integer"), item("total", "integer", calc(f"iif({A}.exists(), {A}, {{}})")))
        result = score_response(questionnaire, response(answer("total", valueInteger=3)))
        assert result.response["item"] == []
        assert [(s.link_id, s.value) for s in result.scores] == [("total", None)]
        [warning] = result.issues
        assert warning.severity == "warning" and "was removed" in warning.text

    def test_the_caller_s_response_is_left_as_it_was(self, fixture: Load) -> None:
        submitted = fixture("sdc/questionnaireresponse-sdc-profile-example-PHQ9.json")
        before = copy.deepcopy(submitted)
        score_response(fixture("sdc/questionnaire-sdc-profile-example-PHQ9.json"), submitted)
        assert submitted == before


class TestFailures:
    @pytest.mark.parametrize(
        ("expression", "reason"),
        [
            ("'a' + 1", "Cannot"),
            ("%resource.item.where(linkId = ", "syntax error"),
            ("%resource.item.nothingLikeThis()", "Not implemented: nothingLikeThis"),
            ("%undefinedVariable + 1", "undefinedVariable"),
        ],
    )
    def test_a_failing_expression_is_an_error_naming_item_and_expression(self, expression: str, reason: str) -> None:
        questionnaire = form(
            item("a", "integer"), item("bad", "integer", calc(expression)), item("good", "integer", calc("1"))
        )
        result = score_response(questionnaire, response(answer("a", valueInteger=1)))
        assert answers_of(result)["good"] == [{"valueInteger": 1}]
        [issue] = result.issues
        assert issue.severity == "error" and issue.link_id == "bad"
        assert reason in issue.text and expression in issue.text and "'bad'" in issue.text

    def test_an_expression_in_another_language_is_an_error(self) -> None:
        extension = {"url": CALCULATED, "valueExpression": {"language": "text/cql", "expression": "1"}}
        result = score_response(form(item("x", "integer", extension)), response())
        [issue] = result.issues
        assert "text/cql" in issue.text


class TestPlacement:
    def test_a_missing_calculated_item_is_created_in_questionnaire_order(self) -> None:
        questionnaire = form(item("a", "integer"), item("total", "integer", calc(f"{A} + 1")), item("b", "integer"))
        result = score_response(questionnaire, response(answer("a", valueInteger=1), answer("b", valueInteger=2)))
        assert [entry["linkId"] for entry in result.response["item"]] == ["a", "total", "b"]

    def test_missing_groups_are_created_and_dropped_again_when_left_empty(self) -> None:
        questionnaire = form(
            item("a", "integer"),
            item("g", "group", item=[item("x", "integer"), item("sub", "integer", calc(f"{A} * 3"))]),
            item("h", "group", item=[item("never", "integer", calc("{}"))]),
        )
        result = score_response(questionnaire, response(answer("a", valueInteger=2)))
        assert result.response["item"] == [
            {"linkId": "a", "answer": [{"valueInteger": 2}]},
            {"linkId": "g", "item": [{"linkId": "sub", "answer": [{"valueInteger": 6}]}]},
        ]
        assert [(s.link_id, s.value) for s in result.scores] == [("sub", 6), ("never", None)]

    def test_a_calculated_item_goes_after_its_existing_siblings_in_a_group(self) -> None:
        questionnaire = form(
            item(
                "g",
                "group",
                item=[
                    item("x", "integer"),
                    item("sum", "integer", calc("%resource.item.item.where(linkId = 'x').answer.value * 2")),
                ],
            ),
        )
        submitted = response({"linkId": "g", "item": [answer("x", valueInteger=4)]})
        result = score_response(questionnaire, submitted)
        assert result.response["item"][0]["item"] == [
            {"linkId": "x", "answer": [{"valueInteger": 4}]},
            {"linkId": "sum", "answer": [{"valueInteger": 8}]},
        ]


def test_malformed_json_never_raises(fixture: Load) -> None:
    """Scoring runs on what it is given (validation reports the shape): misplaced JSON reads as absent."""
    junk: list[Any] = [None, 1, "x", [], {}, [1], {"a": 1}, True, 2.5, {"valueCoding": 3}, {"linkId": 5}, {"url": []}]
    sources = [
        ("fhirpath-js/weight-questionnaire-R4.json", "fhirpath-js/weight-questionnaire-response-R4.json"),
        ("sdc/questionnaire-sdc-profile-example-PHQ9.json", "sdc/questionnaireresponse-sdc-profile-example-PHQ9.json"),
        ("synthetic/reqol-style.json", "us-core/QuestionnaireResponse-phq-9-example.json"),
    ]
    rng = random.Random(11)

    def spoil(node: Any) -> None:
        while isinstance(node, dict | list) and node:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            if rng.random() < 0.3:
                node[key] = copy.deepcopy(rng.choice(junk))
                return
            node = node[key]

    for _ in range(300):
        questionnaire, submitted = (fixture(path) for path in rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            spoil(rng.choice([questionnaire, submitted]))
        score_response(questionnaire, submitted)
