"""Published Questionnaires and responses (fhir-test-cases, the R4 examples, the SDC test forms), with
valid and invalid responses built for the forms that ship without one."""

from __future__ import annotations

import copy

from qr_builders import JSON, answered, check, coding, errors, group, load, one_error, response, warnings

ZIKA = load("fhir-test-cases/questionnaire-enableWhen-dw.json")
CANCER = load("fhir-test-cases/questionnaire-example.json")
ENABLE_WHEN = load("sdc/questionnaire-sdc-test-enablewhen.json")
REQUIRED = load("sdc/questionnaire-sdc-test-required-field.json")
ALL_TYPES = load("sdc/questionnaire-sdc-test-all-data-types.json")
NESTED_GROUPS = load("sdc/questionnaire-sdc-test-repeatable-nested-groups.json")
EXAMPLE = "http://example.org"
UCUM = "http://unitsofmeasure.org"


def test_enable_behavior_all_with_a_disabled_required_item() -> None:
    q, r = load("fhir-test-cases/q-enablewhen-me.json"), load("fhir-test-cases/qr-enablewhen-me.json")
    assert errors(check(q, r)) == []
    both = copy.deepcopy(r)
    both["item"][1]["answer"][0]["valueInteger"] = 1
    assert (one_error(check(q, both)).code, one_error(check(q, both)).link_id) == ("required", "N2")


def test_zika_form_valid_response() -> None:
    r = response(
        answered("1", {"valueBoolean": False}),
        answered("2", {"valueBoolean": True}),
        answered("3", {"valueQuantity": {"value": 2, "unit": "weeks", "system": UCUM, "code": "wk"}}),
        answered("4", {"valueBoolean": False}),
        answered("6", {"valueBoolean": True}),
    )
    issues = check(ZIKA, r)
    assert errors(issues) == []
    assert any("que-12" in issue.text and issue.link_id == "4" for issue in warnings(issues))


def test_zika_form_answers_behind_a_disabled_chain() -> None:
    r = response(
        answered("1", {"valueBoolean": True}),
        answered("2", {"valueBoolean": True}),
        answered("3", {"valueQuantity": {"value": 2, "unit": "weeks"}}),
    )
    found = errors(check(ZIKA, r))
    assert [(issue.link_id, issue.code) for issue in found] == [
        ("2", "business-rule"),
        ("3", "business-rule"),
    ]


def test_adaptive_phq9_with_its_contained_questionnaire_and_value_set() -> None:
    r = load("fhir-test-cases/nested-questionnaire-nested-valueset.json")
    q = r["contained"][0]
    assert errors(check(q, r)) == []
    wrong_code = copy.deepcopy(r)
    wrong_code["item"][0]["item"][0]["answer"][0]["valueCoding"] = {"code": "Always"}
    issue = one_error(check(q, wrong_code))
    assert (
        issue.code == "code-invalid"
        and issue.expression == "QuestionnaireResponse.item[0].item[0].answer[0].valueCoding"
    )
    wrong_display = copy.deepcopy(r)
    wrong_display["item"][0]["item"][3]["answer"][0]["valueCoding"]["display"] = "Nearly every day"
    assert "display" in one_error(check(q, wrong_display)).text
    missing = copy.deepcopy(r)
    del missing["item"][0]["item"][8]
    issue = one_error(check(q, missing))
    assert issue.link_id == "H1/T1/Q9" and issue.expression == "QuestionnaireResponse.item[0]"
    assert "Thoughts that you would be better off dead" in issue.text


def cancer_response(answer_11: str) -> JSON:
    yes_no = "http://terminology.hl7.org/CodeSystem/v2-0136"
    cardial = group(
        "1.1.1",
        {
            "linkId": "1.1.1.1",
            "answer": [
                {
                    "valueCoding": coding("Y", yes_no),
                    "item": [answered("1.1.1.1.1", {"valueCoding": coding("N", yes_no)})],
                }
            ],
        },
        answered("1.1.1.2", {"valueCoding": coding("N", yes_no)}),
    )
    return response(
        group("1", {"linkId": "1.1", "answer": [{"valueCoding": coding(answer_11, yes_no), "item": [cardial]}]}),
        group("2", group("2.1", answered("2.1.2", {"valueCoding": coding("pT2", "http://example.org/pt")}))),
    )


def test_r4_example_questionnaire_nested_enable_when() -> None:
    issues = check(CANCER, cancer_response("Y"))
    assert errors(issues) == []
    assert {issue.code for issue in warnings(issues)} == {
        "business-rule",
        "not-supported",
    }  # draft; external sets
    issue = one_error(check(CANCER, cancer_response("N")))
    assert issue.link_id == "1.1.1" and issue.expression == "QuestionnaireResponse.item[0].item[0].answer[0].item[0]"


BLUEBOOK = load("fhir-test-cases/questionnaireresponse-example-bluebook.json")


def _mirror(items: list[JSON]) -> list[JSON]:
    """A Questionnaire shaped like the bluebook response: the form the response was filled from."""
    kinds = {
        "valueString": "string",
        "valueCoding": "open-choice",
        "valueDecimal": "decimal",
        "valueDate": "date",
    }
    kinds["valueBoolean"] = "boolean"
    mirrored = []
    for item in items:
        q_item: JSON = {"linkId": item["linkId"]}
        if "text" in item:
            q_item["text"] = item["text"]
        if "answer" in item:
            answer = item["answer"][0]
            q_item["type"] = kinds[next(key for key in answer if key.startswith("value"))]
            if "item" in answer:
                q_item["item"] = _mirror(answer["item"])
        else:
            q_item["type"] = "group"
            q_item["item"] = _mirror(item["item"])
        mirrored.append(q_item)
    return mirrored


def test_bluebook_response_nests_children_under_answers() -> None:
    assert one_error(check(CANCER, BLUEBOOK)).link_id == "birthDetails"
    q = {"resourceType": "Questionnaire", "status": "active", "item": _mirror(BLUEBOOK["item"])}
    assert check(q, BLUEBOOK) == []
    misnested = copy.deepcopy(BLUEBOOK)
    vitamin = misnested["item"][0]["item"][1]["item"][2]
    vitamin["item"] = vitamin["answer"][0].pop("item")
    issue = one_error(check(q, misnested))
    assert issue.link_id == "vitaminKgiven" and issue.code == "invariant"


def test_decimal_places_example() -> None:
    q = load("fhir-test-cases/Questionnaire-ExampleEntryValidationDecimal.json")
    r = load("fhir-test-cases/QuestionnaireResponse-ExampleEntryValidationDecimalResponse.json")
    assert [(issue.link_id, issue.expression) for issue in check(q, r)] == [
        ("testId3", "QuestionnaireResponse.item[2].answer[0].valueDecimal"),
        ("testId4", "QuestionnaireResponse.item[3].answer[0].valueQuantity"),
    ]


def choice(code: str) -> JSON:
    return {"valueCoding": coding(code, EXAMPLE)}


def scenario_one(radio: str, hidden_answers: bool) -> JSON:
    items = [
        answered("83d5c1a6-5dc3-44d0-9d9e-d687c72e143e", {"valueBoolean": True}),
        answered("fe0106a5-0e25-43a4-9820-7acb7e74d9d7", {"valueBoolean": False}),
        answered("s1-radio", choice(radio)),
        answered("e5da17a7-7546-45c5-9bcd-d0b09a74cc14", {"valueString": "shown after Q1"}),
    ]
    if hidden_answers:
        items.append(answered("e5da17a7-7546-45c5-9bcd-d0b09a74ty76", {"valueString": "shown after radio 2"}))
    items.append(
        group(
            "3ca80fdf-6598-4dd7-b9df-8a2f10895e4e",
            answered("65578509-21ae-4a48-94de-e46b1e10ghqn", {"valueString": "x"}),
        )
    )
    return group("3239e619-e2b9-492c-bf05-88b314fbe3e4", *items)


def test_sdc_enable_when_form() -> None:
    scenario_three = group(
        "02a7536f-06b2-4dee-94e1-f5cfcb0e1234",
        answered("s3-radio", choice("1.1")),
        group(
            "945b97b5-6d74-4a55-9be1-19897512jj89",
            answered("840c08ad-4b27-4c1d-9d6e-824202519kied", {"valueString": "x"}),
        ),
    )
    scenario_five = group(
        "02a7536f-06b2-4dee-94e1-f5cfcb088990",
        answered("date_of_birth_question", {"valueDate": "2005-06-01"}),
        answered("date_greater_2000-01-01", {"valueString": "young"}),
        answered("datetime_question", {"valueTime": "09:00:00"}),
        answered("datetime_question_less_than_equal", {"valueString": "early"}),
    )
    scenario_six = group(
        "02a7536f-06b2-4dee-94e1-f5cfcb0hd732",
        answered("BC029", choice("1"), choice("9")),
        answered("BOWOPTOTH", {"valueString": "a" * 100}),
    )
    valid = response(scenario_one("2", True), scenario_three, scenario_five, scenario_six)
    assert check(ENABLE_WHEN, valid) == []

    hidden = response(scenario_one("1", True))
    issue = one_error(check(ENABLE_WHEN, hidden))
    assert issue.link_id == "e5da17a7-7546-45c5-9bcd-d0b09a74ty76" and issue.code == "business-rule"

    wrong = copy.deepcopy(valid)
    wrong["item"][1]["item"][0]["answer"][0]["valueCoding"]["code"] = "3.3"
    wrong["item"][2]["item"][0]["answer"][0]["valueDate"] = "1999-12-31"
    wrong["item"][3]["item"][1]["answer"][0]["valueString"] = "a" * 101
    found = sorted((issue.link_id or "", issue.code) for issue in errors(check(ENABLE_WHEN, wrong)))
    assert found == [
        ("945b97b5-6d74-4a55-9be1-19897512jj89", "business-rule"),
        ("BOWOPTOTH", "value"),
        ("date_greater_2000-01-01", "business-rule"),
    ]


def test_sdc_required_fields() -> None:
    assert errors(check(REQUIRED, response())) == []
    partial = response(group("grp", answered("textq", {"valueString": "yes"})))
    assert sorted(issue.link_id or "" for issue in errors(check(REQUIRED, partial))) == [
        "radio",
        "radio2",
        "radio3",
    ]
    assert all(issue.code == "required" for issue in errors(check(REQUIRED, partial)))
    complete = response(
        group(
            "grp",
            answered("textq", {"valueString": "yes"}),
            answered("radio", {"valueCoding": coding("Y", "http://terminology.hl7.org/CodeSystem/v2-0136")}),
            answered("radio2", choice("1")),
            answered("radio3", choice("3")),
        )
    )
    assert errors(check(REQUIRED, complete)) == []
    in_progress = copy.deepcopy(partial)
    in_progress["status"] = "in-progress"
    assert errors(check(REQUIRED, in_progress)) == []


def all_types(**overrides: JSON) -> JSON:
    answers: dict[str, JSON] = {
        "id-string": {"valueString": "single line"},
        "id-text": {"valueString": "several\nlines"},
        "id-boolean": {"valueBoolean": True},
        "id-date": {"valueDate": "2024-03-01"},
        "id-datetime": {"valueDateTime": "2024-03-01T09:30:00+11:00"},
        "id-time": {"valueTime": "09:30:00"},
        "id-integer": {"valueInteger": 42},
        "id-decimal": {"valueDecimal": 4.2},
        "id-attachment": {"valueAttachment": {"contentType": "text/plain", "data": "aGVsbG8=", "size": 5}},
        "id-choice": {"valueCoding": coding("VIC", "http://example.org/states")},
        "EF8E3936-3246-4B3E-A46C-9FDAA5ACB635": {"valueString": "Atlantis"},
    }
    answers.update(overrides)
    return response(
        group(
            "02a7536f-06b2-4dee-94e1-f5cfcb0e8622",
            *(answered(link, value) for link, value in answers.items()),
        )
    )


def test_sdc_all_data_types() -> None:
    issues = check(ALL_TYPES, all_types())
    assert errors(issues) == [] and {issue.link_id for issue in warnings(issues)} == {"id-choice"}
    bad = all_types(**{"id-string": {"valueString": "two\nlines"}, "id-boolean": {"valueString": "yes"}})
    bad["item"][0]["item"].insert(1, answered("1acf93a7-0890-44cd-be48-542defb35248", {"valueString": "no"}))
    found = sorted((issue.link_id or "", issue.code) for issue in errors(check(ALL_TYPES, bad)))
    assert found == [
        ("1acf93a7-0890-44cd-be48-542defb35248", "structure"),
        ("id-boolean", "structure"),
        ("id-string", "value"),
    ]


def test_sdc_repeatable_nested_groups() -> None:
    def inner(text: str) -> JSON:
        return group(
            "ba91450b-6e67-40dc-8629-0f1b60577774",
            answered("b7e29109-f729-4359-aa29-6c9e7c7b2318", {"valueString": text}),
            group(
                "68ca912397a145bd9e9f265702b5cf45",
                answered("b7e29109-f729-4359-aa29-6c9e7c7b2328", {"valueString": text + "1"}),
            ),
            group(
                "68ca912397a145bd9e9f265702b5cf45",
                answered("b7e29109-f729-4359-aa29-6c9e7c7b2328", {"valueString": text + "2"}),
            ),
        )

    outer = group(
        "a7837ce4-6ba4-4d01-913c-d20a6685556b",
        answered("a9f40adc-f194-4efb-b4f7-9396d0ca8e49", {"valueString": "x"}),
        inner("a"),
        inner("b"),
    )
    assert check(NESTED_GROUPS, response(outer)) == []
    issue = one_error(check(NESTED_GROUPS, response(outer, copy.deepcopy(outer))))
    assert issue.expression == "QuestionnaireResponse.item[1]" and "does not repeat" in issue.text
