"""Every built-in Questionnaire imports and renders in LHC-Forms without errors, and scores there as on the server."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest

from service.config import PROJECT_ROOT
from service.scoring import score_response
from tests.node_packages import node_with
from tests.unit.instruments.library import Case, build_response, cases, is_score, questionnaire, slugs, walk

pytestmark = pytest.mark.e2e

NODE_DIR = PROJECT_ROOT / "tests" / "node"
CHECK = NODE_DIR / "lforms-check.js"
PACKAGES = ("lforms", "jsdom")
HIDDEN = "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"
SLUGS = slugs()
Json = dict[str, Any]


def form(slug: str) -> Json:
    definition = questionnaire(slug)
    responses = [{"id": case.name, "response": build_response(definition, case)} for case in cases(slug)]
    return {"name": slug, "questionnaire": definition, "responses": responses}


@pytest.fixture(scope="module")
def lforms() -> dict[str, Json]:
    """What LHC-Forms made of each built-in Questionnaire and of its golden cases, by folder name."""
    node = node_with(*PACKAGES)
    completed = subprocess.run(
        [node, str(CHECK)],
        input=json.dumps({"forms": [form(slug) for slug in SLUGS]}),
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    return {result["name"]: result for result in report["results"]}


def errors_of(result: Mapping[str, Any], *, responses: bool) -> list[str]:
    return [
        f"{error['step']}: {error['message']}"
        for error in result["errors"]
        if error["step"].startswith("response ") == responses
    ]


def shown(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def is_hidden(item: Mapping[str, Any]) -> bool:
    return any(ext.get("url") == HIDDEN and ext.get("valueBoolean") for ext in item.get("extension", []))


@pytest.mark.parametrize("slug", SLUGS)
def test_questionnaire_imports_and_renders_in_lforms(slug: str, lforms: dict[str, Json]) -> None:
    result = lforms[slug]
    errors = errors_of(result, responses=False)
    assert not errors, f"LHC-Forms could not import or render {slug}:\n" + "\n".join(errors)
    problems = []
    for item in walk(questionnaire(slug)["item"]):
        link_id = item["linkId"]
        if link_id not in result["imported"]:
            problems.append(f"{link_id}: not in the form LHC-Forms imported")
            continue
        if "answerOption" in item and result["imported"][link_id] != len(item["answerOption"]):
            problems.append(f"{link_id}: {result['imported'][link_id]} of {len(item['answerOption'])} answers imported")
        if is_hidden(item) or item.get("enableWhen"):
            continue
        rendered = result["rendered"].get(link_id)
        if rendered is None:
            problems.append(f"{link_id}: not rendered")
            continue
        if item.get("text") and shown(item["text"]) not in rendered["label"]:
            problems.append(f"{link_id}: labelled {rendered['label']!r}, not {item['text']!r}")
        if item["type"] not in ("display", "group"):
            if not rendered["fields"]:
                problems.append(f"{link_id}: rendered with no input field")
            elif rendered["readOnly"] != bool(item.get("readOnly") or is_score(item)):
                problems.append(f"{link_id}: rendered {'' if rendered['readOnly'] else 'not '}read-only")
    assert not problems, f"LHC-Forms rendered {slug} wrongly:\n" + "\n".join(problems)


def as_number(field: str | None) -> float | None:
    try:
        return float(field) if field else None
    except ValueError:
        return None


def server_scores(slug: str, case: Case) -> dict[str, float | None]:
    definition = questionnaire(slug)
    result = score_response(copy.deepcopy(definition), build_response(definition, case))
    computed = {score.link_id: None if score.value is None else float(score.value) for score in result.scores}
    return {item["linkId"]: computed.get(item["linkId"]) for item in walk(definition["item"]) if is_score(item)}


@pytest.mark.parametrize("slug", SLUGS)
def test_lforms_scores_the_golden_cases_as_the_server_does(slug: str, lforms: dict[str, Json]) -> None:
    result = lforms[slug]
    errors = errors_of(result, responses=True)
    assert not errors, f"LHC-Forms failed on responses to {slug}:\n" + "\n".join(errors)
    disagreements = []
    compared = 0
    for case in cases(slug):
        filled = result["responses"][case.name]
        for link_id, expected in server_scores(slug, case).items():
            values = filled["answers"].get(link_id, [])
            field = filled["rendered"].get(link_id, {}).get("value")
            if expected is None:
                agree = values == [] and not field
            else:
                compared += 1
                agree = values == [pytest.approx(expected, abs=1e-9)] and as_number(field) == pytest.approx(expected)
            if not agree:
                disagreements.append(f"{case.name} {link_id}: server {expected}, LHC-Forms {values} (shown {field!r})")
    assert compared, f"no golden case of {slug} has a score to compare"
    assert not disagreements, f"LHC-Forms and the server disagree on {slug}:\n" + "\n".join(disagreements)
