"""The evaluation budget: no Questionnaire expression can exhaust a worker, compiled or interpreted.

Each limit is met by an expression built to go over it; the evaluation stops with BudgetExceeded (a
FhirPathError naming the limit) on both of the engine's paths, and scoring and validation report it as
an error naming the expression.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest

from service.fhir.issues import Issue
from service.scoring import LIMITS, BudgetExceeded, FhirPathError, Limits, compile_expression, score_response
from service.scoring.budget import Budget
from service.scoring.fhirpath import evaluate, interpreted
from service.scoring.weights import AnswerWeights, Terminology
from service.validation import validate_response

EnginePath = Callable[[], AbstractContextManager[Any]]  # the engine's path: compiled or interpreted
CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
ENABLE_WHEN = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-enableWhenExpression"
ANSWERS = "%resource.item.answer.value"
# 10 answers, then 10 more for each: 10^8 items at the end, built from ten numbers.
CROSS_PRODUCT = ANSWERS + f".select({ANSWERS})" * 7


def _response(answers: int = 10, items: int = 1) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": f"n{i}", "answer": [{"valueInteger": n} for n in range(answers)]} for i in range(items)],
    }


def _run(text: str, response: dict[str, Any], budget: Budget | None = None) -> list[Any]:
    sdc = AnswerWeights(response, {}, Terminology(), Terminology())
    return evaluate(compile_expression(text), response, {"resource": response}, sdc, budget)


@pytest.fixture(params=["compiled", "interpreted"])
def path(request: pytest.FixtureRequest) -> EnginePath:
    """Each test runs on the compiled closures and on fhirpathpy's interpreter."""
    return interpreted if request.param == "interpreted" else nullcontext


def _stops(path: EnginePath, text: str, response: dict[str, Any], match: str) -> None:
    with path(), pytest.raises(BudgetExceeded, match=match):
        _run(text, response)


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (CROSS_PRODUCT, 1),
        (f"{ANSWERS}.select({ANSWERS}.select({ANSWERS}.select({ANSWERS}.select({ANSWERS}))))", 1),
        (f"{ANSWERS}.select({ANSWERS}).select({ANSWERS}).combine({ANSWERS}).select({ANSWERS}).select({ANSWERS})", 1),
        ("1.repeat($this + 1)", 1),
        # 10,000 references to the response, multiplied by its items
        (f"{ANSWERS}.select({ANSWERS}.select(%resource)).descendants()", 10),
        (f"{ANSWERS}.select({ANSWERS}.select(%resource)).children().count()", 10),
    ],
)
def test_collections_stop_at_the_item_limit(path: EnginePath, text: str, items: int) -> None:
    _stops(path, text, _response(items=items), f"more than {LIMITS.max_items:,} items")


def test_navigation_stops_too(path: EnginePath) -> None:
    # 10,000 references to the response, then .item: each gives the response's 10 items.
    text = f"{ANSWERS}.select({ANSWERS}.select(%resource)).item"
    # The closures check as they build; fhirpathpy's navigation (quadratic in what it builds) is checked
    # for time on every element it visits, and stops on whichever limit comes first.
    match = f"more than {LIMITS.max_items:,} items" + ("|ran out of time" if path is interpreted else "")
    _stops(path, text, _response(items=10), match)


def test_comparing_every_item_with_every_other_stops(path: EnginePath) -> None:
    many = f"{ANSWERS}.select({ANSWERS}.select({ANSWERS}.select({ANSWERS})))"  # 10,000 items
    _stops(path, f"{many}.exclude({many})", _response(), "pairs are allowed")
    _stops(path, f"{many}.intersect({many}).count()", _response(), "pairs are allowed")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("'ab'.repeat($this & $this)", "characters; at most"),
        ("'ab'.repeat($this + $this)", "characters; at most"),
        (f"{ANSWERS}.select({ANSWERS}.select({ANSWERS}.select('{'x' * 1000}'))).join(',')", "characters; at most"),
        (f"'{'a' * 2000}'.replace('', '{'b' * 2000}')", "characters; at most"),
        (f"'{'a' * 2000}'.replace('a', '{'b' * 2000}')", "characters; at most"),
        (f"'{'a' * 2000}'.replaceMatches('a', '{'b' * 1000}$1')", "characters; at most"),
        ("2.repeat($this * $this)", "integer of more than"),
        (f"{ANSWERS}.aggregate($total * $total, 2)", "integer of more than"),
    ],
)
def test_values_stop_at_their_size_limit(path: EnginePath, text: str, match: str) -> None:
    _stops(path, text, _response(), match)


def test_time_runs_out(path: EnginePath) -> None:
    # Nothing big is built: it only takes long (10^12 comparisons), and stops when the time is up.
    nested = f"{ANSWERS}.where({ANSWERS}.where({ANSWERS}.where({ANSWERS}.where($this = 1).exists()).exists()).exists())"
    budget = Budget(Limits(seconds=0.2))
    with path(), pytest.raises(BudgetExceeded, match="ran out of time"):
        _run(nested, _response(answers=1000), budget)
    # The time is the response's: once spent, every later evaluation over the response stops too.
    with path(), pytest.raises(BudgetExceeded, match="ran out of time"):
        _run("1 + 1", _response(), budget)


def test_navigation_alone_runs_out_of_time(path: EnginePath) -> None:
    # all() over many elements whose criteria only navigate: no function is called inside the loop.
    text = f"{ANSWERS}.select({ANSWERS}.select({ANSWERS}.select(%resource))).all(%resource.item.answer.exists())"
    with path(), pytest.raises(BudgetExceeded, match="ran out of time"):
        _run(text, _response(items=200), Budget(Limits(seconds=0.2)))


def test_ordinary_scoring_is_far_within_the_budget() -> None:
    text = f"{ANSWERS}.where($this > 2).select($this * 2).sum() + {ANSWERS}.count()"
    budget = Budget()
    for _ in range(200):
        assert _run(text, _response(), budget) == [84 + 10]


class TestCompiling:
    def test_an_expression_nesting_deeper_than_the_limit_is_refused(self) -> None:
        with pytest.raises(FhirPathError, match=f"nests more than {LIMITS.max_depth} levels deep"):
            compile_expression("(" * 100 + "1" + ")" * 100)
        within = compile_expression("(" * 30 + "1" + ")" * 30)
        assert within.plan is not None  # everything accepted is compiled: the interpreter meets no deep tree

    def test_an_overlong_expression_is_refused_before_it_is_parsed(self) -> None:
        text = " + ".join(["1"] * (LIMITS.max_expression_length // 4 + 1))
        with pytest.raises(FhirPathError, match=f"at most {LIMITS.max_expression_length:,} are allowed"):
            compile_expression(text)


def _questionnaire(extension: dict[str, Any], *, on: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"linkId": "n0", "type": "integer", "repeats": True},
        {"linkId": "total", "type": "integer", "readOnly": True},
    ]
    next(item for item in items if item["linkId"] == on).setdefault("extension", []).append(extension)
    return {"resourceType": "Questionnaire", "status": "active", "url": "http://x/q", "item": items}


def _expression(url: str, text: str) -> dict[str, Any]:
    return {"url": url, "valueExpression": {"language": "text/fhirpath", "expression": text}}


def _about(issues: Iterator[Issue] | tuple[Issue, ...] | list[Issue], text: str) -> list[Issue]:
    return [issue for issue in issues if text in issue.text]


def test_scoring_reports_a_breach_as_an_error_naming_the_expression() -> None:
    questionnaire = _questionnaire(_expression(CALCULATED, f"{CROSS_PRODUCT}.count()"), on="total")
    result = score_response(questionnaire, _response())
    (issue,) = _about(result.issues, "items")
    assert issue.severity == "error"
    assert "calculatedExpression on item 'total'" in issue.text and CROSS_PRODUCT in issue.text
    assert result.scores[0].value is None


def test_validation_reports_a_breach_as_an_error_naming_the_expression() -> None:
    condition = f"{CROSS_PRODUCT}.exists()"
    questionnaire = _questionnaire(_expression(ENABLE_WHEN, condition), on="total")
    issues = validate_response(questionnaire, _response())
    (issue,) = _about(issues, "items")
    assert issue.severity == "error" and issue.code == "too-costly"
    assert "enableWhenExpression of item 'total' was stopped" in issue.text and condition in issue.text
    # An ordinary failure (here an unknown variable) stays a warning: its rule is not applied.
    questionnaire = _questionnaire(_expression(ENABLE_WHEN, "%nope.exists()"), on="total")
    issues = validate_response(questionnaire, _response())
    assert [issue.severity for issue in _about(issues, "undefined environment variable")] == ["warning"]
