"""Interpretation: score bands, direction, thresholds, reliable change and safety flags."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from service.scoring import Band, SafetyFlag, reliable_change, score_response
from service.scoring.interpret import BandError, band_for, bands_of, direction_of, read_band

BASE = "https://recovery-proms.org/fhir/StructureDefinition/"
Json = dict[str, Any]


def band(low: Any, high: Any, code: str = "mild", severity: str = "info") -> Json:
    return {
        "url": BASE + "score-band",
        "extension": [
            {"url": "low", "valueDecimal": low},
            {"url": "high", "valueDecimal": high},
            {
                "url": "code",
                "valueCoding": {"system": "https://recovery-proms.org/fhir/CodeSystem/score-band", "code": code},
            },
            {"url": "severity", "valueCode": severity},
        ],
    }


class TestReliableChange:
    @pytest.mark.parametrize(
        ("previous", "current", "threshold", "direction", "expected"),
        [
            (19.25, 22.35, 2.87, "higher-is-better", "improved"),
            (22.35, 19.25, 2.87, "higher-is-better", "deteriorated"),
            (22.35, 19.25, 2.87, "lower-is-better", "improved"),
            (19.25, 22.35, 2.87, "lower-is-better", "deteriorated"),
            (10, 13, 3, "higher-is-better", "improved"),  # exactly the threshold counts
            (10, 12.99, 3, "higher-is-better", "no-reliable-change"),
            (0.1, 0.3, 0.2, "higher-is-better", "improved"),  # 0.3 - 0.1 is 0.19999999999999998 in binary
            (12, 12, 5, None, "no-reliable-change"),
            (12, 14, 5, None, "no-reliable-change"),
        ],
    )
    def test_cases(self, previous: float, current: float, threshold: float, direction: Any, expected: str) -> None:
        assert reliable_change(previous, current, threshold, direction) == expected

    def test_a_reliable_change_without_direction_cannot_be_judged(self) -> None:
        with pytest.raises(ValueError, match="direction"):
            reliable_change(10, 20, 5, None)

    @pytest.mark.parametrize("threshold", [0, -1, math.nan, math.inf])
    def test_the_threshold_must_be_a_positive_number(self, threshold: float) -> None:
        with pytest.raises(ValueError):
            reliable_change(10, 20, threshold, "higher-is-better")


class TestBands:
    def test_ranges_are_closed_at_both_ends(self) -> None:
        bands = bands_of({"extension": [band(0, 4, "minimal"), band(5, 9, "mild", "warning")]})
        assert band_for(4, bands) == Band(
            "minimal", "minimal", "https://recovery-proms.org/fhir/CodeSystem/score-band", "info"
        )
        assert band_for(5, bands) is not None and band_for(5, bands).code == "mild"  # type: ignore[union-attr]
        assert band_for(4.5, bands) is None
        assert band_for(Decimal("9"), bands) is not None
        assert band_for(None, bands) is None

    @pytest.mark.parametrize(
        ("extension", "problem"),
        [
            (band(None, 4), "low"),
            (band(5, 4), "above"),
            (band(0, 4, severity="urgent"), "severity"),
        ],
    )
    def test_malformed_bands_are_refused(self, extension: Json, problem: str) -> None:
        with pytest.raises(BandError, match=problem):
            read_band(extension)
        assert bands_of({"extension": [extension]}) == ()

    def test_direction(self) -> None:
        assert direction_of({"extension": [{"url": BASE + "score-direction", "valueCode": "lower-is-better"}]}) == (
            "lower-is-better"
        )
        assert direction_of({"extension": [{"url": BASE + "score-direction", "valueCode": "sideways"}]}) is None


class TestScoresCarryTheirInterpretation:
    def test_reqol_style_bands_direction_and_codes(
        self, fixture: Callable[[str], Json], respond: Callable[..., Json]
    ) -> None:
        questionnaire = fixture("synthetic/reqol-style.json")
        answers = {f"reqol-q{n}": "2" for n in range(1, 11)}  # 2 scores 2 either way: total 20
        [score] = score_response(questionnaire, respond(questionnaire, answers)).scores
        assert score.value == 20
        assert score.band is not None and (score.band.code, score.band.severity) == ("clinical-range", "warning")
        assert score.direction == "higher-is-better"
        assert score.codes == (
            {
                "system": "https://recovery-proms.org/fhir/CodeSystem/example-scores",
                "code": "reqol-total",
                "display": "Total score (0-40)",
            },
        )

    def test_thresholds(self, fixture: Callable[[str], Json], respond: Callable[..., Json]) -> None:
        questionnaire = fixture("synthetic/swemwbs-style.json")
        answers = {f"swemwbs-q{n}": "r3" for n in range(1, 8)}
        scores = score_response(questionnaire, respond(questionnaire, answers)).scores
        assert [(s.link_id, s.reliable_change_threshold, s.minimal_important_difference) for s in scores] == [
            ("swemwbs-raw", None, None),
            ("swemwbs-metric", 2.87, None),
        ]


class TestSafetyFlags:
    MESSAGE = "Placeholder: item 9 (hope) was answered at its worst level"

    @pytest.mark.parametrize(("code", "raised"), [("4", True), ("3", False), (None, False)])
    def test_reqol_style_item_9(
        self, fixture: Callable[[str], Json], respond: Callable[..., Json], code: str | None, raised: bool
    ) -> None:
        questionnaire = fixture("synthetic/reqol-style.json")
        answers = {f"reqol-q{n}": "2" for n in range(1, 9)}
        if code is not None:
            answers["reqol-q9"] = code
        result = score_response(questionnaire, respond(questionnaire, answers))
        assert result.safety_flags == ((SafetyFlag("reqol-q9", self.MESSAGE),) if raised else ())
        assert result.issues == ()

    def flagged_form(self, condition: str) -> Json:
        flag = {
            "url": BASE + "safety-flag",
            "extension": [
                {"url": "condition", "valueExpression": {"language": "text/fhirpath", "expression": condition}},
                {"url": "message", "valueString": "Tell someone"},
            ],
        }
        return {
            "resourceType": "Questionnaire",
            "status": "draft",
            "extension": [flag],
            "item": [{"linkId": "a", "type": "integer"}],
        }

    def test_a_questionnaire_level_flag(self) -> None:
        response = {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "a", "answer": [{"valueInteger": 9}]}]}
        result = score_response(self.flagged_form("%resource.item.answer.value > 5"), response)
        assert result.safety_flags == (SafetyFlag(None, "Tell someone"),)

    @pytest.mark.parametrize(
        ("condition", "problem"), [("'x' + 1", "Cannot"), ("%resource.item.answer.value", "true or false")]
    )
    def test_a_broken_condition_is_an_error(self, condition: str, problem: str) -> None:
        response = {"resourceType": "QuestionnaireResponse", "item": [{"linkId": "a", "answer": [{"valueInteger": 9}]}]}
        result = score_response(self.flagged_form(condition), response)
        assert result.safety_flags == ()
        [issue] = result.issues
        assert issue.severity == "error" and problem in issue.text and "safety-flag" in issue.text
