"""Property: a generated valid response has no errors; one corruption of it gives an error at that item.

Runs over the SDC test forms, the LOINC PHQ-9 and every built-in instrument under questionnaires/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qr_builders import JSON, load
from strategies import corruptions, points_at, valid_responses

from service.validation import validate_response

ROOT = Path(__file__).resolve().parents[3]
FIXTURE_FORMS = [
    "sdc/questionnaire-sdc-test-enablewhen.json",
    "sdc/questionnaire-sdc-test-required-field.json",
    "sdc/questionnaire-sdc-test-all-data-types.json",
    "sdc/questionnaire-sdc-test-repeatable-nested-groups.json",
    "lforms/phq9.json",
]


def _forms() -> list[Any]:
    import json

    forms = [pytest.param(load(name), id=name) for name in FIXTURE_FORMS]
    for path in sorted(ROOT.glob("questionnaires/*/questionnaire.json")):
        forms.append(
            pytest.param(json.loads(path.read_text(encoding="utf-8")), id=f"questionnaires/{path.parent.name}")
        )
    return forms


def _shown(issues: list[Any]) -> str:
    return "\n".join(f"{issue.severity} {issue.expression}: {issue.text}" for issue in issues)


@pytest.mark.parametrize("questionnaire", _forms())
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_then_corrupted(questionnaire: JSON, data: st.DataObject) -> None:
    status = data.draw(st.sampled_from(["completed", "amended"]))
    response = data.draw(valid_responses(questionnaire, status), label="valid response")
    issues = validate_response(questionnaire, response)
    assert not [issue for issue in issues if issue.is_error], _shown(issues)

    corruption = data.draw(corruptions(questionnaire, response), label="corruption")
    issues = validate_response(questionnaire, corruption.response)
    assert any(issue.is_error and points_at(issue.expression, corruption.target) for issue in issues), (
        f"{corruption.kind} at {corruption.target}\n{_shown(issues)}"
    )
