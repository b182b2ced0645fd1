"""Golden cases: the scoring engine reproduces, for each built-in instrument, the scores worked out by hand."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from service.scoring import score_response
from service.validation import validate_response
from tests.unit.instruments.library import Case, build_response, cases, questionnaire, score_items

CASES = cases()
DECIMAL_TOLERANCE = 5e-4  # hand-worked unrounded means (e.g. 13/3) are written to 4 decimal places


def _number(value: int | float | Decimal | None) -> float | None:
    return None if value is None else float(value)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_golden_case(case: Case) -> None:
    definition = questionnaire(case.slug)
    response = build_response(definition, case)
    result = score_response(copy.deepcopy(definition), copy.deepcopy(response))

    errors = [issue for issue in result.issues if issue.severity in ("error", "fatal")]
    assert not errors, [issue.text for issue in errors]

    scores = {score.link_id: score for score in result.scores}
    types = {item["linkId"]: item["type"] for item in score_items(definition)}
    for link_id, expected in case.data["expected"].items():
        score = scores.get(link_id)
        value = _number(score.value if score is not None else None)
        if expected is None:
            assert value is None, f"{link_id}: expected no score, got {value}"
        elif types[link_id] == "integer":
            assert value == expected, f"{link_id}: expected {expected}, got {value}"
        else:
            assert value == pytest.approx(expected, abs=DECIMAL_TOLERANCE), f"{link_id}: expected {expected}"
        band = score.band.code if score is not None and score.band is not None else None
        assert band == case.data["bands"][link_id], f"{link_id}: expected band {case.data['bands'][link_id]}"

    flags = [flag.message for flag in result.safety_flags]
    assert len(flags) == case.data["safety_flags"], flags


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_golden_case_is_a_valid_response(case: Case) -> None:
    definition = questionnaire(case.slug)
    response = build_response(definition, case)
    scored = score_response(copy.deepcopy(definition), copy.deepcopy(response)).response
    for candidate in (response, scored):
        issues = validate_response(definition, candidate)
        assert not [issue.text for issue in issues if issue.severity in ("error", "fatal")]
