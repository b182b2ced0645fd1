"""The FHIRPath engine: parsing, the functions it replaces or adds, and what it hands back."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from service.scoring import FhirPathError, evaluate_expression
from service.scoring.fhirpath import compile_expression, constant_names, function_names

FORM = {
    "resourceType": "Questionnaire",
    "status": "draft",
    "item": [{"linkId": "n", "type": "integer", "repeats": True}],
}


def run(expression: str, numbers: tuple[Any, ...] = (3, 4.5, 2)) -> list[Any]:
    response = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {
                "linkId": "n",
                "answer": [{"valueInteger": n} if isinstance(n, int) else {"valueDecimal": n} for n in numbers],
            }
        ],
    }
    return evaluate_expression(FORM, response, expression)


N = "%resource.item.answer.value"


class TestParsing:
    @pytest.mark.parametrize("text", ["item.answer.", "(1 + ", "1 +* 2", "item.where(linkId = 'a'", "", "   "])
    def test_syntax_errors_are_errors(self, text: str) -> None:
        with pytest.raises(FhirPathError):
            compile_expression(text)

    def test_each_text_is_parsed_once(self) -> None:
        assert compile_expression("1 + 1") is compile_expression("1 + 1")

    def test_names_used(self) -> None:
        compiled = compile_expression("%resource.item.where(linkId = %`vs-x`).answer.weight().sum() + %a")
        assert function_names(compiled) == {"where", "weight", "sum"}
        assert constant_names(compiled) == {"resource", "vs-x", "a"}


class TestAggregates:
    """fhirpathpy's own sum/min/max/avg fail on values read from a resource; these do not."""

    def test_on_answer_values(self) -> None:
        assert run(f"{N}.sum()") == [Decimal("9.5")]
        assert run(f"{N}.min()") == [2]
        assert run(f"{N}.max()") == [Decimal("4.5")]
        assert run(f"{N}.avg()") == [Decimal("9.5") / 3]

    def test_empty_in_empty_out(self) -> None:
        assert run(f"{N}.sum()", ()) == []
        assert run("{}.sum()") == []
        assert run("{}.avg()") == []

    def test_non_numbers_are_an_error(self) -> None:
        with pytest.raises(FhirPathError, match="expected a number"):
            run("('a' | 'b').sum()")


class TestRound:
    @pytest.mark.parametrize(
        ("expression", "expected"),
        [
            ("2.5.round()", Decimal("3")),  # halves round up (fhirpathpy alone gives 2)
            ("3.5.round(0)", Decimal("4")),
            ("(-2.5).round()", Decimal("-2")),  # towards +infinity, as fhirpath.js
            ("(17 / 24 * 100).round(2)", Decimal("70.83")),
            ("1.005.round(2)", Decimal("1.01")),  # exact decimal arithmetic
        ],
    )
    def test_round(self, expression: str, expected: Decimal) -> None:
        assert run(expression) == [expected]

    def test_negative_precision_is_an_error(self) -> None:
        with pytest.raises(FhirPathError):
            run("1.5.round(-1)")


class TestValues:
    def test_float_values_come_back_as_exact_decimals(self) -> None:
        assert run(f"{N}.where($this > 4)") == [Decimal("4.5")]
        assert run("7 / 2") == [Decimal("3.5")]

    def test_a_variable_s_collection_is_not_changed_by_evaluation(self) -> None:
        form = {
            **FORM,
            "extension": [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/variable",
                    "valueExpression": {"name": "x", "language": "text/fhirpath", "expression": "5"},
                }
            ],
        }
        response = {"resourceType": "QuestionnaireResponse", "item": []}
        # unary minus negates in place inside the engine: each evaluation must get its own list
        assert evaluate_expression(form, response, "-%x") == [-5]
        assert evaluate_expression(form, response, "%x") == [5]

    def test_answers_includes_answers_nested_under_answers(self) -> None:
        form = {"resourceType": "Questionnaire", "status": "draft", "item": [{"linkId": "a", "type": "integer"}]}
        response = {
            "resourceType": "QuestionnaireResponse",
            "item": [
                {
                    "linkId": "a",
                    "answer": [{"valueInteger": 1, "item": [{"linkId": "b", "answer": [{"valueInteger": 2}]}]}],
                }
            ],
        }
        assert evaluate_expression(form, response, "%resource.answers().value") == [1, 2]
        assert evaluate_expression(form, response, "%resource.item.answers().value") == [1, 2]


class TestRegularExpressions:
    """matches() and replaceMatches() run RE2 (linear time), with fhirpathpy's meaning otherwise."""

    def test_matches_searches_with_dot_matching_newlines(self) -> None:
        assert run("'ab\\ncd'.matches('b.c')") == [True]
        assert run("'abc'.matches('^b')") == [False]
        assert run("'2024-01'.matches('[0-9]{4}')") == [True]

    def test_replace_matches_names_groups_with_dollars(self) -> None:
        assert run("'joe@example.org'.replaceMatches('(\\\\w+)@(\\\\w+)', '$2 has $1')") == ["example has joe.org"]

    def test_a_catastrophic_pattern_is_answered(self) -> None:
        # A backtracking engine takes hours over 40 a's and a "!" (RE2 never backtracks): the evaluation
        # runs aside so that such a regression fails here instead of stalling the suite.
        found: list[list[Any]] = []
        worker = threading.Thread(target=lambda: found.append(run(f"'{'a' * 40}!'.matches('^(a+)+$')")), daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert found == [[False]], "matches() did not finish: the pattern engine backtracks"

    @pytest.mark.parametrize("pattern", ["(a)\\\\1", "a(?=b)", "(?<!x)a"])
    def test_backreferences_and_lookaround_are_errors(self, pattern: str) -> None:
        with pytest.raises(FhirPathError, match="RE2"):
            run(f"'aa'.matches('{pattern}')")
        with pytest.raises(FhirPathError, match="RE2"):
            run(f"'aa'.replaceMatches('{pattern}', 'b')")
