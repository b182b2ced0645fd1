"""Shape rules: linkIds, placement, order, nesting, repetition, cardinality, required items and status."""

from __future__ import annotations

import pytest
from qr_builders import (
    answered,
    check,
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

STRING_Q = questionnaire(q_item("q1", "string", text="Your name"))


def test_a_matching_response_has_no_issues() -> None:
    assert check(STRING_Q, response(answered("q1", {"valueString": "Ann"}, text="Your name"))) == []


def test_unknown_link_id_is_reported_where_it_is() -> None:
    issue = one_error(check(STRING_Q, response(answered("q2", {"valueString": "x"}))))
    assert (issue.code, issue.expression, issue.link_id) == (
        "not-found",
        "QuestionnaireResponse.item[0]",
        "q2",
    )
    assert "'q2' is not defined in the Questionnaire" in issue.text


def test_unknown_link_id_inside_a_group_names_the_group() -> None:
    q = questionnaire(q_item("g", "group", text="About you", item=[q_item("a", "string")]))
    issue = one_error(
        check(q, response(group("g", answered("a", {"valueString": "x"}), answered("zz", {"valueString": "y"}))))
    )
    assert issue.expression == "QuestionnaireResponse.item[0].item[1]"
    assert "under item 'g' (About you)" in issue.text


def test_item_defined_elsewhere_in_the_hierarchy_is_misplaced() -> None:
    q = questionnaire(q_item("g", "group", item=[q_item("a", "string")]), q_item("b", "string"))
    issues = check(q, response(answered("a", {"valueString": "x"}), answered("b", {"valueString": "y"})))
    issue = one_error(issues)
    assert issue.code == "structure" and issue.expression == "QuestionnaireResponse.item[0]"
    assert "wrong place" in issue.text and "under item 'g'" in issue.text


def test_items_out_of_questionnaire_order() -> None:
    q = questionnaire(q_item("a", "string"), q_item("b", "string"))
    issue = one_error(check(q, response(answered("b", {"valueString": "y"}), answered("a", {"valueString": "x"}))))
    assert issue.code == "structure" and issue.link_id == "a" and "out of order" in issue.text


def test_group_content_must_be_in_item_not_answer() -> None:
    q = questionnaire(q_item("g", "group", item=[q_item("a", "string")]))
    r = response({"linkId": "g", "answer": [{"item": [answered("a", {"valueString": "x"})]}]})
    issue = one_error(check(q, r))
    assert issue.code == "structure" and "is a group" in issue.text


def test_question_children_must_be_in_answer_item() -> None:
    q = questionnaire(q_item("a", "boolean", item=[q_item("a1", "string")]))
    wrong = response({"linkId": "a", "item": [answered("a1", {"valueString": "x"})]})
    issue = one_error(check(q, wrong))
    assert "answer.item, not item" in issue.text
    right = response(
        {"linkId": "a", "answer": [{"valueBoolean": True, "item": [answered("a1", {"valueString": "x"})]}]}
    )
    assert errors(check(q, right)) == []


def test_qrs_1_item_and_answer_together() -> None:
    q = questionnaire(q_item("a", "boolean", item=[q_item("a1", "string")]))
    r = response({"linkId": "a", "answer": [{"valueBoolean": True}], "item": [answered("a1", {"valueString": "x"})]})
    issue = one_error(check(q, r))
    assert issue.code == "invariant" and "Nested item can't be beneath both item and answer" in issue.text


def test_display_items_take_no_answers_but_may_be_echoed() -> None:
    q = questionnaire(q_item("d", "display", text="Read this"))
    assert check(q, response({"linkId": "d", "text": "Read this"})) == []
    issue = one_error(check(q, response(answered("d", {"valueString": "x"}))))
    assert issue.code == "structure" and "display" in issue.text


def test_qrs_2_one_question_one_item() -> None:
    q = questionnaire(q_item("a", "string", repeats=True))
    issue = one_error(check(q, response(answered("a", {"valueString": "x"}), answered("a", {"valueString": "y"}))))
    assert issue.code == "invariant" and issue.expression == "QuestionnaireResponse.item[1]"
    assert "qrs-2" in issue.text


def test_repeating_groups_repeat_and_others_do_not() -> None:
    inner = [q_item("a", "string")]
    twice = response(group("g", answered("a", {"valueString": "x"})), group("g", answered("a", {"valueString": "y"})))
    assert errors(check(questionnaire(q_item("g", "group", repeats=True, item=inner)), twice)) == []
    issue = one_error(check(questionnaire(q_item("g", "group", item=inner)), twice))
    assert issue.expression == "QuestionnaireResponse.item[1]" and "does not repeat" in issue.text


def test_item_with_only_a_link_id_counts_as_absent() -> None:
    assert check(STRING_Q, response({"linkId": "q1"})) == []
    required = questionnaire(q_item("q1", "string", required=True))
    issue = one_error(check(required, response({"linkId": "q1"})))
    assert (issue.code, issue.expression) == ("required", "QuestionnaireResponse.item[0]")


def test_required_answer_message_names_the_item() -> None:
    q = questionnaire(
        q_item(
            "9",
            "choice",
            required=True,
            text="Thoughts that you would be better off dead, or of hurting yourself",
        )
    )
    issue = one_error(check(q, response()))
    assert issue.text == "Item '9' (Thoughts that you would be better off dead...) requires an answer"
    assert (issue.expression, issue.link_id) == ("QuestionnaireResponse", "9")


@pytest.mark.parametrize(
    ("status", "severity"),
    [
        ("completed", "error"),
        ("amended", "error"),
        ("in-progress", "warning"),
        ("stopped", None),
        ("entered-in-error", None),
    ],
)
def test_missing_required_answer_depends_on_status(status: str, severity: str | None) -> None:
    q = questionnaire(q_item("q1", "string", required=True))
    issues = check(q, response(status=status))
    assert [issue.severity for issue in issues] == ([severity] if severity else [])


@pytest.mark.parametrize(
    ("status", "severity"), [("completed", "error"), ("in-progress", "warning"), ("stopped", "warning")]
)
def test_too_many_answers_depends_on_status(status: str, severity: str) -> None:
    issues = check(STRING_Q, response(answered("q1", {"valueString": "a"}, {"valueString": "b"}), status=status))
    assert [(issue.severity, issue.code) for issue in issues] == [(severity, "structure")]


def test_min_and_max_occurs() -> None:
    q = questionnaire(
        q_item(
            "q1",
            "string",
            repeats=True,
            extension=[
                ext(ext_url("questionnaire-minOccurs"), valueInteger=2),
                ext(ext_url("questionnaire-maxOccurs"), valueInteger=3),
            ],
        )
    )
    assert "at least 2 answers; it has 1" in one_error(check(q, response(answered("q1", {"valueString": "a"})))).text
    many = [{"valueString": text} for text in "abcd"]
    assert "at most 3 answers; it has 4" in one_error(check(q, response(answered("q1", *many)))).text
    assert errors(check(q, response(answered("q1", *many[:3])))) == []


def test_required_group_needs_an_answer_somewhere_inside() -> None:
    q = questionnaire(q_item("g", "group", required=True, item=[q_item("a", "string")]))
    assert "Group 'g' is required" in one_error(check(q, response())).text
    assert errors(check(q, response(group("g", answered("a", {"valueString": "x"}))))) == []


def test_required_children_of_an_optional_group_only_when_it_is_there() -> None:
    q = questionnaire(
        q_item("g", "group", item=[q_item("a", "string", required=True), q_item("b", "string")]),
        q_item("c", "string"),
    )
    assert errors(check(q, response(answered("c", {"valueString": "x"})))) == []
    issue = one_error(check(q, response(group("g", answered("b", {"valueString": "x"})))))
    assert (issue.link_id, issue.expression) == ("a", "QuestionnaireResponse.item[0]")


def test_repeating_group_min_occurs_counts_repetitions() -> None:
    q = questionnaire(
        q_item(
            "g",
            "group",
            repeats=True,
            item=[q_item("a", "string")],
            extension=[ext(ext_url("questionnaire-minOccurs"), valueInteger=2)],
        )
    )
    issue = one_error(check(q, response(group("g", answered("a", {"valueString": "x"})))))
    assert "at least 2 times" in issue.text


def test_required_children_of_each_answer() -> None:
    q = questionnaire(q_item("a", "boolean", item=[q_item("why", "string", required=True)]))
    issue = one_error(check(q, response(answered("a", {"valueBoolean": True}))))
    assert (issue.link_id, issue.expression) == ("why", "QuestionnaireResponse.item[0].answer[0]")


def test_item_text_different_from_the_questionnaire_is_a_warning() -> None:
    assert check(STRING_Q, response(answered("q1", {"valueString": "A"}, text="  Your\nname "))) == []
    issues = check(STRING_Q, response(answered("q1", {"valueString": "A"}, text="Your age")))
    assert [(issue.severity, issue.link_id) for issue in issues] == [("warning", "q1")]
    assert "'Your age'" in issues[0].text and "'Your name'" in issues[0].text


def test_answer_without_a_value_and_with_two_values() -> None:
    issues = check(STRING_Q, response({"linkId": "q1", "answer": [{}]}))
    assert "ele-1" in one_error(issues).text
    issues = check(
        STRING_Q, response({"linkId": "q1", "answer": [{"extension": [{"url": "x", "valueCode": "asked-declined"}]}]})
    )
    assert errors(issues) == [] and "has no value" in warnings(issues)[0].text
    issues = check(STRING_Q, response({"linkId": "q1", "answer": [{"valueString": "a", "valueInteger": 1}]}))
    assert "several values" in one_error(issues).text


def test_item_without_link_id() -> None:
    issue = one_error(check(STRING_Q, response({"answer": [{"valueString": "a"}]})))
    assert issue.code == "required" and issue.expression == "QuestionnaireResponse.item[0]"


def test_invalid_response_status_is_checked_as_completed() -> None:
    q = questionnaire(q_item("q1", "string", required=True))
    issues = check(q, response(status="draft"))
    assert sorted(issue.expression or "" for issue in errors(issues)) == [
        "QuestionnaireResponse",
        "QuestionnaireResponse.status",
    ]


def test_read_only_items_may_carry_answers() -> None:
    q = questionnaire(q_item("total", "integer", readOnly=True))
    assert check(q, response(answered("total", {"valueInteger": 12}))) == []


def test_abstract_and_unknown_item_types_cannot_be_answered() -> None:
    for kind in ("question", "coding", None):
        item = {"linkId": "q1", "type": kind} if kind else {"linkId": "q1"}
        issue = one_error(check(questionnaire(item), response(answered("q1", {"valueString": "a"}))))
        assert issue.code == "not-supported"


def test_non_list_items_and_answers_are_structure_errors() -> None:
    issues = check(STRING_Q, response(item={"linkId": "q1"}))
    assert [issue.expression for issue in errors(issues)] == ["QuestionnaireResponse.item"]
    issues = check(STRING_Q, response({"linkId": "q1", "answer": ["a"]}))
    assert any(issue.expression == "QuestionnaireResponse.item[0].answer[0]" for issue in errors(issues))


def test_warnings_are_not_errors() -> None:
    q = questionnaire(q_item("q1", "string"), status="draft")
    issues = check(q, response(answered("q1", {"valueString": "a"})))
    assert errors(issues) == [] and len(warnings(issues)) == 1
