"""fhirpath.js, the reference FHIRPath engine, computes the same scores and flags for every golden case."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from service.config import PROJECT_ROOT
from tests.unit.instruments.library import Case, build_response, cases, questionnaire

pytestmark = pytest.mark.e2e

NODE_MODULES = PROJECT_ROOT / "tests" / "node" / "node_modules"
CASES = cases()

# Evaluates the Questionnaire's variables, then every calculatedExpression and safety-flag condition, as an
# SDC form filler would, with %resource and %questionnaire set.
SCRIPT = r"""
const fhirpath = require('fhirpath');
const r4 = require('fhirpath/fhir-context/r4');
const CALC = 'http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression';
const VARIABLE = 'http://hl7.org/fhir/StructureDefinition/variable';
const FLAG = 'https://recovery-proms.org/fhir/StructureDefinition/safety-flag';
const walk = (items, visit) => (items || []).forEach((item) => { visit(item); walk(item.item, visit); });
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const output = {};
for (const {id, questionnaire, response} of input) {
  const env = {resource: response, questionnaire};
  for (const ext of questionnaire.extension || []) {
    if (ext.url === VARIABLE) {
      env[ext.valueExpression.name] = fhirpath.evaluate(response, ext.valueExpression.expression, {...env}, r4);
    }
  }
  const scores = {};
  let flags = 0;
  walk(questionnaire.item, (item) => {
    for (const ext of item.extension || []) {
      if (ext.url === CALC) {
        const value = fhirpath.evaluate(response, ext.valueExpression.expression, {...env}, r4);
        scores[item.linkId] = value.length ? Number(value[0]) : null;
      } else if (ext.url === FLAG) {
        const condition = ext.extension.find((sub) => sub.url === 'condition').valueExpression.expression;
        const value = fhirpath.evaluate(response, condition, {...env}, r4);
        if (value.length === 1 && value[0] === true) flags += 1;
      }
    }
  });
  output[id] = {scores, flags};
}
process.stdout.write(JSON.stringify(output));
"""


@pytest.fixture(scope="module")
def fhirpath_js_results() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "fhirpath").is_dir():
        pytest.skip("node and tests/node/node_modules/fhirpath are needed (make node-deps)")
    payload = [
        {
            "id": case.id,
            "questionnaire": questionnaire(case.slug),
            "response": build_response(questionnaire(case.slug), case),
        }
        for case in CASES
    ]
    completed = subprocess.run(
        [node, "-e", SCRIPT],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        cwd=NODE_MODULES.parent,
        timeout=120,
    )
    results: dict[str, Any] = json.loads(completed.stdout)
    return results


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fhirpath_js_agrees_with_the_golden_case(case: Case, fhirpath_js_results: dict[str, Any]) -> None:
    result = fhirpath_js_results[case.id]
    for link_id, expected in case.data["expected"].items():
        value = result["scores"][link_id]
        if expected is None:
            assert value is None, link_id
        else:
            assert value == pytest.approx(expected, abs=5e-4), link_id
    assert result["flags"] == case.data["safety_flags"]
