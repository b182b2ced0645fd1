"""Cross-check against fhirpath.js, the reference FHIRPath engine: every calculatedExpression and safety-flag
condition of every form, on seeded random responses, must give the same value in both engines.

The responses are scored in Python; fhirpath.js then evaluates the same expressions, with the same
variables in scope, over the Python-completed response in one node process (tests/node/evaluate.js).
Not included: the SDC PHQ-9 example, whose SDC 3 ``answers()`` fhirpath.js does not implement.
"""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from service.scoring import ScoringResult, score_response
from tests.node_packages import node_with

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "tests" / "node"
RESPONSES_PER_FORM = 200
CALCULATED = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
SAFETY_FLAG = "https://recovery-proms.org/fhir/StructureDefinition/safety-flag"
FIXTURE_FORMS = [
    "tests/fixtures/synthetic/swemwbs-style.json",
    "tests/fixtures/synthetic/ras-ds-style.json",
    "tests/fixtures/synthetic/reqol-style.json",
    "tests/fixtures/lforms/phq9.json",
    "tests/fixtures/lforms/phq9-with-the-weight-function.json",
    "tests/fixtures/sdc/questionnaire-sdc-profile-example-weight-height.json",
]
Json = dict[str, Any]


def forms() -> list[tuple[str, Json]]:
    paths = FIXTURE_FORMS + sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("questionnaires/*/questionnaire.json"))
    return [(path, json.loads((ROOT / path).read_text(encoding="utf-8"))) for path in paths]


def fhirpath(element: Mapping[str, Any], url: str) -> list[Json]:
    found = []
    for extension in element.get("extension", []):
        value = extension.get("valueExpression")
        if extension.get("url") == url and value and value.get("language") == "text/fhirpath":
            found.append(value)
    return found


def conditions(element: Mapping[str, Any]) -> list[str]:
    found = []
    for extension in element.get("extension", []):
        if extension.get("url") == SAFETY_FLAG:
            for part in extension.get("extension", []):
                if part.get("url") == "condition":
                    found.append(part["valueExpression"]["expression"])
    return found


# ---- random responses --------------------------------------------------------------------------------


def random_answer(q_item: Mapping[str, Any], rng: random.Random) -> Json | None:
    options = q_item.get("answerOption")
    if options:
        option = rng.choice(options)
        return {key: value for key, value in option.items() if key.startswith("value")}
    item_type = q_item.get("type")
    if item_type == "integer":
        return {"valueInteger": rng.randint(0, 100)}
    if item_type == "decimal":
        return {"valueDecimal": round(rng.uniform(30, 120), 1)}
    if item_type in ("string", "text"):
        return {"valueString": rng.choice(["a", "some text"])}
    if item_type == "boolean":
        return {"valueBoolean": rng.random() < 0.5}
    return None


def random_items(q_items: list[Json], rng: random.Random, missing: float) -> list[Json]:
    items = []
    for q_item in q_items:
        if q_item.get("type") == "group":
            children = random_items(q_item.get("item", []), rng, missing)
            if children:
                items.append({"linkId": q_item["linkId"], "item": children})
        elif fhirpath(q_item, CALCULATED):
            if rng.random() < 0.15:  # a submitted score the server must check (usually wrong)
                value = rng.randint(0, 60)
                kind = {"integer": "valueInteger", "decimal": "valueDecimal"}.get(q_item["type"])
                answer = {kind: value} if kind else {"valueQuantity": {"value": value}}
                items.append({"linkId": q_item["linkId"], "answer": [answer]})
        elif q_item.get("type") != "display" and rng.random() >= missing:
            answer = random_answer(q_item, rng)
            if answer is not None:
                items.append({"linkId": q_item["linkId"], "answer": [answer]})
    return items


def random_response(questionnaire: Json, rng: random.Random) -> Json:
    missing = rng.choice([0.0, 0.0, 0.0, 0.05, 0.1, 0.3, 0.7])
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": random_items(questionnaire["item"], rng, missing),
    }


# ---- jobs for fhirpath.js -------------------------------------------------------------------------------


def with_placeholders(q_items: list[Json], items: list[Json]) -> None:
    """Put back (empty) the calculated items scoring dropped for lack of a value: they were there while
    the expressions ran, and fhirpath.js needs them as the context of their own expression."""
    order = {q_item["linkId"]: index for index, q_item in enumerate(q_items)}
    for index, q_item in enumerate(q_items):
        present = [item for item in items if item["linkId"] == q_item["linkId"]]
        if not present and fhirpath(q_item, CALCULATED):
            placeholder = {"linkId": q_item["linkId"], **({"text": q_item["text"]} if "text" in q_item else {})}
            later = [i for i, item in enumerate(items) if order.get(item["linkId"], -1) > index]
            items.insert(later[0] if later else len(items), placeholder)
        for item in present:
            with_placeholders(q_item.get("item", []), item.get("item", []))


def step(name: str | None, expression: str, context: list[Any], qitem: list[Any] | None) -> Json:
    return {"name": name, "expression": expression, "context": context, "qitem": qitem}


def jobs_for(
    index: int, questionnaire: Json, result: ScoringResult, responses: list[Json]
) -> Iterator[tuple[Json, Any, str]]:
    """(job, what Python says, label) for every calculated item and safety flag in the completed response;
    the response that fhirpath.js is to see is appended to ``responses``."""
    response = json.loads(json.dumps(result.response))
    with_placeholders(questionnaire["item"], response.setdefault("item", []))
    responses.append(response)
    number = len(responses) - 1
    errors = {issue.link_id for issue in result.issues if issue.is_error}
    flags = {flag.link_id for flag in result.safety_flags}
    root = [step(v["name"], v["expression"], [], None) for v in fhirpath(questionnaire, VARIABLE)]
    for condition in conditions(questionnaire):
        yield (
            {"questionnaire": index, "response": number, "steps": [*root, step(None, condition, [], None)]},
            None in flags,
            "flag",
        )

    def walk(
        q_items: list[Json], q_path: list[Any], items: list[Json], path: list[Any], inherited: list[Json]
    ) -> Iterator[Any]:
        positions = {q_item["linkId"]: i for i, q_item in enumerate(q_items)}
        for i, item in enumerate(items):
            if item["linkId"] not in positions:
                continue
            q_index = positions[item["linkId"]]
            q_item, here, q_here = q_items[q_index], [*path, "item", i], [*q_path, "item", q_index]
            steps = inherited + [step(v["name"], v["expression"], here, q_here) for v in fhirpath(q_item, VARIABLE)]
            for calculated in fhirpath(q_item, CALCULATED):
                expected: Any = "error" if item["linkId"] in errors else python_values(item.get("answer", []))
                job = {
                    "questionnaire": index,
                    "response": number,
                    "steps": [*steps, step(None, calculated["expression"], here, q_here)],
                }
                yield job, expected, item["linkId"]
            for condition in conditions(q_item):
                job = {
                    "questionnaire": index,
                    "response": number,
                    "steps": [*steps, step(None, condition, here, q_here)],
                }
                yield job, item["linkId"] in flags, f"flag {item['linkId']}"
            yield from walk(q_item.get("item", []), q_here, item.get("item", []), here, steps)

    yield from walk(questionnaire["item"], [], response["item"], [], root)


def python_values(answers: list[Json]) -> list[Any]:
    values = []
    for answer in answers:
        for key, value in answer.items():
            if key == "valueQuantity":
                values.append(float(value["value"]))
            elif key.startswith("value"):
                values.append(float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value)
    return values


def agrees(expected: Any, outcome: Json) -> bool:
    if expected == "error":
        return "error" in outcome
    if "error" in outcome:
        return False
    value = outcome["value"]
    if isinstance(expected, bool):  # a safety flag: raised exactly when the condition is true
        return (value == [True]) == expected
    return [float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value] == expected


@pytest.fixture(scope="module")
def node() -> str:
    return node_with("fhirpath")


def test_python_and_fhirpath_js_agree(node: str) -> None:
    questionnaires: list[Json] = []
    responses: list[Json] = []
    jobs: list[Json] = []
    expectations: list[tuple[str, int, str, Any]] = []
    for index, (name, questionnaire) in enumerate(forms()):
        questionnaires.append(questionnaire)
        rng = random.Random(f"crosscheck:{name}")
        for number in range(RESPONSES_PER_FORM):
            result = score_response(questionnaire, random_response(questionnaire, rng))
            for job, expected, label in jobs_for(index, questionnaire, result, responses):
                jobs.append(job)
                expectations.append((name, number, label, expected))
    completed = subprocess.run(
        [node, str(NODE_DIR / "evaluate.js")],
        input=json.dumps({"questionnaires": questionnaires, "responses": responses, "jobs": jobs}),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcomes = json.loads(completed.stdout)
    assert len(outcomes) == len(jobs) > 1000
    disagreements = [
        (name, number, label, expected, outcome)
        for (name, number, label, expected), outcome in zip(expectations, outcomes, strict=True)
        if not agrees(expected, outcome)
    ]
    assert not disagreements, f"{len(disagreements)} of {len(jobs)} evaluations disagree, e.g. {disagreements[:3]}"
