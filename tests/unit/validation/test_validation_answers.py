"""Answer rules: value[x] per item type, well-formed values, and each value constraint extension."""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any

import pytest
from qr_builders import (
    JSON,
    SDC,
    answered,
    check,
    errors,
    ext,
    ext_url,
    one_error,
    q_item,
    questionnaire,
    response,
    warnings,
)

from service.fhir.issues import Issue

GOOD_VALUES: dict[str, JSON] = {
    "boolean": {"valueBoolean": False},
    "decimal": {"valueDecimal": 2.5},
    "integer": {"valueInteger": -3},
    "date": {"valueDate": "2024-02-29"},
    "dateTime": {"valueDateTime": "2024-02-29T10:15:00+01:00"},
    "time": {"valueTime": "23:59:59.5"},
    "string": {"valueString": "one line"},
    "text": {"valueString": "two\nlines"},
    "url": {"valueUri": "https://example.org/a?b=c#d"},
    "choice": {"valueCoding": {"system": "http://example.org", "code": "a"}},
    "open-choice": {"valueString": "free text"},
    "attachment": {"valueAttachment": {"contentType": "text/plain", "data": "aGk=", "size": 2}},
    "reference": {"valueReference": {"reference": "Patient/1"}},
    "quantity": {"valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}},
}


def single(kind: str, **fields: Any) -> JSON:
    return questionnaire(q_item("q1", kind, **fields))


@pytest.mark.parametrize("kind", sorted(GOOD_VALUES))
def test_each_item_type_takes_its_value_type(kind: str) -> None:
    assert check(single(kind), response(answered("q1", GOOD_VALUES[kind]))) == []


@pytest.mark.parametrize("kind", sorted(GOOD_VALUES))
def test_each_item_type_rejects_another_value_type(kind: str) -> None:
    wrong = {"valueInteger": 1} if kind == "boolean" else {"valueBoolean": True}
    issue = one_error(check(single(kind), response(answered("q1", wrong))))
    assert issue.code == "structure"
    assert issue.expression == f"QuestionnaireResponse.item[0].answer[0].{next(iter(wrong))}"
    assert f"type '{kind}'" in issue.text


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("boolean", {"valueBoolean": "yes"}),
        ("integer", {"valueInteger": 1.5}),
        ("integer", {"valueInteger": 2**40}),
        ("integer", {"valueInteger": True}),
        ("decimal", {"valueDecimal": "1.5"}),
        ("decimal", {"valueDecimal": float("nan")}),
        ("date", {"valueDate": "2023-02-29"}),
        ("date", {"valueDate": "2020-01-01T10:00:00Z"}),
        ("dateTime", {"valueDateTime": "2020-01-01T10:00:00"}),
        ("dateTime", {"valueDateTime": "2020-01-01T10:00Z"}),
        ("time", {"valueTime": "24:00:00"}),
        ("string", {"valueString": ""}),
        ("string", {"valueString": 3}),
        ("url", {"valueUri": "has space"}),
        ("choice", {"valueCoding": "a"}),
    ],
)
def test_malformed_values(kind: str, answer: JSON) -> None:
    issue = one_error(check(single(kind), response(answered("q1", answer))))
    assert issue.code == "value" and issue.expression == f"QuestionnaireResponse.item[0].answer[0].{next(iter(answer))}"


def test_string_is_one_line_text_may_be_several() -> None:
    issue = one_error(check(single("string"), response(answered("q1", {"valueString": "a\nb"}))))
    assert "line break" in issue.text
    assert check(single("text"), response(answered("q1", {"valueString": "a\nb"}))) == []


def test_max_length_and_min_length() -> None:
    q = single("string", maxLength=3, extension=[ext(ext_url("minLength"), valueInteger=2)])
    assert check(q, response(answered("q1", {"valueString": "abc"}))) == []
    assert "maximum is 3" in one_error(check(q, response(answered("q1", {"valueString": "abcd"})))).text
    assert "minimum is 2" in one_error(check(q, response(answered("q1", {"valueString": "a"})))).text


def test_regex_must_match_the_whole_answer() -> None:
    q = single("string", extension=[ext(ext_url("regex"), valueString="[0-9]{4}")])
    assert check(q, response(answered("q1", {"valueString": "2024"}))) == []
    issue = one_error(check(q, response(answered("q1", {"valueString": "2024x"}))))
    assert issue.code == "value" and "[0-9]{4}" in issue.text


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("([a-z", "missing ]"),
        (r"(a)\1", "invalid escape sequence"),  # a backreference
        ("a(?=b)", "invalid perl operator"),  # lookahead
        ("(?<!x)a", "invalid perl operator"),  # lookbehind
    ],
)
def test_a_regex_that_cannot_be_run_in_linear_time_is_an_error(pattern: str, reason: str) -> None:
    q = single("string", extension=[ext(ext_url("regex"), valueString=pattern)])
    issue = one_error(check(q, response(answered("q1", {"valueString": "ab"}))))
    assert issue.code == "processing" and "cannot be applied" in issue.text and reason in issue.text
    assert "RE2" in issue.text and "no backreferences or lookaround" in issue.text


def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    nested = single("text", extension=[ext(ext_url("regex"), valueString="(a+)+$")])
    found: list[list[Issue]] = []
    # A backtracking engine takes hours on 40 a's and a "!" (it tries every way to split the a's): the
    # check runs aside so that such a regression fails here instead of stalling the suite.
    worker = threading.Thread(
        target=lambda: found.append(check(nested, response(answered("q1", {"valueString": "a" * 40 + "!"})))),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=30)
    assert found, "the regex check did not finish: the pattern engine backtracks"
    assert "does not match the required pattern" in one_error(found[0]).text
    # Long answers are checked too (nothing is skipped for length any more).
    assert check(nested, response(answered("q1", {"valueString": "a" * 90_000}))) == []
    issue = one_error(check(nested, response(answered("q1", {"valueString": "a" * 90_000 + "!"}))))
    assert "does not match" in issue.text


@pytest.mark.parametrize(
    ("kind", "bound", "low", "high", "inside", "below", "above"),
    [
        ("integer", "valueInteger", 1, 5, {"valueInteger": 5}, {"valueInteger": 0}, {"valueInteger": 6}),
        (
            "decimal",
            "valueDecimal",
            1.5,
            2.5,
            {"valueDecimal": 1.5},
            {"valueDecimal": 1.49},
            {"valueDecimal": 2.51},
        ),
        (
            "date",
            "valueDate",
            "2020",
            "2022-06",
            {"valueDate": "2022-06-30"},
            {"valueDate": "2019-12"},
            {"valueDate": "2022-07-01"},
        ),
        (
            "dateTime",
            "valueDateTime",
            "2020-01-01T00:00:00Z",
            "2020-12-31",
            {"valueDateTime": "2020-01-01T01:00:00+01:00"},
            {"valueDateTime": "2020-01-01T00:59:59+01:00"},
            {"valueDateTime": "2021-01-01T00:00:00Z"},
        ),
        (
            "time",
            "valueTime",
            "08:00:00",
            "17:30:00",
            {"valueTime": "17:30:00"},
            {"valueTime": "07:59:59"},
            {"valueTime": "17:30:01"},
        ),
    ],
)
def test_min_value_and_max_value(
    kind: str, bound: str, low: Any, high: Any, inside: JSON, below: JSON, above: JSON
) -> None:
    q = single(kind, extension=[ext(ext_url("minValue"), **{bound: low}), ext(ext_url("maxValue"), **{bound: high})])
    assert check(q, response(answered("q1", inside))) == []
    assert "below the minimum" in one_error(check(q, response(answered("q1", below)))).text
    assert "above the maximum" in one_error(check(q, response(answered("q1", above)))).text


def test_max_decimal_places_on_decimals_and_quantities() -> None:
    places = [ext(ext_url("maxDecimalPlaces"), valueInteger=1)]
    assert check(single("decimal", extension=places), response(answered("q1", {"valueDecimal": 2.5}))) == []
    issue = one_error(check(single("decimal", extension=places), response(answered("q1", {"valueDecimal": 2.55}))))
    assert "2 decimal places" in issue.text
    quantity = {"valueQuantity": {"value": 1.25, "unit": "m"}}
    assert (
        "2 decimal places"
        in one_error(check(single("quantity", extension=places), response(answered("q1", quantity)))).text
    )


def attachment(data: bytes, **fields: Any) -> JSON:
    value = {"contentType": "image/png", "data": base64.b64encode(data).decode(), "size": len(data), **fields}
    return {"valueAttachment": {key: item for key, item in value.items() if item is not None}}


def test_attachment_mime_type_allows_wildcards() -> None:
    q = single("attachment", extension=[ext(ext_url("mimeType"), valueCode="image/*")])
    assert check(q, response(answered("q1", attachment(b"png")))) == []
    issue = one_error(check(q, response(answered("q1", attachment(b"pdf", contentType="application/pdf")))))
    assert "image/*" in issue.text


def test_attachment_max_size_is_in_bytes() -> None:
    q = single("attachment", extension=[ext(ext_url("maxSize"), valueDecimal=4)])
    assert check(q, response(answered("q1", attachment(b"1234")))) == []
    assert "5 bytes" in one_error(check(q, response(answered("q1", attachment(b"12345"))))).text


def test_attachment_size_data_and_hash_must_agree() -> None:
    q = single("attachment")
    assert "declares a size of 9" in one_error(check(q, response(answered("q1", attachment(b"abc", size=9))))).text
    bad = {"valueAttachment": {"contentType": "text/plain", "data": "not base64!"}}
    assert "not valid base64" in one_error(check(q, response(answered("q1", bad)))).text
    good_hash = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()
    assert check(q, response(answered("q1", attachment(b"abc", hash=good_hash)))) == []
    assert "hash" in one_error(check(q, response(answered("q1", attachment(b"abd", hash=good_hash))))).text
    issue = one_error(check(q, response(answered("q1", attachment(b"abc", contentType=None)))))
    assert issue.code == "invariant" and "att-1" in issue.text


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/1",
        "Observation/a.b-c/_history/2",
        "https://fhir.example.org/r4/Patient/9",
        "#contained",
        "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
        "https://example.org/no/fhir/here",
    ],
)
def test_valid_references(reference: str) -> None:
    assert check(single("reference"), response(answered("q1", {"valueReference": {"reference": reference}}))) == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"reference": "Chicken/1"}, "not a FHIR R4 resource type"),
        ({"reference": "https://example.org/Chicken/1"}, "not a FHIR R4 resource type"),
        ({"reference": "Patient 1"}, "not allowed in a URI"),
        ({"reference": "urn:uuid:not-a-uuid"}, "urn:uuid"),
        ({"reference": "just-text"}, "neither a relative reference"),
        ({"reference": "Patient/1", "type": "Practitioner"}, "says type Practitioner"),
        ({"type": "Chicken", "display": "x"}, "not a FHIR R4 resource type"),
        ({}, "no reference, identifier or display"),
    ],
)
def test_invalid_references(value: JSON, fragment: str) -> None:
    issue = one_error(check(single("reference"), response(answered("q1", {"valueReference": value}))))
    assert issue.expression == "QuestionnaireResponse.item[0].answer[0].valueReference" and fragment in issue.text


def test_reference_resource_limits_the_target_type() -> None:
    q = single("reference", extension=[ext(ext_url("questionnaire-referenceResource"), valueCode="Practitioner")])
    assert check(q, response(answered("q1", {"valueReference": {"reference": "Practitioner/1"}}))) == []
    issue = one_error(check(q, response(answered("q1", {"valueReference": {"reference": "Patient/1"}}))))
    assert "type Patient" in issue.text and "accepts Practitioner" in issue.text


UCUM = "http://unitsofmeasure.org"


def quantity(value: Any, code: str | None = None, unit: str | None = None) -> JSON:
    found: JSON = {"value": value}
    if code is not None:
        found.update(system=UCUM, code=code)
    if unit is not None:
        found["unit"] = unit
    return {"valueQuantity": found}


def test_unit_option_and_unit() -> None:
    options = [
        ext(
            ext_url("questionnaire-unitOption"),
            valueCoding={"system": UCUM, "code": "kg", "display": "kilogram"},
        ),
        ext(
            ext_url("questionnaire-unitOption"),
            valueCoding={"system": UCUM, "code": "[lb_av]", "display": "pound"},
        ),
    ]
    q = single("quantity", repeats=True, extension=options)
    assert check(q, response(answered("q1", quantity(70, "kg"), quantity(150, unit="Pound")))) == []
    issue = one_error(check(q, response(answered("q1", quantity(70, "g")))))
    assert issue.code == "code-invalid" and "kg, [lb_av]" in issue.text
    single_unit = single(
        "quantity", extension=[ext(ext_url("questionnaire-unit"), valueCoding={"system": UCUM, "code": "cm"})]
    )
    assert "unit is cm" in one_error(check(single_unit, response(answered("q1", quantity(1, "m"))))).text


def test_unit_value_set() -> None:
    units = {
        "resourceType": "ValueSet",
        "id": "units",
        "status": "active",
        "compose": {"include": [{"system": UCUM, "concept": [{"code": "kg"}, {"code": "g"}]}]},
    }
    q = single("quantity", extension=[ext(ext_url("questionnaire-unitValueSet"), valueCanonical="#units")])
    q["contained"] = [units]
    assert check(q, response(answered("q1", quantity(3, "g")))) == []
    assert "not in #units" in one_error(check(q, response(answered("q1", quantity(3, "mg"))))).text
    assert "no unit code" in one_error(check(q, response(answered("q1", quantity(3, unit="gram"))))).text


def test_quantity_bounds_convert_simple_units() -> None:
    bounds = [
        ext(SDC + "sdc-questionnaire-minQuantity", valueQuantity={"value": 1, "system": UCUM, "code": "km"}),
        ext(SDC + "sdc-questionnaire-maxQuantity", valueQuantity={"value": 2, "system": UCUM, "code": "km"}),
    ]
    q = single("quantity", extension=bounds)
    assert check(q, response(answered("q1", quantity(1500, "m")))) == []
    assert "below the minimum 1 km" in one_error(check(q, response(answered("q1", quantity(999, "m"))))).text
    assert "above the maximum" in one_error(check(q, response(answered("q1", quantity(1.3, "[mi_i]"))))).text
    issues = check(q, response(answered("q1", quantity(3, "kg"))))
    assert len(errors(issues)) == 2 and all("measure different things" in issue.text for issue in issues)
    issues = check(q, response(answered("q1", quantity(3, "mm[Hg]"))))
    assert errors(issues) == [] and len(warnings(issues)) == 2


def test_quantity_needs_a_value() -> None:
    assert (
        "no numeric value" in one_error(check(single("quantity"), response(answered("q1", quantity(None, "kg"))))).text
    )
