"""Answer lists: answerOption of every type, optionExclusive, displays, and answerValueSet resolution."""

from __future__ import annotations

from typing import Any

import pytest
from qr_builders import (
    JSON,
    answered,
    check,
    coding,
    errors,
    ext,
    ext_url,
    one_error,
    q_item,
    questionnaire,
    response,
    warnings,
)

OPTIONS = [
    {"valueCoding": coding("0", display="Not at all")},
    {
        "valueCoding": {
            **coding("1", display="Several days"),
            "_display": {
                "extension": [
                    {
                        "url": ext_url("translation"),
                        "extension": [
                            {"url": "lang", "valueCode": "fr"},
                            {"url": "content", "valueString": "Plusieurs jours"},
                        ],
                    }
                ]
            },
        }
    },
]
CHOICE = questionnaire(q_item("q1", "choice", answerOption=OPTIONS))


@pytest.mark.parametrize(
    "value",
    [
        coding("0"),
        coding("0", display="Not at all"),
        coding("0", display="  not AT all "),
        coding("0", system=None),
        coding("1", display="Plusieurs jours"),
    ],
)
def test_coding_in_the_options(value: JSON) -> None:
    assert check(CHOICE, response(answered("q1", {"valueCoding": value}))) == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (coding("2"), "is not one of its answer options"),
        (coding("0", system="http://other.org"), "is not one of its answer options"),
        (
            coding("0", display="Several days"),
            "has the display 'Several days'; the code's display is 'Not at all'",
        ),
        ({"display": "Not at all"}, "has no code"),
    ],
)
def test_coding_not_in_the_options(value: JSON, fragment: str) -> None:
    issue = one_error(check(CHOICE, response(answered("q1", {"valueCoding": value}))))
    assert issue.expression == "QuestionnaireResponse.item[0].answer[0].valueCoding" and fragment in issue.text


@pytest.mark.parametrize(
    ("kind", "offered", "good", "bad"),
    [
        ("integer", {"valueInteger": 1}, {"valueInteger": 1}, {"valueInteger": 2}),
        ("date", {"valueDate": "2022-01-01"}, {"valueDate": "2022-01-01"}, {"valueDate": "2022-01-02"}),
        ("time", {"valueTime": "10:00:00"}, {"valueTime": "10:00:00"}, {"valueTime": "11:00:00"}),
        ("string", {"valueString": "red"}, {"valueString": "red"}, {"valueString": "Red"}),
        ("choice", {"valueString": "red"}, {"valueString": "red"}, {"valueString": "blue"}),
        ("choice", {"valueInteger": 3}, {"valueInteger": 3}, {"valueInteger": 4}),
        (
            "reference",
            {"valueReference": {"reference": "Practitioner/1"}},
            {"valueReference": {"reference": "Practitioner/1"}},
            {"valueReference": {"reference": "Practitioner/2"}},
        ),
    ],
)
def test_options_of_other_types(kind: str, offered: JSON, good: JSON, bad: JSON) -> None:
    q = questionnaire(q_item("q1", kind, answerOption=[offered]))
    assert check(q, response(answered("q1", good))) == []
    assert one_error(check(q, response(answered("q1", bad)))).code == "code-invalid"


def test_open_choice_takes_free_text_but_not_unknown_codes() -> None:
    q = questionnaire(q_item("q1", "open-choice", answerOption=OPTIONS))
    assert check(q, response(answered("q1", {"valueString": "Most days"}))) == []
    assert check(q, response(answered("q1", {"valueCoding": {"display": "Most days"}}))) == []
    assert one_error(check(q, response(answered("q1", {"valueCoding": coding("9")})))).code == "code-invalid"


def test_option_exclusive() -> None:
    none_of_these = {
        "valueCoding": coding("none"),
        "extension": [ext(ext_url("questionnaire-optionExclusive"), valueBoolean=True)],
    }
    q = questionnaire(q_item("q1", "choice", repeats=True, answerOption=[*OPTIONS, none_of_these]))
    assert check(q, response(answered("q1", {"valueCoding": coding("none")}))) == []
    assert check(q, response(answered("q1", {"valueCoding": coding("0")}, {"valueCoding": coding("1")}))) == []
    issue = one_error(check(q, response(answered("q1", {"valueCoding": coding("0")}, {"valueCoding": coding("none")}))))
    assert issue.code == "business-rule" and "optionExclusive" in issue.text


def value_set(vs_id: str, **content: Any) -> JSON:
    return {
        "resourceType": "ValueSet",
        "id": vs_id,
        "url": f"http://example.org/ValueSet/{vs_id}",
        "status": "active",
        **content,
    }


EXPANDED = value_set(
    "expanded",
    expansion={
        "contains": [
            {"system": "http://example.org/codes", "code": "a", "display": "Alpha"},
            {
                "abstract": True,
                "code": "heading",
                "contains": [{"system": "http://example.org/codes", "code": "b"}],
            },
        ]
    },
)
COMPOSED = value_set(
    "composed",
    compose={
        "include": [
            {
                "system": "http://example.org/codes",
                "concept": [{"code": "a", "display": "Alpha"}, {"code": "c"}],
            }
        ],
        "exclude": [{"system": "http://example.org/codes", "concept": [{"code": "c"}]}],
    },
)


def with_value_set(reference: str, *contained: JSON, kind: str = "choice", repeats: bool = False) -> JSON:
    q = questionnaire(q_item("q1", kind, answerValueSet=reference, repeats=repeats))
    q["contained"] = list(contained)
    return q


@pytest.mark.parametrize(
    "q",
    [
        with_value_set("#expanded", EXPANDED),
        with_value_set("#composed", COMPOSED),
        with_value_set("http://example.org/ValueSet/composed", COMPOSED),
        with_value_set("http://example.org/ValueSet/expanded|1", {**EXPANDED, "version": "1"}),
    ],
)
def test_contained_value_sets(q: JSON) -> None:
    assert check(q, response(answered("q1", {"valueCoding": coding("a", display="alpha")}))) == []
    assert check(q, response(answered("q1", {"valueCoding": coding("a", system=None)}))) == []
    issue = one_error(check(q, response(answered("q1", {"valueCoding": coding("z")}))))
    assert issue.code == "code-invalid" and "answer value set" in issue.text


def test_abstract_and_excluded_concepts_are_not_answers() -> None:
    expanded = with_value_set("#expanded", EXPANDED)
    assert check(expanded, response(answered("q1", {"valueCoding": coding("b")}))) == []
    assert one_error(check(expanded, response(answered("q1", {"valueCoding": coding("heading", system=None)}))))
    composed = with_value_set("#composed", COMPOSED)
    assert one_error(check(composed, response(answered("q1", {"valueCoding": coding("c")}))))


def test_resolver_is_asked_for_other_value_sets_once() -> None:
    asked: list[str] = []

    def resolver(url: str) -> JSON | None:
        asked.append(url)
        return COMPOSED if url == "http://example.org/ValueSet/composed|2" else None

    q = questionnaire(
        q_item("q1", "choice", answerValueSet="http://example.org/ValueSet/composed|2"),
        q_item("q2", "choice", answerValueSet="http://example.org/ValueSet/composed|2"),
    )
    r = response(answered("q1", {"valueCoding": coding("a")}), answered("q2", {"valueCoding": coding("x")}))
    assert [issue.link_id for issue in check(q, r, value_sets=resolver)] == ["q2"]
    assert asked == ["http://example.org/ValueSet/composed|2"]


@pytest.mark.parametrize("resolver", [None, lambda url: None, lambda url: {"resourceType": "CodeSystem"}])
def test_value_set_that_cannot_be_had_is_a_warning(resolver: Any) -> None:
    q = with_value_set("http://example.org/ValueSet/missing", repeats=True)
    issues = check(q, response(answered("q1", {"valueCoding": coding("a")}, {"valueCoding": coding("b")})), resolver)
    assert [(issue.severity, issue.code) for issue in issues] == [("warning", "not-supported")]


def test_a_failing_value_set_look_up_is_not_turned_into_a_verdict() -> None:
    """The resolver failing (e.g. the database down) is the server's failure, never a warning about the response."""

    def failing(url: str) -> Any:
        raise ConnectionError("terminology store unreachable")

    q = with_value_set("http://example.org/ValueSet/missing", repeats=True)
    with pytest.raises(ConnectionError):
        check(q, response(answered("q1", {"valueCoding": coding("a")})), failing)


def test_value_set_that_cannot_be_listed_entirely() -> None:
    partial = value_set(
        "partial",
        compose={
            "include": [
                {"system": "http://example.org/codes", "concept": [{"code": "a"}]},
                {
                    "system": "http://snomed.info/sct",
                    "filter": [{"property": "concept", "op": "is-a", "value": "1"}],
                },
            ]
        },
    )
    q = with_value_set("#partial", partial)
    assert check(q, response(answered("q1", {"valueCoding": coding("a")}))) == []
    issues = check(q, response(answered("q1", {"valueCoding": coding("12345", system="http://snomed.info/sct")})))
    assert errors(issues) == [] and "by filter" in warnings(issues)[0].text


def test_value_set_of_a_whole_contained_code_system_and_nested_value_sets() -> None:
    code_system = {
        "resourceType": "CodeSystem",
        "url": "http://example.org/cs",
        "status": "active",
        "content": "complete",
        "concept": [{"code": "top", "concept": [{"code": "child", "display": "Child"}]}],
    }
    whole = value_set("whole", compose={"include": [{"system": "http://example.org/cs"}]})
    outer = value_set("outer", compose={"include": [{"valueSet": ["http://example.org/ValueSet/whole"]}]})
    q = with_value_set("#outer", code_system, whole, outer)
    assert check(q, response(answered("q1", {"valueCoding": coding("child", system="http://example.org/cs")}))) == []
    assert one_error(
        check(q, response(answered("q1", {"valueCoding": coding("other", system="http://example.org/cs")})))
    )


def test_text_answer_to_a_value_set_must_be_a_display() -> None:
    q = with_value_set("#expanded", EXPANDED, kind="string")
    assert check(q, response(answered("q1", {"valueString": "Alpha"}))) == []
    assert "not the display" in one_error(check(q, response(answered("q1", {"valueString": "a"})))).text
    open_choice = with_value_set("#expanded", EXPANDED, kind="open-choice")
    assert check(open_choice, response(answered("q1", {"valueString": "anything"}))) == []
