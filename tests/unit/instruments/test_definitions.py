"""The built-in instrument definitions and their golden cases are complete and consistent (no scoring here)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from tests.unit.instruments.library import (
    CASE_KEYS,
    ITEM_WEIGHT,
    LIBRARY,
    SD,
    VARIABLE,
    Case,
    band_code,
    bands,
    build_response,
    cases,
    expressions,
    extensions,
    is_score,
    limits,
    question_items,
    questionnaire,
    score_items,
    slugs,
    sub_value,
    walk,
)

BASE = "https://recovery-proms.org/fhir"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
SDC_BEHAVE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-behave"
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
ENVIRONMENT = {"resource", "questionnaire", "qitem", "context"}
SEVERITIES = {"info", "warning", "critical"}
DIRECTIONS = {"higher-is-better", "lower-is-better"}
CHIME = {"connectedness", "hope", "identity", "meaning", "empowerment"}
SLUGS = slugs()
CASES = cases()


def _codings(resource: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield from resource.get("code", [])
    for item in walk(resource["item"]):
        yield from item.get("code", [])
        for option in item.get("answerOption", []):
            if "valueCoding" in option:
                yield option["valueCoding"]


def _verhoeff_ok(number: str) -> bool:
    """The SNOMED CT identifier check digit."""
    d = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ]
    p = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ]
    check = 0
    for index, digit in enumerate(reversed(number)):
        check = d[check][p[index % 8][int(digit)]]
    return check == 0


def _referenced_link_ids(resource: Mapping[str, Any]) -> set[str]:
    return {literal for expression in expressions(resource) for literal in re.findall(r"'([^']*)'", expression)}


def test_the_library_is_not_empty() -> None:
    assert len(SLUGS) >= 11


def test_verhoeff_check_recognises_known_identifiers() -> None:
    assert all(_verhoeff_ok(code) for code in ("138875005", "404684003", "116680003", "1035441000000106"))
    assert not _verhoeff_ok("1035441000000100")


@pytest.mark.parametrize("slug", SLUGS)
def test_parses_as_an_r4b_questionnaire(slug: str) -> None:
    Questionnaire.model_validate(questionnaire(slug))


@pytest.mark.parametrize("slug", SLUGS)
def test_metadata(slug: str) -> None:
    resource = questionnaire(slug)
    assert resource["resourceType"] == "Questionnaire"
    assert resource["id"] == slug
    assert resource["url"] == f"{BASE}/Questionnaire/{slug}"
    assert resource["url"].endswith("/" + resource["id"])
    assert SEMVER.match(resource["version"])
    assert resource["status"] == "active"
    assert re.match(r"^[A-Z][A-Za-z0-9_]*$", resource["name"])
    assert resource["subjectType"] == ["Patient"]
    assert SDC_BEHAVE in resource["meta"]["profile"]
    assert re.match(r"^\d{4}-\d{2}-\d{2}$", resource["date"])
    for element in ("title", "publisher", "description", "copyright"):
        assert isinstance(resource[element], str) and resource[element].strip(), element
    assert resource["code"] and all(c.get("system") and c.get("code") for c in resource["code"])
    assert resource["item"][0]["type"] == "display", "the instructions or stem come first"


@pytest.mark.parametrize("slug", SLUGS)
def test_licence_notices(slug: str) -> None:
    resource = questionnaire(slug)
    if any(coding.get("system") == LOINC for coding in _codings(resource)):
        assert "LOINC" in resource["copyright"] and "loinc.org/license" in resource["copyright"]
    if slug == "gbo":
        assert "NON-COMMERCIAL" in resource["copyright"] and "BY-NC-SA" in resource["copyright"]
        assert "non-commercial" in resource["description"].lower()


@pytest.mark.parametrize("slug", SLUGS)
def test_link_ids_are_unique_and_questions_are_coded(slug: str) -> None:
    resource = questionnaire(slug)
    link_ids = [item["linkId"] for item in walk(resource["item"])]
    assert len(link_ids) == len(set(link_ids))
    for item in walk(resource["item"]):
        assert item["type"] == "group" or item.get("text"), item["linkId"]
        if item["type"] not in ("group", "display"):
            assert item.get("code"), f"{item['linkId']} has no code"
            assert all(c.get("system") and c.get("code") for c in item["code"])
            assert isinstance(item.get("required", False), bool)
    for item in question_items(resource):
        assert "required" in item, f"{item['linkId']}: say whether the manual requires it"


@pytest.mark.parametrize("slug", SLUGS)
def test_choice_options_are_coded_and_weighted(slug: str) -> None:
    resource = questionnaire(slug)
    referenced = _referenced_link_ids(resource)
    for item in question_items(resource):
        if item["type"] != "choice":
            continue
        options = item["answerOption"]
        codes = [option["valueCoding"]["code"] for option in options]
        assert len(codes) == len(set(codes)), item["linkId"]
        assert all(option["valueCoding"].get("system") and option["valueCoding"].get("display") for option in options)
        weighted = [extensions(option, ITEM_WEIGHT) for option in options]
        if item["linkId"] in referenced:
            assert all(len(found) == 1 for found in weighted), f"{item['linkId']}: every option needs one weight"
            assert all(isinstance(found[0]["valueDecimal"], int | float) for found in weighted)
        else:
            # An unscored item (e.g. the PHQ-9 difficulty question) carries no weights at all.
            assert not any(weighted), f"{item['linkId']}: weighted but no expression reads it"


@pytest.mark.parametrize("slug", SLUGS)
def test_expressions_read_existing_items_and_variables(slug: str) -> None:
    resource = questionnaire(slug)
    link_ids = {item["linkId"] for item in question_items(resource)}
    assert _referenced_link_ids(resource) <= link_ids
    defined = {ext["valueExpression"]["name"] for ext in extensions(resource, VARIABLE)}
    assert len(defined) == len(extensions(resource, VARIABLE))
    for expression in expressions(resource):
        used = set(re.findall(r"%([A-Za-z][A-Za-z0-9]*)", expression))
        assert used <= defined | ENVIRONMENT, f"unknown variable in {expression}"
        assert "round(" not in expression, "round() differs between engines: use (x + 0.5).floor()"


@pytest.mark.parametrize("slug", SLUGS)
def test_score_items(slug: str) -> None:
    resource = questionnaire(slug)
    scores = score_items(resource)
    assert scores
    for item in scores:
        assert item["readOnly"] is True
        assert item["type"] in ("integer", "decimal")
        [calculation] = [ext for ext in item["extension"] if ext["url"].endswith("calculatedExpression")]
        assert calculation["valueExpression"]["language"] == "text/fhirpath"
        assert calculation["valueExpression"]["expression"].strip()
        [direction] = extensions(item, f"{SD}/score-direction")
        assert direction["valueCode"] in DIRECTIONS
        low, high = limits(item)
        assert low < high
        for url in (f"{SD}/reliable-change", f"{SD}/minimal-important-difference"):
            for ext in extensions(item, url):
                assert 0 < ext["valueDecimal"] <= high - low


@pytest.mark.parametrize("slug", SLUGS)
def test_bands_do_not_overlap_and_cover_the_range(slug: str) -> None:
    for item in score_items(questionnaire(slug)):
        found = sorted(bands(item), key=lambda band: band.low)
        if not found:
            continue
        low, high = limits(item)
        assert found[0].low == low and found[-1].high == high, item["linkId"]
        for band in found:
            assert low <= band.low <= band.high <= high
            assert band.severity in SEVERITIES
            assert band.system and band.code
        assert len({band.code for band in found}) == len(found)
        for before, after in zip(found, found[1:], strict=False):
            gap = round(after.low - before.high, 6)
            if item["type"] == "integer":
                assert gap == 1, f"{item['linkId']}: {before.code} and {after.code} leave a gap or overlap"
            else:
                assert 0 < gap <= 0.1, f"{item['linkId']}: {before.code} and {after.code} leave a gap or overlap"


@pytest.mark.parametrize("slug", SLUGS)
def test_project_extensions_are_well_formed(slug: str) -> None:
    resource = questionnaire(slug)
    for item in walk(resource["item"]):
        for flag in extensions(item, f"{SD}/safety-flag"):
            condition = sub_value(flag, "condition")
            assert condition["language"] == "text/fhirpath" and condition["expression"].strip()
            assert sub_value(flag, "message").strip()
        for domain in extensions(item, f"{SD}/recovery-domain"):
            coding = domain["valueCoding"]
            assert coding["code"] and coding["display"]
            if coding["system"] == f"{BASE}/CodeSystem/chime":
                assert coding["code"] in CHIME
        for profile in extensions(item, f"{SD}/profile-item"):
            assert profile["valueBoolean"] is True
            assert not is_score(item)
        for direction in extensions(item, f"{SD}/score-direction"):
            assert direction["valueCode"] in DIRECTIONS


def test_safety_items_are_flagged() -> None:
    flagged = {
        slug: [item["linkId"] for item in walk(questionnaire(slug)["item"]) if extensions(item, f"{SD}/safety-flag")]
        for slug in SLUGS
    }
    assert flagged["phq-9"] == ["/44260-8"]
    assert flagged["core-10"] == ["core-10-6"]
    assert all(not found for slug, found in flagged.items() if slug not in ("phq-9", "core-10"))


@pytest.mark.parametrize("slug", SLUGS)
def test_snomed_codes_pass_the_check_digit(slug: str) -> None:
    for coding in _codings(questionnaire(slug)):
        if coding["system"] == SNOMED:
            assert _verhoeff_ok(coding["code"]), coding


@pytest.mark.parametrize("slug", SLUGS)
def test_each_instrument_has_golden_cases(slug: str) -> None:
    found = cases(slug)
    assert len(found) >= 4
    statuses = {case.data["status"] for case in found}
    assert "completed" in statuses
    assert any(value is None for case in found for value in case.data["expected"].values()), (
        "a case on the far side of the missing-item rule (no score)"
    )


def _required_questions(items: list[dict[str, Any]], answers: Mapping[str, Any]) -> Iterator[str]:
    """linkIds a completed response must answer (required items inside present or required groups)."""
    for item in items:
        if item["type"] == "group":
            present = any(child["linkId"] in answers for child in walk(item.get("item", [])))
            if item.get("required") or present:
                yield from _required_questions(item.get("item", []), answers)
        elif item.get("required") and not is_score(item):
            yield item["linkId"]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_is_consistent_with_its_definition(case: Case) -> None:
    resource = questionnaire(case.slug)
    data = case.data
    assert set(data) == set(CASE_KEYS), f"keys: {sorted(data)}"
    assert data["status"] in ("completed", "in-progress")
    assert isinstance(data["safety_flags"], int) and data["safety_flags"] >= 0
    assert data["description"].strip() and data["arithmetic"].strip()
    questions = {item["linkId"]: item for item in question_items(resource)}
    for link_id, value in data["answers"].items():
        assert link_id in questions, f"{link_id} is not a question of {case.slug}"
        item = questions[link_id]
        if item["type"] == "choice":
            assert value in {option["valueCoding"]["code"] for option in item["answerOption"]}, (link_id, value)
        else:
            assert isinstance(value, str) and value
    if data["status"] == "completed":
        missing = set(_required_questions(resource["item"], data["answers"])) - set(data["answers"])
        assert not missing, f"a completed response must answer {sorted(missing)}"
    scores = {item["linkId"]: item for item in score_items(resource)}
    assert set(data["expected"]) == set(scores)
    assert set(data["bands"]) == set(scores)
    for link_id, expected in data["expected"].items():
        item = scores[link_id]
        if expected is None:
            assert data["bands"][link_id] is None
            continue
        low, high = limits(item)
        assert low <= expected <= high
        if item["type"] == "integer":
            assert isinstance(expected, int)
        assert data["bands"][link_id] == band_code(expected, item), f"{link_id}: band of {expected}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case_builds_a_valid_response(case: Case) -> None:
    resource = questionnaire(case.slug)
    response = build_response(resource, case)
    QuestionnaireResponse.model_validate(response)
    answered = {item["linkId"] for item in walk(response["item"]) if "answer" in item}
    assert answered == set(case.data["answers"])


def test_readme_lists_every_instrument() -> None:
    readme = (LIBRARY / "README.md").read_text(encoding="utf-8")
    for slug in SLUGS:
        assert f"`{slug}`" in readme, slug
