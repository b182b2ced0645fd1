"""Compiled expressions and directly evaluated shapes give exactly what fhirpathpy's interpreter gives.

Each check runs the same thing twice, once as the service runs it and once with ``interpreted()`` (the
interpreter only), and compares everything: scores, the completed response, safety flags, and every
issue's text. Responses and expressions are random (hypothesis), malformed parts included, so that the
cases where a shape must decline are met as often as the ordinary ones. Every expression of every
built-in instrument and fixture form is evaluated, wherever it applies, over random responses.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy.engine.nodes import FP_Type, ResourceNode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.scoring import FhirPathError, ScoringResult, compile_expression, score_response
from service.scoring import shapes as shapes_module
from service.scoring.definition import FHIRPATH, ExpressionDef, definition_for
from service.scoring.extensions import json_copy
from service.scoring.fhirpath import evaluate, interpreted, item_node
from service.scoring.scope import Scope
from service.scoring.weights import AnswerWeights, Terminology

ROOT = Path(__file__).resolve().parents[3]
CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
ITEM_WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
Json = dict[str, Any]
Draw = Callable[[st.SearchStrategy[Any]], Any]
INSTRUMENTS = sorted(path.parent.name for path in ROOT.glob("questionnaires/*/questionnaire.json"))
FIXTURES = ROOT / "tests" / "fixtures"


def instrument(slug: str) -> Json:
    value = json.loads((ROOT / "questionnaires" / slug / "questionnaire.json").read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def fixture_form(name: str) -> Json:
    value = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def _fixture_forms() -> list[str]:
    """Every fixture Questionnaire with an expression: their expressions take other shapes than the built-in
    instruments' (%context, startsWith(), conversion tables, %questionnaire lookups, ordinalValue on
    contained value sets, answers(), decimal arithmetic, initialExpression)."""
    found = []
    for path in sorted(FIXTURES.rglob("*.json")):
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(value, dict) and value.get("resourceType") == "Questionnaire" and value.get("item"):
            if definition_for(value).expressions:
                found.append(str(path.relative_to(FIXTURES)))
    return found


FIXTURE_FORMS = _fixture_forms()
ALL_FORMS = [f"questionnaires/{slug}" for slug in INSTRUMENTS] + [f"fixtures/{name}" for name in FIXTURE_FORMS]


def form(name: str) -> Json:
    """A built-in instrument (``questionnaires/<slug>``) or a fixture form (``fixtures/<path>``)."""
    kind, _, rest = name.partition("/")
    return instrument(rest) if kind == "questionnaires" else fixture_form(rest)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def both_ways(run: Callable[[], Any]) -> tuple[Any, Any]:
    """(what ``run`` gives as the service runs it, what it gives with the interpreter only).

    Messages are compared as they are: they must not show memory addresses (which differ between the two
    runs and from one evaluation to the next).
    """

    def outcome() -> Any:
        try:
            found = run()
        except FhirPathError as exc:
            assert not _ADDRESS.search(str(exc)), str(exc)
            return ("error", str(exc))
        if isinstance(found, ScoringResult):
            for issue in found.issues:
                assert not _ADDRESS.search(issue.text), issue.text
        return ("value", found)

    fast = outcome()
    with interpreted():
        slow = outcome()
    return fast, slow


@pytest.fixture
def shape_outcomes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts how often the answer-weights shape gave a value and how often it declined."""
    counts = {"taken": 0, "declined": 0}
    original = shapes_module._answer_weights

    def counting(*args: Any) -> Any:
        found = original(*args)
        counts["declined" if found is None else "taken"] += 1
        return found

    monkeypatch.setattr(shapes_module, "_answer_weights", counting)
    return counts


# ---- random responses ----------------------------------------------------------------------------------

HUGE = 10**30  # more than repeat() can key: the interpreter fails on an item holding it


def _is_calculated(q_item: Mapping[str, Any]) -> bool:
    return any(extension.get("url") == CALCULATED for extension in q_item.get("extension", []))


def _values(option: Mapping[str, Any]) -> Json:
    return {key: copy.deepcopy(value) for key, value in option.items() if key.startswith("value")}


@st.composite
def answers(draw: Draw, q_item: Mapping[str, Any], options: list[Json], all_options: list[Json]) -> Any:
    """The answer list of a question: usually one offered option, sometimes something odd."""
    kind = draw(
        st.sampled_from(
            ["option"] * 12
            + ["other item's option", "unknown code", "no system", "own weight", "integer", "string", "two answers"]
            + ["empty", "not a list", "extension half", "two values", "huge", "null value", "no value", "nested"]
        )
    )
    if not options and q_item.get("type") in ("string", "text"):
        return [{"valueString": draw(st.sampled_from(["to sleep better", "", "x"]))}]
    option = _values(draw(st.sampled_from(options))) if options else {"valueInteger": 1}
    if kind == "option":
        return [option]
    if kind == "other item's option":
        return [_values(draw(st.sampled_from(all_options)))]
    if kind == "unknown code":
        return [{"valueCoding": {"system": "http://example.org/other", "code": "zz"}}]
    if kind == "no system" and "valueCoding" in option:
        option["valueCoding"].pop("system", None)
        return [option]
    if kind == "own weight":
        weight = draw(st.sampled_from([{"valueDecimal": 2.5}, {"valueInteger": 7}]))
        return [{**option, "extension": [{"url": ITEM_WEIGHT, **weight}]}]
    if kind == "integer":
        return [{"valueInteger": draw(st.integers(-3, 12))}]
    if kind == "string":
        return [{"valueString": "often"}]
    if kind == "two answers":
        return [option, _values(draw(st.sampled_from(options)))] if options else [option]
    if kind == "empty":
        return []
    if kind == "not a list":
        return option
    if kind == "extension half":
        return [{**option, "_valueCoding": {"extension": [{"url": ITEM_WEIGHT, "valueInteger": 3}]}}]
    if kind == "two values":
        return [{**option, "valueInteger": 2}]
    if kind == "huge":
        return [{"valueInteger": HUGE}]
    if kind == "null value":
        return [{"valueCoding": None}]
    if kind == "no value":
        return [{}]
    if kind == "nested":
        return [{**option, "item": [{"linkId": "nested", "answer": [{"valueInteger": 1}]}]}]
    return [option]


@st.composite
def submitted(draw: Draw) -> Any:
    """A submitted value for a calculated item (which the server recomputes)."""
    return draw(
        st.sampled_from(
            [
                [{"valueInteger": 7}],
                [{"valueInteger": 0}],
                [{"valueDecimal": 12.5}],
                [{"valueString": "high"}],
                [{"valueQuantity": {"value": 3}}],
                [{"valueInteger": HUGE}],
                [],
                [{"valueInteger": 1}, {"valueInteger": 2}],
            ]
        )
    )


@st.composite
def items(draw: Draw, q_items: list[Json], offered: Mapping[str, list[Json]], oddities: bool) -> list[Any]:
    all_options = [option for options in offered.values() for option in options] or [{"valueInteger": 1}]
    found: list[Any] = []
    for q_item in q_items:
        if q_item.get("type") == "display":
            continue
        if q_item.get("type") == "group":
            if draw(st.integers(0, 9)) < 8:
                children = draw(items(q_item.get("item", []), offered, oddities))
                found.append({"linkId": q_item["linkId"], "item": children})
            continue
        if _is_calculated(q_item):
            if draw(st.integers(0, 4)) == 0:
                found.append({"linkId": q_item["linkId"], "answer": draw(submitted())})
            continue
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        item: Json = {"linkId": q_item["linkId"]}
        if draw(st.booleans()):
            item["text"] = q_item.get("text", "")
        options = offered.get(q_item["linkId"], [])
        if oddities:
            item["answer"] = draw(answers(q_item, options, all_options))
        elif options:
            item["answer"] = [_values(draw(st.sampled_from(options)))]
        else:
            item["answer"] = [_plain_answer(q_item)]
        found.append(item)
    if oddities and found and draw(st.integers(0, 5)) == 0:
        odd = draw(
            st.sampled_from(["duplicate", "unknown", "linkId extension", "number linkId", "string", "resourceType"])
        )
        position = draw(st.integers(0, len(found) - 1))
        if odd == "duplicate":
            found.insert(position, copy.deepcopy(found[position]))
        elif odd == "unknown":
            found.insert(position, {"linkId": "not-in-the-form", "answer": [{"valueInteger": 1}]})
        elif odd == "linkId extension" and isinstance(found[position], dict):
            found[position]["_linkId"] = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
        elif odd == "number linkId":
            found.insert(position, {"linkId": 5, "answer": [{"valueInteger": 1}]})
        elif odd == "string":
            found.insert(position, "not an item")
        elif odd == "resourceType" and isinstance(found[position], dict):
            found[position]["resourceType"] = "Basic"
    return found


def _plain_answer(q_item: Mapping[str, Any]) -> Json:
    kind = q_item.get("type")
    if kind == "integer":
        return {"valueInteger": 3}
    if kind == "decimal":
        return {"valueDecimal": 72.5}
    if kind == "boolean":
        return {"valueBoolean": True}
    return {"valueString": "to sleep better"}


def _offered(questionnaire: Mapping[str, Any]) -> dict[str, list[Json]]:
    """The options of each choice item: its answerOption, or the codes of the contained value set it names."""
    value_sets: dict[str, list[Json]] = {}
    for resource in questionnaire.get("contained", []):
        if resource.get("resourceType") != "ValueSet":
            continue
        codings = list(resource.get("expansion", {}).get("contains", []))
        for include in resource.get("compose", {}).get("include", []):
            codings.extend({"system": include.get("system"), **concept} for concept in include.get("concept", []))
        options = [{"valueCoding": {k: c[k] for k in ("system", "code", "display") if c.get(k)}} for c in codings]
        value_sets["#" + str(resource.get("id"))] = options
        if resource.get("url"):
            value_sets[resource["url"]] = options
    offered: dict[str, list[Json]] = {}

    def collect(q_items: list[Json]) -> None:
        for q_item in q_items:
            options = q_item.get("answerOption") or value_sets.get(str(q_item.get("answerValueSet")), [])
            if options:
                offered[q_item["linkId"]] = options
            collect(q_item.get("item", []))

    collect(questionnaire["item"])
    return offered


@st.composite
def responses(draw: Draw, questionnaire: Json, oddities: bool = True) -> Json:
    response: Json = {"resourceType": "QuestionnaireResponse", "status": "completed"}
    response["item"] = draw(items(questionnaire["item"], _offered(questionnaire), oddities))
    return response


# ---- whole scoring, fast and interpreted -----------------------------------------------------------------


@pytest.mark.parametrize("slug", INSTRUMENTS)
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_scoring_is_the_same_as_interpreted(slug: str, data: st.DataObject) -> None:
    questionnaire = instrument(slug)
    response = data.draw(responses(questionnaire), label="response")
    fast, slow = both_ways(lambda: score_response(questionnaire, response))
    assert fast == slow


@pytest.mark.parametrize("name", FIXTURE_FORMS)
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_other_forms_score_the_same_as_interpreted(name: str, data: st.DataObject) -> None:
    questionnaire = fixture_form(name)
    response = data.draw(responses(questionnaire), label="response")
    fast, slow = both_ways(lambda: score_response(questionnaire, response))
    assert fast == slow


def _fhirpath_expressions(questionnaire: Json) -> list[ExpressionDef]:
    return [e for e in definition_for(questionnaire).expressions if e.language == FHIRPATH]


def every_expression(questionnaire: Json, response: Json) -> list[tuple[str, str, Any]]:
    """Every FHIRPath expression of the Questionnaire, evaluated wherever it applies: those of an item on
    each instance of the item (and once on an absent one), the others on the response; each with the
    variables in scope there. (place, expression, outcome) in order, failed variables included."""
    definition = definition_for(questionnaire)
    copy = json_copy(response)
    sdc = AnswerWeights(copy, definition.q_items, definition.contained, Terminology(()), options=definition.options)
    found: list[tuple[str, str, Any]] = []

    def report(expression: ExpressionDef, reason: str, item: Any) -> None:
        found.append((expression.path, "variable", ("error", reason)))

    scope = Scope(definition, copy, sdc, report)
    by_item: dict[str | None, list[ExpressionDef]] = {}
    for expression in _fhirpath_expressions(questionnaire):
        by_item.setdefault(expression.link_id, []).append(expression)
    for visit in scope.walk(include_absent=True):
        for expression in by_item.get(visit.item_def.link_id if visit.item_def else None, []):
            try:
                outcome: Any = ("value", _shown(scope.evaluate(expression, visit.focus, visit.env)))
            except FhirPathError as exc:
                outcome = ("error", str(exc))
            found.append((visit.location, expression.path, outcome))
    return found


def test_every_form_is_covered() -> None:
    """Each form's expressions all compile and are all evaluated by ``every_expression``."""
    assert len(FIXTURE_FORMS) >= 8
    for name in ALL_FORMS:
        questionnaire = form(name)
        expressions = _fhirpath_expressions(questionnaire)
        assert [e.error for e in expressions if e.compiled is None] == [], name
        response: Json = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": []}
        evaluated = {path for _, path, _ in every_expression(questionnaire, response)}
        assert evaluated == {e.path for e in expressions}, name


@pytest.mark.parametrize("name", ALL_FORMS)
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_expression_is_the_same_as_interpreted(name: str, data: st.DataObject) -> None:
    questionnaire = form(name)
    response = data.draw(responses(questionnaire), label="response")
    fast, slow = both_ways(lambda: every_expression(questionnaire, response))
    assert fast == slow


def test_a_null_coding_beside_a_linkid_extension_scores_the_same_as_interpreted() -> None:
    """Found by the differential test. ``_linkId`` makes ``linkId.startsWith()`` fail on two items; the
    engine's message showed them as ``<ResourceNode object at 0x..>``, so the failure read differently in
    every evaluation, and the issue the calculation and the safety-flag walk both report came out once or
    twice depending on where the nodes happened to sit in memory."""
    questionnaire = fixture_form("synthetic/reqol-style.json")
    items: list[Json] = []
    for q_item in questionnaire["item"]:
        if q_item["linkId"] != "reqol-total":
            items.append({"linkId": q_item["linkId"], "answer": [_values(q_item["answerOption"][1])]})
    items[9]["answer"] = [{"valueCoding": None}]
    items[0]["_linkId"] = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    response: Json = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}
    fast, slow = both_ways(lambda: score_response(questionnaire, response))
    assert fast == slow
    (issue,) = fast[1].issues
    assert "Expected string, but got [<ResourceNode>, <ResourceNode>]" in issue.text
    assert [score.value for score in fast[1].scores] == [None]


@pytest.mark.parametrize("slug", INSTRUMENTS)
def test_ordinary_responses_take_the_direct_shape(slug: str, shape_outcomes: dict[str, int]) -> None:
    """Without oddities every answer-weights expression is evaluated directly (and still agrees)."""
    questionnaire = instrument(slug)

    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        response = data.draw(responses(questionnaire, oddities=False), label="response")
        fast, slow = both_ways(lambda: score_response(questionnaire, response))
        assert fast == slow

    check()
    assert shape_outcomes["taken"] > 0
    assert shape_outcomes["declined"] == 0


def test_scoring_errors_are_the_same_as_interpreted() -> None:
    """A huge integer in a submitted score: repeat() cannot key the item, and both ways say so alike."""
    questionnaire = instrument("qpr-15")
    response: Json = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": "qpr-15-total", "answer": [{"valueInteger": HUGE}]}],
    }
    fast, slow = both_ways(lambda: score_response(questionnaire, response))
    assert fast == slow


# ---- single expressions, fast and interpreted ------------------------------------------------------------

FORM: Json = {
    "resourceType": "Questionnaire",
    "status": "draft",
    "item": [
        {
            "linkId": "g",
            "type": "group",
            "item": [
                {
                    "linkId": link_id,
                    "type": "choice",
                    "answerOption": [
                        *(
                            {
                                "valueCoding": {"system": "http://example.org/s", "code": str(n)},
                                "extension": [{"url": ITEM_WEIGHT, "valueDecimal": n / 2}],
                            }
                            for n in range(4)
                        ),
                        {"valueCoding": {"system": "http://example.org/s", "code": "unweighted"}},
                    ],
                }
                for link_id in ("a", "b", "c")
            ],
        },
        {"linkId": "n", "type": "integer", "repeats": True},
        {"linkId": "t", "type": "string"},
    ],
}


def _coding(code: str) -> Json:
    return {"valueCoding": {"system": "http://example.org/s", "code": code}}


RESPONSE: Json = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "item": [
        {
            "linkId": "g",
            "item": [
                {"linkId": "a", "answer": [_coding("1")]},
                {"linkId": "b", "answer": [_coding("3"), _coding("2")]},
                {"linkId": "c", "answer": [_coding("0")]},
            ],
        },
        {"linkId": "n", "answer": [{"valueInteger": 3}, {"valueDecimal": 4.5}, {"valueInteger": -2}]},
        {"linkId": "t", "answer": [{"valueString": "a"}]},
    ],
}

TERMS = [
    "1",
    "2.5",
    "0",
    "'a'",
    "true",
    "{}",
    "%w",
    "%d",
    "%none",
    "%nodes",
    "%resource",
    "$this",
    "$index",
    "linkId",
    "item",
    "answer.value",
    "%resource.repeat(item).where(linkId in ('a' | 'b')).answer.value.weight()",
    "%resource.item.where(linkId = 'n').answer.value.weight()",
    "%resource.repeat(item).where(linkId = 'b').answer.value.ordinal()",
    "%resource.repeat(item).answer.value",
    "@2024-01-01",
    "5 'mg'",
]
SUFFIXES = [
    ".count()",
    ".sum()",
    ".first()",
    ".last()",
    ".exists()",
    ".empty()",
    ".floor()",
    ".round(1)",
    ".round()",
    ".not()",
    ".distinct()",
    ".weight()",
    ".repeat(item)",
    "[0]",
    "[1]",
    ".toString()",
    ".ofType(Integer)",
    ".linkId",
]


def expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(SUFFIXES)).map("".join),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}.where({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}.select({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}.exists({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}.union({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}.round({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]}.combine({p[1]})"),
            st.tuples(inner, inner, inner).map(lambda p: f"iif({p[0]}, {p[1]}, {p[2]})"),
            st.tuples(inner, inner).map(lambda p: f"iif({p[0]}, {p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"coalesce({p[0]}, {p[1]})"),
            st.tuples(
                inner,
                st.sampled_from(
                    ["+", "-", "*", "/", "div", "mod", "=", "!=", "~", "<", ">=", "and", "or", "xor", "implies"]
                    + ["|", "in", "contains", "&", "is", "as"]
                ),
                inner,
            ).map(lambda p: f"({p[0]} {p[1]} {p[2]})" if p[1] not in ("is", "as") else f"({p[0]} {p[1]} Integer)"),
            inner.map(lambda e: f"-({e})"),
            inner.map(lambda e: f"({e})"),
        )

    return st.recursive(st.sampled_from(TERMS), extend, max_leaves=6)


def _shown(values: list[Any]) -> list[Any]:
    """A result's items in a form that compares everything: node type, location and data; value types."""
    shown = []
    for value in values:
        if isinstance(value, ResourceNode):
            shown.append(("node", value.path, value.propName, json.dumps(value.data, sort_keys=True, default=str)))
        elif isinstance(value, FP_Type):
            shown.append((type(value).__name__, str(value)))
        else:
            shown.append((type(value).__name__, repr(value)))
    return shown


def _evaluate_here(text: str, focus_index: int | None) -> Callable[[], list[Any]]:
    definition = definition_for(FORM)
    response = json_copy(RESPONSE)
    sdc = AnswerWeights(response, definition.q_items, definition.contained, Terminology(()))
    compiled = compile_expression(text)
    focus: Any = response
    if focus_index is not None:
        focus = item_node(response["item"][focus_index], f"QuestionnaireResponse.item[{focus_index}]")

    def run() -> list[Any]:
        with interpreted():  # the variables' values as the interpreter gives them (nodes included)
            nodes = evaluate(compile_expression("%resource.item"), response, {"resource": response}, sdc)
        env = {
            "resource": response,
            "questionnaire": definition.source,
            "w": [1, 2, Decimal("0.5")],
            "d": [Decimal("2.25")],
            "none": [],
            "nodes": nodes,
        }
        return _shown(evaluate(compiled, focus, env, sdc))

    return run


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=expressions(), focus_index=st.sampled_from([None, 0, 1]))
def test_expressions_are_the_same_as_interpreted(text: str, focus_index: int | None) -> None:
    try:
        compile_expression(text)
    except FhirPathError:
        return  # not FHIRPath: neither way evaluates it
    fast, slow = both_ways(_evaluate_here(text, focus_index))
    assert fast == slow, text


@pytest.mark.parametrize(
    "text",
    [
        # what the interpreter leaves in $this and $index is read by the next part of the expression
        "%resource.repeat(item).where(linkId = 'a').answer.value.weight().union(linkId)",
        "%resource.repeat(item).where(linkId = 'b').answer.value.weight().combine(item.linkId)",
        "%resource.repeat(item).where(linkId in ('a' | 'b')).answer.value.weight().select($index)",
        "(%resource.repeat(item).where(linkId = 'b').answer.value.weight() | $this).count()",
        "%resource.repeat(item).where(linkId = 'a').answer.value.weight().round(count())",
        "-%w + -%w",  # unary minus changes the variable's collection in place
        "%w[%w.count() - 2]",
        "%undefined + 1",
        "%resource.item.where(linkId = 'n').answer.value.weight().sum()",
        "(1 | 2 | 2 | 3).distinct().count()",
        "%resource.repeat(item).where(linkId = 'a').answer.value.weight().toString() & 'x'",
    ],
)
@pytest.mark.parametrize("focus_index", [None, 0])
def test_chosen_expressions_are_the_same_as_interpreted(text: str, focus_index: int | None) -> None:
    fast, slow = both_ways(_evaluate_here(text, focus_index))
    assert fast == slow


# ---- which shapes are recognised ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "%resource.repeat(item).where(linkId in ('a' | 'b' | 'c')).answer.value.weight()",
        "%resource.repeat(item).where(linkId in 'a').answer.value.weight()",
        "%resource.repeat(item).where(linkId = 'a').answer.value.ordinal()",
        "%resource.item.where(linkId = 'a').answer.value.weight()",
        "iif(%resource.repeat(item).where(linkId in ('a' | 'b')).answer.value.weight().count() = 2, 1, {})",
        "%resource.repeat(item).where(linkId='core-10-6').answer.value.weight() > 0",
        "%resource.item.where(linkId = 'a').answer.value.weight().union(%resource.item.answer)",
    ],
)
def test_answer_weight_shapes_are_recognised(text: str) -> None:
    plan = compile_expression(text).plan
    assert plan is not None
    assert plan.shapes == {"answer-weights"}
    assert plan.interpreted == set()


@pytest.mark.parametrize(
    "text",
    [
        "%resource.repeat(item).answer.value.weight()",  # no where()
        "%resource.repeat(item).where(linkId.startsWith('a')).answer.value.weight()",
        "%resource.repeat(item).where(linkId != 'a').answer.value.weight()",
        "%resource.repeat(item).where(linkId in %names).answer.value.weight()",
        "%resource.repeat(item).where(linkId in ('a' | 1)).answer.value.weight()",
        "%context.repeat(item).where(linkId = 'a').answer.value.weight()",
        "%resource.repeat(answer).where(linkId = 'a').answer.value.weight()",
        "%resource.repeat(item).where(linkId = 'a').answer.weight()",
        "%resource.repeat(item).where(linkId = 'a').answer.value.weight(1)",
        "%resource.repeat(item).where(linkId = 'a').answer.value",
        "%resource.answers().value.weight()",
        # something reads what the interpreter leaves in the context: no direct evaluation anywhere
        "%resource.item.where(linkId = 'a').answer.value.weight().union(item)",
        "%resource.item.where(linkId = 'a').answer.value.weight().where($index > 0)",
        "%resource.item.where(linkId = 'a').answer.value.weight() | $this",
    ],
)
def test_other_shapes_are_not(text: str) -> None:
    plan = compile_expression(text).plan
    assert plan is not None
    assert plan.shapes == set()


@pytest.mark.parametrize(
    ("text", "interpreted_types"),
    [
        ("iif(%a.count() >= 9, (%a.sum() * 10 / %a.count() + 0.5).floor(), {})", set()),
        ("%a.where($this > 2).select($this * 2)[0]", set()),
        ("-(%a.first()) is Integer", set()),
        ("@2024-01-01 + 1 day", {"DateTimeLiteral", "QuantityLiteral"}),  # made afresh by the interpreter
        ("coalesce(%a, 1)", set()),
        ("%a.trace('x')", set()),
        ("%a.trace('x', $this + 1)", set()),  # the projection is ignored, as the interpreter ignores it
        ("%a.`where`($this > 1)", {"FunctionInvocation"}),  # no such function: the interpreter says so
        ("%a.count(1)", {"FunctionInvocation"}),  # wrong number of arguments: the same
    ],
)
def test_what_the_interpreter_is_left(text: str, interpreted_types: set[str]) -> None:
    plan = compile_expression(text).plan
    assert plan is not None
    assert plan.interpreted == interpreted_types


def test_trees_too_deep_to_compile_are_refused() -> None:
    """A tree deeper than the limit is refused when it is compiled: every accepted one has its closures."""
    with pytest.raises(FhirPathError, match="nests more than"):
        compile_expression("(" * 120 + "1" + ")" * 120)
    compiled = compile_expression("(" * 40 + "1" + ")" * 40)
    assert compiled.plan is not None
    fast, slow = both_ways(lambda: evaluate(compiled, {}, {}, AnswerWeights({}, {}, Terminology(), Terminology())))
    assert fast == slow == ("value", [1])


@pytest.mark.parametrize("text", ["coalesce(%a.where($this > 1), 7)", "coalesce({}, %a.first(), 3)", "%a.trace('t')"])
def test_variadic_and_trace_calls_are_the_same_as_interpreted(text: str) -> None:
    compiled = compile_expression(text)
    sdc = AnswerWeights({}, {}, Terminology(), Terminology())
    fast, slow = both_ways(lambda: _shown(evaluate(compiled, {}, {"a": [1, 2, Decimal("3.5")]}, sdc)))
    assert fast == slow


class TestDeclines:
    """What the direct shape declines, the interpreter evaluates: the results are the same either way."""

    EXPRESSION = "%resource.repeat(item).where(linkId in ('a' | 'b')).answer.value.weight()"

    def _run(self, response: Json) -> tuple[Any, Any]:
        definition = definition_for(FORM)
        compiled = compile_expression(self.EXPRESSION)

        def run() -> list[Any]:
            copied = json_copy(response)
            sdc = AnswerWeights(copied, definition.q_items, definition.contained, Terminology(()))
            return _shown(evaluate(compiled, copied, {"resource": copied, "questionnaire": definition.source}, sdc))

        return both_ways(run)

    def _group(self, *children: Any) -> Json:
        return {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "g", "item": list(children)}]}

    @pytest.mark.parametrize(
        "response",
        [
            {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "a", "answer": [_coding("1")]}] * 2},
            {"resourceType": "QuestionnaireResponse", "item": {"linkId": "a", "answer": [_coding("1")]}},
            {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "a", "answer": _coding("1")}]},
            {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "a", "answer": [{"valueInteger": HUGE}]}]},
            {"resourceType": "QuestionnaireResponse", "item": [{"linkId": ["a"], "answer": [_coding("1")]}]},
            {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "a", "answer": [{"valueCoding": [{}]}]}]},
            {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "a", "answer": [{"value": 1}]}]},
            {"resourceType": "QuestionnaireResponse", "_item": [{"extension": []}]},
            {"item": [{"linkId": "a", "answer": [_coding("1")]}]},
        ],
    )
    def test_odd_responses(self, response: Json, shape_outcomes: dict[str, int]) -> None:
        fast, slow = self._run(response)
        assert fast == slow
        assert shape_outcomes["declined"] == 1

    def test_ordinary_response(self, shape_outcomes: dict[str, int]) -> None:
        fast, slow = self._run(self._group({"linkId": "b", "answer": [_coding("2")]}, {"linkId": "a"}))
        assert fast == slow == ("value", [("int", "1")])
        assert shape_outcomes == {"taken": 1, "declined": 0}

    def test_a_weight_error_is_the_same(self, shape_outcomes: dict[str, int]) -> None:
        # An option without a weight: its code system would have to be consulted, and is not at hand.
        fast, slow = self._run(self._group({"linkId": "a", "answer": [_coding("unweighted")]}))
        assert fast == slow
        assert fast[0] == "error" and "no weight for the answer to 'a'" in fast[1]
        assert shape_outcomes == {"taken": 0, "declined": 0}  # the error came out of the shape itself


# ---- the parts both ways share ---------------------------------------------------------------------------


def _reference_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _reference_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_reference_copy(item) for item in value]
    return value


def _typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out (so that 1, 1.0 and True differ)."""
    if isinstance(value, dict):
        return ("dict", type(value).__name__, [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, repr(value))


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.text(max_size=5),
        st.decimals(allow_nan=False).map(Decimal),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=json_values)
def test_json_copy_is_the_plain_recursive_copy(value: Any) -> None:
    assert _typed(json_copy(value)) == _typed(_reference_copy(value))


def test_a_questionnaire_changed_in_place_is_read_again() -> None:
    questionnaire = instrument("phq-2")
    answers: list[Json] = [
        {"linkId": link_id, "answer": [_values(q_item["answerOption"][3])]}
        for q_item in questionnaire["item"]
        if (link_id := q_item["linkId"]) in ("/44250-9", "/44255-8")
    ]
    response: Json = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": answers}
    assert [score.value for score in score_response(questionnaire, response).scores] == [6]
    for q_item in questionnaire["item"]:
        for option in q_item.get("answerOption", []):
            for extension in option.get("extension", []):
                if extension["url"] == ITEM_WEIGHT:
                    extension["valueDecimal"] = 10
    assert [score.value for score in score_response(questionnaire, response).scores] == [20]


# failures: the engine's are expression errors, the service's own are defects ----------------------------


def test_an_expression_the_engine_cannot_evaluate_is_an_expression_error() -> None:
    for mode in (False, True):
        run = _evaluate_here("%undefined + 1", None)
        if mode:
            with interpreted(), pytest.raises(FhirPathError, match="undefined environment variable"):
                run()
        else:
            with pytest.raises(FhirPathError, match="undefined environment variable"):
                run()


def test_a_defect_in_the_service_s_own_code_is_raised_not_reported_as_an_expression_error() -> None:
    """weight() is the service's own FHIRPath function; called without the answer weights it needs (a defect of the
    caller, not of the expression), its failure is the server's (a 500), never 'the expression failed'."""
    response = json_copy(RESPONSE)
    expression = compile_expression("%resource.item.answer.value.weight()")
    for mode in (False, True):
        with interpreted() if mode else contextlib.nullcontext(), pytest.raises(AttributeError):
            evaluate(expression, response, {"resource": response}, None)
