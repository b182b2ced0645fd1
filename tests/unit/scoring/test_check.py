"""compile_questionnaire / questionnaire_expressions: what `questionnaires check` reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.scoring import ExpressionLocation, compile_questionnaire, questionnaire_expressions

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parents[3]
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"


def expression(url: str, text: str, name: str | None = None, language: str = "text/fhirpath") -> Json:
    value: Json = {"language": language, "expression": text}
    if name:
        value["name"] = name
    return {"url": url, "valueExpression": value}


def form(*items: Json, extension: tuple[Json, ...] = ()) -> Json:
    return {"resourceType": "Questionnaire", "status": "draft", "extension": list(extension), "item": list(items)}


def calc_item(link_id: str, text: str, item_type: str = "integer", *more: Json) -> Json:
    return {
        "linkId": link_id,
        "type": item_type,
        "extension": [expression(SDC + "sdc-questionnaire-calculatedExpression", text), *more],
    }


@pytest.mark.parametrize(
    "path",
    [
        *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("questionnaires/*/questionnaire.json")),
        "tests/fixtures/synthetic/swemwbs-style.json",
        "tests/fixtures/synthetic/ras-ds-style.json",
        "tests/fixtures/synthetic/reqol-style.json",
        "tests/fixtures/lforms/phq9.json",
        "tests/fixtures/lforms/phq9-with-the-weight-function.json",
        "tests/fixtures/sdc/questionnaire-sdc-profile-example-PHQ9.json",
        "tests/fixtures/sdc/questionnaire-sdc-profile-example-weight-height.json",
    ],
)
def test_the_project_s_and_the_published_forms_compile(path: str) -> None:
    assert compile_questionnaire(json.loads((ROOT / path).read_text(encoding="utf-8"))) == []


def test_every_expression_is_listed(fixture: Callable[[str], Json]) -> None:
    listed = questionnaire_expressions(fixture("sdc/questionnaire-sdc-profile-example-weight-height.json"))
    assert listed == [
        ExpressionLocation(
            "variable", "weight", "text/fhirpath", "%resource.item.where(linkId='/29463-7').answer.valueDecimal",
            None, "Questionnaire.extension[0]",
        ),
        ExpressionLocation(
            "variable", "height", "text/fhirpath", "%resource.item.where(linkId='/8302-2').answer.valueDecimal*0.0254",
            None, "Questionnaire.extension[1]",
        ),
        ExpressionLocation(
            "calculatedExpression", None, "text/fhirpath", "(%weight/(%height.power(2))).round(1)",
            "/39156-5", "Questionnaire.item[3].extension[1]",
        ),
    ]  # fmt: skip


def test_problems_are_reported_with_where_they_are() -> None:
    questionnaire = form(
        calc_item("syntax", "1 +"),
        calc_item("function", "%resource.item.frobnicate()"),
        calc_item("variable", "%later + 1"),
        calc_item("group", "1", "group"),
        {
            "linkId": "cql",
            "type": "integer",
            "extension": [expression(SDC + "sdc-questionnaire-calculatedExpression", "1", language="text/cql")],
        },
        {
            "linkId": "init",
            "type": "string",
            "extension": [
                expression(
                    SDC + "sdc-questionnaire-initialExpression", "Patient?x=1", language="application/x-fhir-query"
                )
            ],
        },
        extension=(expression(VARIABLE, "1"), expression(VARIABLE, "2", name="later")),
    )
    issues = compile_questionnaire(questionnaire)
    found = {(issue.link_id, issue.severity): issue for issue in issues}
    assert "does not compile" in found[("syntax", "error")].text
    assert found[("syntax", "error")].expression == "Questionnaire.item[0].extension[0]"
    assert "frobnicate" in found[("function", "error")].text
    assert ("variable", "error") not in found  # %later is a Questionnaire variable: in scope for every item
    assert "cannot have a calculatedExpression" in found[("group", "error")].text
    assert "text/cql" in found[("cql", "error")].text
    assert found[("init", "information")].text.endswith("Expression: Patient?x=1")
    assert any(issue.link_id is None and "has no name" in issue.text for issue in issues)


def test_variables_must_be_defined_before_use() -> None:
    questionnaire = form(
        {
            "linkId": "g",
            "type": "group",
            "extension": [expression(VARIABLE, "%mine + 1", name="early"), expression(VARIABLE, "1", name="mine")],
            "item": [calc_item("inner", "%mine + %early + %qitem.count() + %outer")],
        },
        calc_item("sibling", "%mine"),
        extension=(expression(VARIABLE, "2", name="outer"),),
    )
    issues = compile_questionnaire(questionnaire)
    assert [(issue.link_id, "%mine" in issue.text) for issue in issues] == [("g", True), ("sibling", True)]


def test_scoring_extensions_are_checked() -> None:
    base = "https://recovery-proms.org/fhir/StructureDefinition/"
    bad_band = {
        "url": base + "score-band",
        "extension": [{"url": "low", "valueDecimal": 3}, {"url": "high", "valueDecimal": 1}],
    }
    direction = {"url": base + "score-direction", "valueCode": "up"}
    flag = {
        "url": base + "safety-flag",
        "extension": [{"url": "condition", "valueExpression": {"language": "text/fhirpath", "expression": "true"}}],
    }
    threshold = {"url": base + "reliable-change", "valueDecimal": 3}
    issues = compile_questionnaire(
        form(calc_item("total", "1", "integer", bad_band, direction, flag), calc_item("x", "1", "integer", threshold))
    )
    texts = sorted(issue.text for issue in issues)
    assert len(texts) == 4
    assert any("reliable-change threshold but no score-direction" in text for text in texts)
    assert any("above 'high'" in text for text in texts)
    assert any("score-direction" in text for text in texts)
    assert any("safety-flag has no message" in text for text in texts)


@pytest.mark.parametrize("pattern", [r"(\d)\1", "(?=x)y", "([a-z"])
def test_a_regex_validation_cannot_run_is_an_error(pattern: str) -> None:
    item = {
        "linkId": "postcode",
        "type": "string",
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/regex", "valueString": pattern}],
    }
    (issue,) = compile_questionnaire(form(item))
    assert issue.severity == "error" and issue.link_id == "postcode" and "cannot be used" in issue.text
    item["extension"][0]["valueString"] = "[A-Z]{2}[0-9]+"
    assert compile_questionnaire(form(item)) == []


def test_expressions_over_the_limits_are_errors() -> None:
    deep = calc_item("deep", "(" * 100 + "1" + ")" * 100)
    long = calc_item("long", " + ".join(["1"] * 1100))
    issues = compile_questionnaire(form(deep, long))
    assert [issue.link_id for issue in issues] == ["deep", "long"]
    assert "nests more than" in issues[0].text and "characters long" in issues[1].text


def test_a_clinical_cutoff_needs_a_number_and_a_direction() -> None:
    base = "https://recovery-proms.org/fhir/StructureDefinition/"
    cutoff = {"url": base + "clinical-cutoff", "valueDecimal": 10}
    direction = {"url": base + "score-direction", "valueCode": "lower-is-better"}
    not_a_number = {"url": base + "clinical-cutoff", "valueString": "10"}
    issues = compile_questionnaire(
        form(
            calc_item("without-direction", "1", "integer", cutoff),
            calc_item("good", "1", "integer", cutoff, direction),
            calc_item("text", "1", "integer", not_a_number, direction),
        )
    )
    assert sorted(issue.link_id or "" for issue in issues) == ["text", "without-direction"]
    assert all("clinical-cutoff needs a valueDecimal and a score-direction" in issue.text for issue in issues)
