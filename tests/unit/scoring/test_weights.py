"""weight()/ordinal(): every lookup path, with the weights fhirpath.js finds for its own fixtures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.scoring import FhirPathError, evaluate_expression, score_response

WEIGHT = "http://hl7.org/fhir/StructureDefinition/itemWeight"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
Load = Callable[[str], dict[str, Any]]


def weight_ext(value: float, url: str = WEIGHT) -> list[dict[str, Any]]:
    return [{"url": url, "valueDecimal": value}]


def one_item_form(item: dict[str, Any], contained: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    form = {"resourceType": "Questionnaire", "status": "draft", "item": [{"linkId": "q", "type": "choice", **item}]}
    if contained:
        form["contained"] = contained
    return form


def answered(*answers: dict[str, Any], contained: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": "q", "answer": list(answers)}],
    }
    if contained:
        response["contained"] = contained
    return response


EVERY_VALUE = "%resource.repeat(item).answer.value.weight()"

# What fhirpath.js resolves for its weight-examples fixture (its browser test sums them to 65432211).
FHIRPATH_JS_WEIGHTS = {
    "link-1.1.1": 1,  # embedded in the response's Coding, which wins over the ValueSet's 2
    "link-1.1.2": 10,  # contained ValueSet, compose.include.concept
    "link-1.1.3": 200,  # Coding answerOption
    "link-1.1.4": 2000,  # string answerOption
    "link-1.1.5": 30000,  # CodeSystem contained in the Questionnaire
    "link-1.1.6": 400000,  # CodeSystem contained in the response
    "link-1.1.7": 60000000,  # primitive extension (_valueInteger) in the response wins over the option
    "link-1.1.8": 5000000,  # integer answerOption
}


class TestFhirpathJsFixture:
    @pytest.fixture
    def forms(self, fixture: Load) -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            fixture("fhirpath-js/weight-questionnaire-R4.json"),
            fixture("fhirpath-js/weight-questionnaire-response-R4.json"),
        )

    @pytest.mark.parametrize(("link_id", "weight"), FHIRPATH_JS_WEIGHTS.items())
    @pytest.mark.parametrize("path", ["answer.value", "answer"])
    def test_each_lookup_path(self, forms: Any, link_id: str, weight: int, path: str) -> None:
        questionnaire, response = forms
        expression = f"%resource.repeat(item).where(linkId = '{link_id}').{path}.weight()"
        assert evaluate_expression(questionnaire, response, expression) == [weight]

    @pytest.mark.parametrize("function", ["weight", "ordinal"])
    def test_sum_matches_fhirpath_js(self, forms: Any, function: str) -> None:
        questionnaire, response = forms
        expression = f"%resource.repeat(item).answer.{function}().sum()"
        assert evaluate_expression(questionnaire, response, expression) == [65432211]

    def test_the_inputs_are_not_modified(self, forms: Any, fixture: Load) -> None:
        questionnaire, response = forms
        evaluate_expression(questionnaire, response, "%resource.repeat(item).answer.weight().sum()")
        assert questionnaire == fixture("fhirpath-js/weight-questionnaire-R4.json")
        assert response == fixture("fhirpath-js/weight-questionnaire-response-R4.json")


def test_us_core_phq9_weights_sum_to_12(fixture: Load) -> None:
    questionnaire = fixture("us-core/Questionnaire-phq-9-example.json")
    response = fixture("us-core/QuestionnaireResponse-phq-9-example.json")
    nine = "%resource.item.where(linkId != '/69722-7').answer.value.weight()"
    assert evaluate_expression(questionnaire, response, nine) == [2, 2, 2, 2, 1, 1, 2, 0, 0]
    assert evaluate_expression(questionnaire, response, nine + ".sum()") == [12]


def test_a_coded_answer_without_any_weight_needs_a_terminology_server(fixture: Load) -> None:
    # /69722-7 (difficulty) has no weights: like fhirpath.js without a terminology server, this fails.
    questionnaire = fixture("us-core/Questionnaire-phq-9-example.json")
    response = fixture("us-core/QuestionnaireResponse-phq-9-example.json")
    with pytest.raises(FhirPathError, match="terminology"):
        evaluate_expression(questionnaire, response, EVERY_VALUE)


def test_sdc3_answers_and_ordinal_with_codings_without_system(fixture: Load) -> None:
    questionnaire = fixture("sdc/questionnaire-sdc-profile-example-PHQ9.json")
    response = fixture("sdc/questionnaireresponse-sdc-profile-example-PHQ9.json")
    assert evaluate_expression(questionnaire, response, "%resource.answers().value.ordinal()") == [
        0, 0, 0, 1, 2, 1, 3, 2, 1
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second", "total"),
    [
        # the choices LHC-Forms' own test makes for this form, and the totals it expects
        (("some-code-1", "some-system-2"), ("some-code-2", "some-system-1"), 12),
        (("some-code-1", "some-system-1"), ("some-code-2", "some-system-2"), 21),
    ],
)
def test_contained_value_set_expansion(fixture: Load, first: Any, second: Any, total: int) -> None:
    questionnaire = fixture("lforms/q-with-contained-valueset-with-itemWeight.json")
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [
            {
                "linkId": "link-1",
                "item": [
                    {
                        "linkId": "link-1.1",
                        "item": [
                            {
                                "linkId": "link-1.1.1",
                                "answer": [{"valueCoding": {"code": first[0], "system": first[1]}}],
                            },
                            {
                                "linkId": "link-1.1.2",
                                "answer": [{"valueCoding": {"code": second[0], "system": second[1]}}],
                            },
                        ],
                    }
                ],
            }
        ],
    }
    result = score_response(questionnaire, response)
    assert [(score.link_id, score.value) for score in result.scores] == [("link-2", total)]
    assert result.issues == ()


def test_weight_on_the_option_s_coding() -> None:
    form = one_item_form({"answerOption": [{"valueCoding": {"system": "s", "code": "a", "extension": weight_ext(4)}}]})
    assert evaluate_expression(form, answered({"valueCoding": {"system": "s", "code": "a"}}), EVERY_VALUE) == [4]


def test_itemweight_and_ordinalvalue_both_count_and_zero_is_a_weight() -> None:
    form = one_item_form(
        {
            "answerOption": [
                {"valueCoding": {"system": "s", "code": "a"}, "extension": weight_ext(0)},
                {"valueCoding": {"system": "s", "code": "b"}, "extension": weight_ext(1.5, ORDINAL)},
            ],
            "repeats": True,
        }
    )
    response = answered({"valueCoding": {"system": "s", "code": "a"}}, {"valueCoding": {"system": "s", "code": "b"}})
    assert [float(w) for w in evaluate_expression(form, response, EVERY_VALUE)] == [0.0, 1.5]


def test_codings_match_on_system_and_code() -> None:
    form = one_item_form({"answerOption": [{"valueCoding": {"system": "s1", "code": "a"}, "extension": weight_ext(1)}]})
    assert evaluate_expression(form, answered({"valueCoding": {"system": "s2", "code": "a"}}), EVERY_VALUE) == []


def test_a_coding_without_system_matches_an_unambiguous_code_only() -> None:
    options = [
        {"valueCoding": {"system": "s1", "code": "a"}, "extension": weight_ext(1)},
        {"valueCoding": {"system": "s1", "code": "b"}, "extension": weight_ext(2)},
        {"valueCoding": {"system": "s2", "code": "b"}, "extension": weight_ext(3)},
    ]
    form = one_item_form({"answerOption": options})
    assert evaluate_expression(form, answered({"valueCoding": {"code": "a"}}), EVERY_VALUE) == [1]
    assert evaluate_expression(form, answered({"valueCoding": {"code": "b"}}), EVERY_VALUE) == []


def test_a_value_set_by_canonical_url_and_a_supplied_code_system() -> None:
    value_set = {
        "resourceType": "ValueSet",
        "url": "http://example.org/vs",
        "compose": {"include": [{"system": "http://example.org/cs"}]},
    }
    code_system = {
        "resourceType": "CodeSystem",
        "url": "http://example.org/cs",
        "content": "complete",
        "concept": [{"code": "x", "concept": [{"code": "y", "extension": weight_ext(7)}]}],
    }
    form = one_item_form({"answerValueSet": "http://example.org/vs"})
    response = answered({"valueCoding": {"system": "http://example.org/cs", "code": "y"}})
    assert evaluate_expression(form, response, EVERY_VALUE, terminology=[value_set, code_system]) == [7]
    with pytest.raises(FhirPathError, match="terminology"):
        evaluate_expression(form, response, EVERY_VALUE)


def test_a_code_system_item_weight_property() -> None:
    code_system = {
        "resourceType": "CodeSystem",
        "id": "cs",
        "url": "http://example.org/cs",
        "content": "complete",
        "property": [{"code": "score", "uri": "http://hl7.org/fhir/concept-properties#itemWeight", "type": "decimal"}],
        "concept": [{"code": "y", "property": [{"code": "score", "valueDecimal": 3}]}],
    }
    form = one_item_form(
        {"answerOption": [{"valueCoding": {"system": "http://example.org/cs", "code": "y"}}]}, [code_system]
    )
    assert evaluate_expression(
        form, answered({"valueCoding": {"system": "http://example.org/cs", "code": "y"}}), EVERY_VALUE
    ) == [3]


def test_undeclared_code_system_properties_are_not_weights() -> None:
    code_system = {
        "resourceType": "CodeSystem",
        "url": "http://example.org/cs",
        "content": "complete",
        "concept": [{"code": "y", "property": [{"code": "itemWeight", "valueDecimal": 3}]}],
    }
    form = one_item_form(
        {"answerOption": [{"valueCoding": {"system": "http://example.org/cs", "code": "y"}}]}, [code_system]
    )
    assert (
        evaluate_expression(
            form, answered({"valueCoding": {"system": "http://example.org/cs", "code": "y"}}), EVERY_VALUE
        )
        == []
    )


def test_a_missing_contained_value_set_is_an_error() -> None:
    form = one_item_form({"answerValueSet": "#nowhere"})
    with pytest.raises(FhirPathError, match="no ValueSet with id 'nowhere'"):
        evaluate_expression(form, answered({"valueCoding": {"system": "s", "code": "a"}}), EVERY_VALUE)


def test_an_answer_to_an_item_the_questionnaire_lacks_is_an_error() -> None:
    form = one_item_form({"answerOption": []})
    response = {
        "resourceType": "QuestionnaireResponse",
        "item": [{"linkId": "zz", "answer": [{"valueCoding": {"code": "a"}}]}],
    }
    with pytest.raises(FhirPathError, match="no item with linkId 'zz'"):
        evaluate_expression(form, response, EVERY_VALUE)


def test_weights_of_questionnaire_and_value_set_elements(fixture: Load) -> None:
    phq9 = fixture("us-core/Questionnaire-phq-9-example.json")
    response = fixture("us-core/QuestionnaireResponse-phq-9-example.json")
    options = "%questionnaire.item.where(linkId = '/44250-9').answerOption.weight()"
    assert evaluate_expression(phq9, response, options) == [0, 1, 2, 3]
    sdc = fixture("sdc/questionnaire-sdc-profile-example-PHQ9.json")
    concepts = "%questionnaire.contained.compose.include.concept.weight()"
    assert evaluate_expression(sdc, response, concepts) == [0, 1, 2, 3]


def test_values_outside_the_response_have_no_weight(fixture: Load) -> None:
    phq9 = fixture("us-core/Questionnaire-phq-9-example.json")
    response = fixture("us-core/QuestionnaireResponse-phq-9-example.json")
    assert evaluate_expression(phq9, response, "(1 | 2).weight()") == []
    assert evaluate_expression(phq9, response, "%resource.item.where(linkId = '/44261-6').answer.value.weight()") == []
