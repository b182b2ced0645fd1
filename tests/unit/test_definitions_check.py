"""The definition check (`proms questionnaires check`, and POST/PUT Questionnaire) rejects each kind of broken
definition with a precise message."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from service.config import PROJECT_ROOT
from service.definitions import check_definition
from tests.api.scored import scored_questionnaire

MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


def good() -> dict[str, Any]:
    resource = scored_questionnaire()
    resource["copyright"] = "Synthetic test instrument, CC0"
    total = resource["item"][3]
    total["extension"] += [{"url": MIN_VALUE, "valueInteger": 0}, {"url": MAX_VALUE, "valueInteger": 9}]
    return resource


def errors(resource: dict[str, Any], *, built_in: bool = True) -> list[str]:
    return [issue.text for issue in check_definition(resource, built_in=built_in) if issue.is_error]


def test_a_good_definition_passes() -> None:
    assert errors(good()) == []


def test_missing_weight_on_some_options() -> None:
    broken = good()
    del broken["item"][1]["answerOption"][2]["extension"]
    assert any("Item 'b': options often have no itemWeight" in text for text in errors(broken))


def test_scored_item_without_any_weights() -> None:
    broken = good()
    for option in broken["item"][0]["answerOption"]:
        del option["extension"]
    assert any("Item 'a' is read by a score expression" in text for text in errors(broken))


def test_expression_that_does_not_compile() -> None:
    broken = good()
    broken["item"][3]["extension"][0]["valueExpression"]["expression"] = "%resource.item.where(linkId = 'a'"
    found = check_definition(broken)
    assert any(issue.is_error and issue.expression and "item[3]" in issue.expression for issue in found)


def test_declared_range_that_the_answers_cannot_reach() -> None:
    broken = good()
    broken["item"][3]["extension"][-1] = {"url": MAX_VALUE, "valueInteger": 12}
    broken["item"][3]["extension"][3]["extension"][1]["valueDecimal"] = 12  # the 'high' band up to 12 as well
    assert errors(broken) == ["Score 'total': the highest answers give 9 but the item declares maxValue 12"]


def test_duplicate_link_ids_and_missing_copyright() -> None:
    broken = good()
    broken["item"].append(copy.deepcopy(broken["item"][0]))
    del broken["copyright"]
    found = errors(broken)
    assert any("Duplicate linkId 'a'" in text for text in found)
    assert any("copyright is missing" in text for text in found)


@pytest.mark.parametrize("field", ["url", "version", "name", "title"])
def test_missing_metadata(field: str) -> None:
    broken = good()
    del broken[field]
    assert any(text.startswith(f"Questionnaire.{field} is missing") for text in errors(broken))


@pytest.mark.parametrize("field", ["copyright", "name", "title", "version"])
def test_only_a_built_in_definition_must_state_its_licence_and_metadata(field: str) -> None:
    stored = good()
    del stored[field]
    assert errors(stored, built_in=False) == []
    warnings = [i.text for i in check_definition(stored) if i.severity == "warning"]
    assert warnings == ([] if field == "version" else [next(t for t in errors(stored) if field in t)])
    assert len(errors(stored)) == 1  # an error for the library


def _with_minimum(resource: dict[str, Any], link_id: str, minimum: int) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    for item in changed["item"]:
        if item["linkId"] == link_id:
            for extension in item["extension"]:
                if extension["url"].endswith("/score-minimum-answers"):
                    extension["valueInteger"] = minimum
    return changed


@pytest.mark.parametrize("declared", [6, 8])
def test_a_declared_minimum_that_the_expression_does_not_apply_is_an_error(declared: int) -> None:
    phq9 = json.loads((PROJECT_ROOT / "questionnaires" / "phq-9" / "questionnaire.json").read_text())
    assert errors(phq9) == []  # the built-in declares 7, which its expression applies (count() >= 7)
    found = errors(_with_minimum(phq9, "/44261-6", declared))
    assert found == [
        f"Score '/44261-6' declares score-minimum-answers {declared}, but its expression "
        + (
            "does not score 5 answered items and does not score 6"
            if declared == 6
            else "scores 7 answered items and scores 8"
        )
    ]


def _band(low: float, high: float, code: str) -> dict[str, Any]:
    return {
        "url": "https://recovery-proms.org/fhir/StructureDefinition/score-band",
        "extension": [
            {"url": "low", "valueDecimal": low},
            {"url": "high", "valueDecimal": high},
            {"url": "code", "valueCoding": {"system": "http://proms.test/bands", "code": code}},
            {"url": "severity", "valueCode": "info"},
        ],
    }


def _with_bands(*bands: tuple[float, float, str]) -> dict[str, Any]:
    resource = good()
    total = resource["item"][3]
    total["extension"] = [e for e in total["extension"] if not e["url"].endswith("/score-band")]
    total["extension"] += [_band(*band) for band in bands]
    return resource


@pytest.mark.parametrize(
    ("bands", "expected"),
    [
        ([(0, 3, "low"), (4, 6, "mid"), (7, 9, "high")], []),
        ([(7, 9, "high"), (0, 3, "low"), (4, 6, "mid")], []),  # the order they are written in does not matter
        ([(0, 3.5, "low"), (4, 6, "mid"), (7, 9, "high")], []),  # no integer between 3.5 and 4
        ([(0, 4, "low"), (4, 6, "mid"), (7, 9, "high")], ["the score bands 'low' (0 to 4) and 'mid' (4 to 6) overlap"]),
        ([(0, 3, "low"), (5, 6, "mid"), (7, 9, "high")], ["no score band holds 4 (between 'low' (0 to 3) and 'mid'"]),
        ([(0, 2, "low"), (5, 6, "mid"), (7, 9, "high")], ["no score band holds 3 to 4 (between"]),
        (
            [(1, 3, "low"), (4, 6, "mid"), (7, 9, "high")],
            ["no score band holds the lowest scores, from the minValue 0"],
        ),
        ([(0, 3, "low"), (4, 6, "mid"), (7, 8, "high")], ["no score band holds the highest scores, above 'high' (7"]),
        ([(0, 9, "all"), (4, 6, "mid")], ["the score bands 'all' (0 to 9) and 'mid' (4 to 6) overlap"]),
    ],
)
def test_integer_score_bands_may_neither_overlap_nor_leave_a_score_out(
    bands: list[tuple[float, float, str]], expected: list[str]
) -> None:
    found = errors(_with_bands(*bands))
    assert len(found) == len(expected), found
    for text, start in zip(found, expected, strict=True):
        assert text.startswith(f"Item 'total': {start}"), text


def _decimal_score(places: int | None, *bands: tuple[float, float, str]) -> dict[str, Any]:
    resource = _with_bands(*bands)
    total = resource["item"][3]
    total["type"] = "decimal"
    total["extension"] = [e for e in total["extension"] if not e["url"].endswith(("minValue", "maxValue"))]
    if places is not None:
        total["extension"].append(
            {"url": "http://hl7.org/fhir/StructureDefinition/maxDecimalPlaces", "valueInteger": places}
        )
    return resource


@pytest.mark.parametrize(
    ("places", "bands", "expected"),
    [
        (1, [(0, 10.9, "a"), (11, 14.9, "b"), (15, 40, "c")], None),  # CORE-10's bands at one decimal place
        (None, [(1, 3.99, "a"), (4, 4, "b"), (4.01, 7, "c")], None),  # DIALOG's: the bounds are written to 0.01
        (1, [(0, 10.8, "a"), (11, 40, "b")], "'a' (0 to 10.8) and 'b' (11 to 40) are not contiguous"),
        (None, [(1, 3.9, "a"), (4.1, 7, "b")], "'a' (1 to 3.9) and 'b' (4.1 to 7) are not contiguous"),
        (2, [(1, 3.99, "a"), (3.99, 7, "b")], "'a' (1 to 3.99) and 'b' (3.99 to 7) overlap"),
        (0, [(0, 4, "a"), (5, 9, "b")], None),  # a decimal score given as whole numbers
    ],
)
def test_decimal_score_bands_must_be_contiguous_at_the_score_precision(
    places: int | None, bands: list[tuple[float, float, str]], expected: str | None
) -> None:
    found = [text for text in errors(_decimal_score(places, *bands)) if "band" in text]
    assert found == ([] if expected is None else [next(t for t in found if expected in t)])


def test_the_built_in_library_passes_the_check() -> None:
    for path in sorted((PROJECT_ROOT / "questionnaires").glob("*/questionnaire.json")):
        resource = json.loads(path.read_text())
        assert [f"{i.severity}: {i.text}" for i in check_definition(resource, built_in=True) if i.is_error] == [], path
