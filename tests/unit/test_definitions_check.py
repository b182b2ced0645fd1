"""`proms questionnaires check` rejects each kind of broken definition with a precise message."""

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


def errors(resource: dict[str, Any]) -> list[str]:
    return [issue.text for issue in check_definition(resource) if issue.is_error]


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
    assert f"Questionnaire.{field} is missing" in errors(broken)


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
