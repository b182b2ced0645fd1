"""enableWhen (operators, answer types, enableBehavior, nesting, chains, repeating groups) and the SDC
enableWhenExpression, plus questionnaire-constraint."""

from __future__ import annotations

from typing import Any

import pytest
from qr_builders import (
    JSON,
    SDC,
    answered,
    check,
    coding,
    errors,
    ext,
    ext_url,
    group,
    one_error,
    q_item,
    questionnaire,
    response,
    warnings,
)


def gated(trigger: JSON, *conditions: JSON, behaviour: str | None = None) -> JSON:
    """A trigger question, and 'd' enabled by the conditions."""
    dependent = q_item("d", "string", enableWhen=list(conditions))
    if behaviour:
        dependent["enableBehavior"] = behaviour
    return questionnaire(trigger, dependent)


def when(operator: str, **answer: Any) -> JSON:
    return {"question": "t", "operator": operator, **answer}


def is_enabled(q: JSON, *trigger_answers: JSON) -> bool:
    """Answer 'd' and see whether that is an answer to a disabled item."""
    items = [answered("t", *trigger_answers)] if trigger_answers else []
    issues = check(q, response(*items, answered("d", {"valueString": "x"})))
    disabled = [issue for issue in errors(issues) if "is not enabled" in issue.text]
    assert [issue for issue in errors(issues) if issue not in disabled] == [], issues
    return not disabled


QTY = {"system": "http://unitsofmeasure.org", "code": "kg", "unit": "kg"}
CASES = [
    ("boolean", {"valueBoolean": True}, "=", {"answerBoolean": True}, True),
    ("boolean", {"valueBoolean": False}, "=", {"answerBoolean": True}, False),
    ("boolean", {"valueBoolean": False}, "!=", {"answerBoolean": True}, True),
    ("integer", {"valueInteger": 3}, ">", {"answerInteger": 2}, True),
    ("integer", {"valueInteger": 2}, ">", {"answerInteger": 2}, False),
    ("integer", {"valueInteger": 2}, ">=", {"answerInteger": 2}, True),
    ("integer", {"valueInteger": 1}, "<", {"answerInteger": 2}, True),
    ("integer", {"valueInteger": 3}, "<=", {"answerInteger": 2}, False),
    ("decimal", {"valueDecimal": 2.5}, ">", {"answerDecimal": 2.25}, True),
    ("decimal", {"valueDecimal": 2}, "=", {"answerInteger": 2}, True),
    ("date", {"valueDate": "2001-05-01"}, ">", {"answerDate": "2000-01-01"}, True),
    ("date", {"valueDate": "1999-05-01"}, ">", {"answerDate": "2000-01-01"}, False),
    ("date", {"valueDate": "2000"}, "=", {"answerDate": "2000-01-01"}, False),
    (
        "dateTime",
        {"valueDateTime": "2020-01-01T10:00:00+02:00"},
        "<",
        {"answerDateTime": "2020-01-01T09:00:00Z"},
        True,
    ),
    ("time", {"valueTime": "11:11:12"}, ">", {"answerTime": "11:11:11"}, True),
    ("time", {"valueTime": "11:11:11"}, "<=", {"answerTime": "11:11:11"}, True),
    ("string", {"valueString": "b"}, ">", {"answerString": "a"}, True),
    ("string", {"valueString": "a"}, "=", {"answerString": "a"}, True),
    ("choice", {"valueCoding": coding("y")}, "=", {"answerCoding": coding("y")}, True),
    (
        "choice",
        {"valueCoding": coding("y")},
        "=",
        {"answerCoding": coding("y", system="http://other")},
        False,
    ),
    ("choice", {"valueCoding": coding("y", system=None)}, "=", {"answerCoding": coding("y")}, True),
    ("choice", {"valueCoding": coding("y")}, "!=", {"answerCoding": coding("n")}, True),
    ("choice", {"valueCoding": coding("y")}, ">", {"answerCoding": coding("n")}, False),
    ("choice", {"valueCoding": coding("2")}, "=", {"answerString": "2"}, True),
    ("choice", {"valueCoding": coding("2")}, "=", {"answerInteger": 2}, True),
    ("choice", {"valueCoding": coding("1.1")}, "<", {"answerDecimal": 2.1}, True),
    (
        "quantity",
        {"valueQuantity": {"value": 80, **QTY}},
        ">",
        {"answerQuantity": {"value": 70, **QTY}},
        True,
    ),
    (
        "quantity",
        {"valueQuantity": {"value": 80000, "system": "http://unitsofmeasure.org", "code": "g"}},
        "<",
        {"answerQuantity": {"value": 70, **QTY}},
        False,
    ),
    (
        "reference",
        {"valueReference": {"reference": "Patient/1"}},
        "=",
        {"answerReference": {"reference": "Patient/1"}},
        True,
    ),
    (
        "reference",
        {"valueReference": {"reference": "Patient/1"}},
        "!=",
        {"answerReference": {"reference": "Patient/1"}},
        False,
    ),
]


@pytest.mark.parametrize(("kind", "value", "operator", "expected", "enabled"), CASES)
def test_operators_and_answer_types(kind: str, value: JSON, operator: str, expected: JSON, enabled: bool) -> None:
    assert is_enabled(gated(q_item("t", kind), when(operator, **expected)), value) is enabled


@pytest.mark.parametrize(
    ("operator", "expected", "answers", "enabled"),
    [
        ("exists", True, [{"valueString": "x"}], True),
        ("exists", True, [], False),
        ("exists", False, [], True),
        ("exists", False, [{"valueString": "x"}], False),
    ],
)
def test_exists(operator: str, expected: bool, answers: list[JSON], enabled: bool) -> None:
    assert is_enabled(gated(q_item("t", "string"), when(operator, answerBoolean=expected)), *answers) is enabled


def test_not_equal_holds_when_no_answer_equals() -> None:
    q = gated(q_item("t", "integer", repeats=True), when("!=", answerInteger=3))
    assert is_enabled(q) is True
    assert is_enabled(q, {"valueInteger": 1}, {"valueInteger": 2}) is True
    assert is_enabled(q, {"valueInteger": 1}, {"valueInteger": 3}) is False


def test_any_answer_of_a_repeating_question_counts() -> None:
    q = gated(q_item("t", "integer", repeats=True), when("=", answerInteger=3))
    assert is_enabled(q, {"valueInteger": 1}, {"valueInteger": 3}) is True


def test_enable_behavior() -> None:
    both = [when("=", answerInteger=1), {"question": "u", "operator": "=", "answerInteger": 1}]
    for behaviour, expected in (("all", False), ("any", True)):
        q = gated(q_item("t", "integer"), *both, behaviour=behaviour)
        q["item"].insert(1, q_item("u", "integer"))
        r = response(
            answered("t", {"valueInteger": 1}),
            answered("u", {"valueInteger": 0}),
            answered("d", {"valueString": "x"}),
        )
        assert (errors(check(q, r)) == []) is expected


def test_several_conditions_without_behavior_are_read_as_any_with_a_warning() -> None:
    q = gated(q_item("t", "integer"), when("=", answerInteger=1), when("=", answerInteger=2))
    issues = check(q, response(answered("t", {"valueInteger": 2}), answered("d", {"valueString": "x"})))
    assert errors(issues) == [] and "que-12" in warnings(issues)[0].text


def test_disabled_items_are_never_required() -> None:
    q = questionnaire(
        q_item("t", "boolean"),
        q_item("d", "string", required=True, enableWhen=[when("=", answerBoolean=True)]),
    )
    assert errors(check(q, response(answered("t", {"valueBoolean": False})))) == []
    issue = one_error(check(q, response(answered("t", {"valueBoolean": True}))))
    assert (issue.code, issue.link_id) == ("required", "d")


def test_a_disabled_group_and_everything_in_it() -> None:
    q = questionnaire(
        q_item("t", "boolean"),
        q_item(
            "g",
            "group",
            enableWhen=[when("=", answerBoolean=True)],
            item=[q_item("a", "string", required=True)],
        ),
    )
    assert errors(check(q, response(answered("t", {"valueBoolean": False})))) == []
    issue = one_error(
        check(
            q,
            response(answered("t", {"valueBoolean": False}), group("g", answered("a", {"valueString": "x"}))),
        )
    )
    assert (issue.code, issue.expression, issue.link_id) == (
        "business-rule",
        "QuestionnaireResponse.item[1]",
        "g",
    )
    assert "is not enabled" in issue.text


def test_chained_conditions_ignore_answers_of_disabled_items() -> None:
    q = questionnaire(
        q_item("a", "boolean"),
        q_item("b", "string", enableWhen=[{"question": "a", "operator": "=", "answerBoolean": True}]),
        q_item("c", "string", enableWhen=[{"question": "b", "operator": "exists", "answerBoolean": True}]),
    )
    r = response(
        answered("a", {"valueBoolean": False}),
        answered("b", {"valueString": "x"}),
        answered("c", {"valueString": "y"}),
    )
    assert [issue.link_id for issue in errors(check(q, r))] == ["b", "c"]
    r["item"][0]["answer"][0]["valueBoolean"] = True
    assert errors(check(q, r)) == []


def test_conditions_on_questions_inside_another_group() -> None:
    q = questionnaire(
        q_item("g1", "group", item=[q_item("t", "boolean")]),
        q_item(
            "g2",
            "group",
            item=[
                q_item("d", "string", required=True, enableWhen=[when("=", answerBoolean=True)]),
                q_item("e", "string"),
            ],
        ),
    )
    for flag, expected in ((True, ["d"]), (False, [])):
        r = response(
            group("g1", answered("t", {"valueBoolean": flag})),
            group("g2", answered("e", {"valueString": "x"})),
        )
        assert [issue.link_id for issue in errors(check(q, r))] == expected


def test_repeating_groups_use_the_nearest_occurrence() -> None:
    q = questionnaire(
        q_item(
            "g",
            "group",
            repeats=True,
            item=[
                q_item("has", "boolean"),
                q_item(
                    "detail",
                    "string",
                    enableWhen=[{"question": "has", "operator": "=", "answerBoolean": True}],
                ),
            ],
        )
    )
    r = response(
        group("g", answered("has", {"valueBoolean": True}), answered("detail", {"valueString": "x"})),
        group("g", answered("has", {"valueBoolean": False}), answered("detail", {"valueString": "y"})),
    )
    issue = one_error(check(q, r))
    assert issue.expression == "QuestionnaireResponse.item[1].item[1]"


def test_child_of_a_question_conditioned_on_that_question() -> None:
    q = questionnaire(
        q_item(
            "smoker",
            "boolean",
            item=[
                q_item(
                    "packs",
                    "integer",
                    required=True,
                    enableWhen=[{"question": "smoker", "operator": "=", "answerBoolean": True}],
                )
            ],
        )
    )
    issue = one_error(check(q, response(answered("smoker", {"valueBoolean": True}))))
    assert (issue.link_id, issue.expression) == ("packs", "QuestionnaireResponse.item[0].answer[0]")
    assert errors(check(q, response(answered("smoker", {"valueBoolean": False})))) == []


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ({"question": "nope", "operator": "=", "answerBoolean": True}, "does not define"),
        ({"question": "t", "operator": "exists", "answerInteger": 1}, "que-7"),
        ({"question": "t", "operator": "~", "answerBoolean": True}, "unknown operator"),
        ({"question": "t", "operator": "="}, "exactly one answer[x]"),
        ({"question": "t", "operator": "=", "answerDate": "2020-01-01"}, "never compare equal"),
    ],
)
def test_questionnaire_mistakes_in_enable_when_are_warnings(condition: JSON, fragment: str) -> None:
    q = questionnaire(q_item("t", "boolean"), q_item("d", "string", required=True, enableWhen=[condition]))
    issues = check(q, response(answered("t", {"valueBoolean": True}), answered("d", {"valueString": "x"})))
    assert any(fragment in issue.text for issue in warnings(issues)), issues


def expression(text: str, language: str = "text/fhirpath") -> JSON:
    return ext(
        SDC + "sdc-questionnaire-enableWhenExpression",
        valueExpression={"language": language, "expression": text},
    )


def test_enable_when_expression() -> None:
    rule = "%resource.item.where(linkId='t').answer.value = true and %questionnaire.item.count() = 2"
    q = questionnaire(q_item("t", "boolean"), q_item("d", "string", required=True, extension=[expression(rule)]))
    assert one_error(check(q, response(answered("t", {"valueBoolean": True})))).link_id == "d"
    assert errors(check(q, response(answered("t", {"valueBoolean": False})))) == []
    assert one_error(check(q, response(answered("t", {"valueBoolean": False}), answered("d", {"valueString": "x"}))))


def test_enable_when_expression_sees_context_and_variables() -> None:
    q = questionnaire(
        q_item("t", "integer"),
        q_item("d", "string", extension=[expression("%context.answer.value.exists() and %limit > 2")]),
        extension=[
            ext(
                ext_url("variable"),
                valueExpression={
                    "name": "limit",
                    "language": "text/fhirpath",
                    "expression": "%resource.item.where(linkId='t').answer.value",
                },
            )
        ],
    )
    assert errors(check(q, response(answered("t", {"valueInteger": 3}), answered("d", {"valueString": "x"})))) == []
    assert one_error(check(q, response(answered("t", {"valueInteger": 1}), answered("d", {"valueString": "x"}))))


def weighted(code: str, weight: int) -> JSON:
    return {
        "valueCoding": coding(code),
        "extension": [ext(ext_url("itemWeight"), valueDecimal=weight)],
    }


WEIGHTED = q_item("t", "choice", answerOption=[weighted("none", 0), weighted("some", 1), weighted("all", 3)])


@pytest.mark.parametrize(
    "rule",
    [
        "%resource.item.where(linkId='t').answer.value.weight().sum() >= 3",
        "%resource.item.where(linkId='t').answer.ordinal() >= 3",
        "%resource.answers().weight().sum() >= 3",
    ],
)
def test_enable_when_expression_can_use_weight(rule: str) -> None:
    q = questionnaire(WEIGHTED, q_item("d", "string", required=True, extension=[expression(rule)]))
    assert one_error(check(q, response(answered("t", {"valueCoding": coding("all")})))).link_id == "d"
    assert check(q, response(answered("t", {"valueCoding": coding("some")}))) == []


def test_weight_in_a_variable_on_the_context_item() -> None:
    # Each occurrence of 't' in the repeating group is its own %context: a constraint on its weight.
    variable = ext(
        ext_url("variable"),
        valueExpression={"name": "score", "language": "text/fhirpath", "expression": "%context.answer.weight()"},
    )
    t = {**WEIGHTED, "extension": [variable, constraint("w1", "%score.sum() <= 1")]}
    q = questionnaire(q_item("g", "group", repeats=True, item=[t]))
    some = group("g", answered("t", {"valueCoding": coding("some")}))
    everything = group("g", answered("t", {"valueCoding": coding("all")}))
    assert check(q, response(some, some)) == []
    issue = one_error(check(q, response(some, everything)))
    assert "w1" in issue.text and issue.expression == "QuestionnaireResponse.item[1].item[0]"


def test_weight_without_a_weight_to_find_is_a_warning() -> None:
    rule = "%resource.item.where(linkId='t').answer.value.weight() > 0"
    q = questionnaire(
        q_item("t", "open-choice", answerValueSet="http://example.org/vs"),
        q_item("d", "string", required=True, extension=[expression(rule)]),
    )
    issues = check(q, response(answered("t", {"valueCoding": coding("x")})))
    assert errors(issues) == []
    assert any("enableWhenExpression" in issue.text and "weight()" in issue.text for issue in warnings(issues)), issues


@pytest.mark.parametrize(
    ("rule", "language", "fragment"),
    [
        ("%undefined = 1", "text/fhirpath", "failed"),
        ("item.where(", "text/fhirpath", "cannot be parsed"),
        ("%resource.item.linkId", "text/fhirpath", "instead of a boolean"),
        ("true", "text/cql", "only text/fhirpath"),
    ],
)
def test_enable_when_expression_problems_are_issues(rule: str, language: str, fragment: str) -> None:
    q = questionnaire(
        q_item("t", "boolean"), q_item("d", "string", required=True, extension=[expression(rule, language)])
    )
    issues = check(q, response(answered("t", {"valueBoolean": True})))
    assert any(fragment in issue.text for issue in warnings(issues)), issues


def test_enable_when_cycle_does_not_loop() -> None:
    q = questionnaire(
        q_item("a", "string", enableWhen=[{"question": "b", "operator": "exists", "answerBoolean": True}]),
        q_item("b", "string", enableWhen=[{"question": "a", "operator": "exists", "answerBoolean": True}]),
    )
    issues = check(q, response(answered("a", {"valueString": "x"}), answered("b", {"valueString": "y"})))
    assert errors(issues) == [] and any("depend on themselves" in issue.text for issue in warnings(issues))


def constraint(key: str, rule: str, severity: str = "error") -> JSON:
    return ext(
        ext_url("questionnaire-constraint"),
        extension=[
            {"url": "key", "valueId": key},
            {"url": "severity", "valueCode": severity},
            {"url": "expression", "valueString": rule},
            {"url": "human", "valueString": f"rule {key}"},
        ],
    )


def test_questionnaire_constraints() -> None:
    q = questionnaire(
        q_item(
            "q1",
            "string",
            repeats=True,
            extension=[
                constraint("k1", "answer.count() <= 2"),
                constraint("k2", "answer.count() = 1", "warning"),
            ],
        )
    )
    assert check(q, response(answered("q1", {"valueString": "a"}))) == []
    issues = check(q, response(answered("q1", {"valueString": "a"}, {"valueString": "b"}, {"valueString": "c"})))
    assert [(issue.severity, issue.code, issue.link_id) for issue in issues] == [
        ("error", "invariant", "q1"),
        ("warning", "invariant", "q1"),
    ]
    root = questionnaire(q_item("q1", "string"), extension=[constraint("r1", "item.exists()")])
    assert "rule r1" in one_error(check(root, response())).text
