"""docs/instruments.md: its worked example passes `questionnaires check` and scores as the guide says it does."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhirpathpy import evaluate as fhirpathpy_evaluate

from service.definitions import check_definition
from service.scoring import ScoringResult, evaluate_expression, reliable_change, score_response

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "instruments.md"
TEXT = GUIDE.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)$")
MARKER = re.compile(r"^<!-- (.+) -->$")
CASE_KEYS = ["description", "note", "arithmetic", "status", "answers", "expected", "bands", "safety_flags"]
SD = "https://recovery-proms.org/fhir/StructureDefinition"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
Json = dict[str, Any]


@dataclass(frozen=True)
class Block:
    marker: str | None  # the HTML comment on the line before the fence, e.g. "example: questionnaire"
    language: str
    body: str


def blocks() -> list[Block]:
    """Every fenced block of the guide, with the marker comment just above it (if any)."""
    lines = TEXT.splitlines()
    found, index = [], 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = lines.index("```", index + 1)
        above = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
        marker = MARKER.match(above)
        found.append(Block(marker.group(1) if marker else None, fence.group(1), "\n".join(lines[index + 1 : end])))
        index = end + 1
    return found


BLOCKS = blocks()


def marked(marker: str) -> list[Json]:
    return [json.loads(block.body) for block in BLOCKS if block.marker == marker]


def the(marker: str) -> Json:
    [found] = marked(marker)
    return found


def questionnaire() -> Json:
    return copy.deepcopy(the("example: questionnaire"))


CASES = {
    block.marker.removeprefix("example: case "): json.loads(block.body)
    for block in BLOCKS
    if block.marker is not None and block.marker.startswith("example: case ")
}


def walk(items: list[Json]) -> Iterator[Json]:
    for item in items:
        yield item
        yield from walk(item.get("item", []))


def item(resource: Mapping[str, Any], link_id: str) -> Json:
    return next(found for found in walk(resource["item"]) if found["linkId"] == link_id)


def extension(element: Mapping[str, Any], url: str) -> Json:
    return next(found for found in element["extension"] if found["url"] == url)


def nodes(value: Any) -> Iterator[Any]:
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        yield from nodes(child)


def contains(whole: Any, part: Any) -> bool:
    """Whether ``part`` is ``whole`` with some object members and list elements left out (order kept)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(key in whole and contains(whole[key], part[key]) for key in part)
    if isinstance(part, list):
        if not isinstance(whole, list):
            return False
        remaining = iter(whole)
        return all(any(contains(candidate, element) for candidate in remaining) for element in part)
    return type(whole) is type(part) and whole == part


def response_items(items: list[Json], answers: Mapping[str, str]) -> list[Json]:
    """A case's answers as response items, nested as the Questionnaire nests its items."""
    built: list[Json] = []
    for q_item in items:
        if q_item["type"] == "group":
            children = response_items(q_item.get("item", []), answers)
            if children:
                built.append({"linkId": q_item["linkId"], "item": children})
        elif q_item["linkId"] in answers:
            code = answers[q_item["linkId"]]
            [coding] = [
                option["valueCoding"] for option in q_item["answerOption"] if option["valueCoding"]["code"] == code
            ]
            built.append({"linkId": q_item["linkId"], "answer": [{"valueCoding": coding}]})
    return built


def case_response(case: Mapping[str, Any]) -> Json:
    items = response_items(questionnaire()["item"], case["answers"])
    return {"resourceType": "QuestionnaireResponse", "status": case["status"], "item": items}


def values(result: ScoringResult) -> dict[str, float | None]:
    return {score.link_id: None if score.value is None else float(score.value) for score in result.scores}


def assert_scores(result: ScoringResult, case: Mapping[str, Any], name: str) -> None:
    """The case's expected values and bands, for every score (None: no score, no band)."""
    scores = {score.link_id: score for score in result.scores}
    assert set(case["expected"]) == set(case["bands"]) == set(scores), f"{name}: a case lists every score"
    for link_id, expected in case["expected"].items():
        value = values(result)[link_id]
        assert (value is None) == (expected is None), f"{name} {link_id}: {value} != {expected}"
        if expected is not None:
            assert value == pytest.approx(expected, abs=5e-4), f"{name} {link_id}"
        band = scores[link_id].band
        assert (band.code if band else None) == case["bands"][link_id], f"{name} {link_id}"


def test_every_json_block_is_marked_and_valid() -> None:
    markers = {"example: questionnaire", "example: response", "excerpt"}
    json_blocks = [block for block in BLOCKS if block.language == "json"]
    assert len(json_blocks) > 20
    for block in json_blocks:
        assert block.marker in markers or (block.marker or "").startswith("example: case "), block.body[:80]
        json.loads(block.body)
    assert set(CASES) >= {"worked-example", "all-minimum", "all-maximum", "one-missing", "two-missing"}


def test_the_worked_example_passes_the_check() -> None:
    assert [f"{issue.severity}: {issue.text}" for issue in check_definition(questionnaire())] == []


def test_every_excerpt_is_taken_from_the_worked_example() -> None:
    whole = questionnaire()
    excerpts = marked("excerpt")
    assert len(excerpts) > 10
    for excerpt in excerpts:
        assert any(contains(node, excerpt) for node in nodes(whole)), json.dumps(excerpt)[:200]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_case(name: str) -> None:
    case = CASES[name]
    assert list(case) == CASE_KEYS and case["arithmetic"].strip()
    result = score_response(questionnaire(), case_response(case))
    assert [issue.text for issue in result.issues if issue.is_error] == []
    assert_scores(result, case, name)
    assert len(result.safety_flags) == case["safety_flags"], [flag.message for flag in result.safety_flags]


def test_the_example_response_scores_as_the_worked_example_case() -> None:
    form, response = questionnaire(), the("example: response")
    assert response["questionnaire"] == f"{form['url']}|{form['version']}"
    answers = {
        answered["linkId"]: answered["answer"][0]["valueCoding"]["code"]
        for answered in walk(response["item"])
        if "answer" in answered
    }
    assert answers == CASES["worked-example"]["answers"]
    result = score_response(form, response)
    assert result.issues == ()
    assert_scores(result, CASES["worked-example"], "response")
    assert result.safety_flags == ()


def test_the_case_runner_agrees_with_the_cases_and_reports_differences(tmp_path: Path) -> None:
    [runner] = [block.body for block in BLOCKS if block.marker == "example: case-runner"]
    namespace: dict[str, Any] = {"__name__": "run_cases"}
    exec(compile(runner, "run_cases.py", "exec"), namespace)  # the guide's script, as a module
    run_cases: Callable[[Path], list[str]] = namespace["run_cases"]
    folder = tmp_path / "ers"
    (folder / "cases").mkdir(parents=True)
    (folder / "questionnaire.json").write_text(json.dumps(questionnaire()), encoding="utf-8")
    for name, case in CASES.items():
        (folder / "cases" / f"{name}.json").write_text(json.dumps(case), encoding="utf-8")
    assert run_cases(folder) == []
    wrong = copy.deepcopy(CASES["worked-example"])
    wrong["expected"]["ers-mean"], wrong["safety_flags"] = 2.62, 1
    (folder / "cases" / "worked-example.json").write_text(json.dumps(wrong), encoding="utf-8")
    assert run_cases(folder) == [
        "worked-example.json: ers-mean is 2.63, expected 2.62",
        "worked-example.json: 0 safety flags, expected 1",
    ]


def test_the_rounding_claims() -> None:
    assert "`(21 / 8).round(2)` is 2.63" in TEXT and "but 2.62 in fhirpathpy" in TEXT
    response = case_response(CASES["worked-example"])
    assert evaluate_expression(questionnaire(), response, "(21 / 8).round(2)") == [Decimal("2.63")]
    assert fhirpathpy_evaluate({}, "(21 / 8).round(2)") == [Decimal("2.62")]
    expected = CASES["worked-example"]["expected"]
    assert (expected["ers-total"], expected["ers-mean"]) == (21, 2.63)  # 21 / 8 = 2.625 rounds half up


def test_the_reliable_change_example() -> None:
    total = item(questionnaire(), "ers-total")
    threshold = extension(total, f"{SD}/reliable-change")["valueDecimal"]
    direction = extension(total, f"{SD}/score-direction")["valueCode"]
    assert "goes from 15 to 21" in TEXT and "a threshold of 5 means" in TEXT
    assert (threshold, direction) == (5, "higher-is-better")
    assert reliable_change(15, 21, threshold, direction) == "improved"


def test_the_quoted_range_message_is_what_check_reports() -> None:
    broken = questionnaire()
    extension(item(broken, "ers-total"), MAX_VALUE)["valueInteger"] = 40
    [issue] = [issue for issue in check_definition(broken) if issue.is_error]
    assert issue.text == "Score 'ers-total': the highest answers give 32 but the item declares maxValue 40"
    assert f"{issue.text}\n" in TEXT and f"{issue.text} at {issue.expression}\n" in TEXT
