"""Whole instruments: the synthetic test instruments against published tables and worked examples, and the
published PHQ-9 / BMI examples. Expected values are worked out by hand or copied from the publications."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.scoring import ScoringResult, score_response

Json = dict[str, Any]
Load = Callable[[str], Json]
Respond = Callable[[Json, dict[str, Any]], Json]

# SWEMWBS raw total -> metric score, as published (Warwick conversion table).
SWEMWBS_METRIC = {
    7: 7.00, 8: 9.51, 9: 11.25, 10: 12.40, 11: 13.33, 12: 14.08, 13: 14.75, 14: 15.32, 15: 15.84, 16: 16.36,
    17: 16.88, 18: 17.43, 19: 17.98, 20: 18.59, 21: 19.25, 22: 19.98, 23: 20.73, 24: 21.54, 25: 22.35,
    26: 23.21, 27: 24.11, 28: 25.03, 29: 26.02, 30: 27.03, 31: 28.13, 32: 29.31, 33: 30.70, 34: 32.55,
    35: 35.00,
}  # fmt: skip


def values(result: ScoringResult) -> dict[str, Any]:
    return {score.link_id: score.value for score in result.scores}


def spread(total: int, items: int, low: int, high: int) -> list[int]:
    """Item scores between low and high adding up to total (fill from the first item)."""
    scores, left = [low] * items, total - low * items
    for index in range(items):
        step = min(high - low, left)
        scores[index] += step
        left -= step
    assert left == 0
    return scores


class TestSwemwbsStyle:
    @pytest.fixture
    def form(self, fixture: Load) -> Json:
        return fixture("synthetic/swemwbs-style.json")

    @pytest.mark.parametrize("raw", sorted(SWEMWBS_METRIC))
    def test_every_raw_total_converts_through_the_table(self, form: Json, respond: Respond, raw: int) -> None:
        answers = {f"swemwbs-q{n}": f"r{score}" for n, score in enumerate(spread(raw, 7, 1, 5), start=1)}
        result = score_response(form, respond(form, answers))
        assert values(result) == {"swemwbs-raw": raw, "swemwbs-metric": SWEMWBS_METRIC[raw]}
        assert result.issues == ()

    def test_worked_example(self, form: Json, respond: Respond) -> None:
        answers = dict(
            zip((f"swemwbs-q{n}" for n in range(1, 8)), ["r3", "r3", "r2", "r3", "r4", "r3", "r3"], strict=True)
        )
        assert values(score_response(form, respond(form, answers))) == {"swemwbs-raw": 21, "swemwbs-metric": 19.25}

    def test_no_score_with_an_item_missing(self, form: Json, respond: Respond) -> None:
        answers = {f"swemwbs-q{n}": "r5" for n in range(1, 7)}
        result = score_response(form, respond(form, answers))
        assert values(result) == {"swemwbs-raw": None, "swemwbs-metric": None}
        assert result.issues == ()


class TestRasDsStyle:
    WORKED = [
        4,
        3,
        3,
        2,
        3,
        2,
        3,
        3,
        4,
        3,
        3,
        2,
        2,
        3,
        3,
        3,
        3,
        3,
        3,
        2,
        3,
        3,
        3,
        3,
        2,
        3,
        3,
        3,
        2,
        2,
        2,
        3,
        3,
        4,
        2,
        3,
        2,
        3,
    ]

    @pytest.fixture
    def form(self, fixture: Load) -> Json:
        return fixture("synthetic/ras-ds-style.json")

    def answers(self, scores: list[int]) -> dict[str, str]:
        return {f"rasds-q{n}": f"a{score}" for n, score in enumerate(scores, start=1)}

    def test_worked_example(self, form: Json, respond: Respond) -> None:
        result = score_response(form, respond(form, self.answers(self.WORKED)))
        assert values(result) == {
            "rasds-d1-raw": 17, "rasds-d1-percent": 70.83,  # 17 / 24
            "rasds-d2-raw": 52, "rasds-d2-percent": 72.22,  # 52 / 72
            "rasds-d3-raw": 17, "rasds-d3-percent": 60.71,  # 17 / 28
            "rasds-d4-raw": 20, "rasds-d4-percent": 71.43,  # 20 / 28
            "rasds-total-raw": 106, "rasds-total-percent": 69.74,  # 106 / 152
        }  # fmt: skip
        assert result.issues == ()

    def test_extremes(self, form: Json, respond: Respond) -> None:
        lowest = values(score_response(form, respond(form, self.answers([1] * 38))))
        highest = values(score_response(form, respond(form, self.answers([4] * 38))))
        assert (lowest["rasds-d2-raw"], lowest["rasds-d2-percent"], lowest["rasds-total-percent"]) == (18, 25, 25)
        assert (highest["rasds-d3-raw"], highest["rasds-d3-percent"], highest["rasds-total-raw"]) == (28, 100, 152)

    def test_a_missing_item_voids_its_domain_and_the_total_only(self, form: Json, respond: Respond) -> None:
        answers = self.answers(self.WORKED)
        del answers["rasds-q10"]  # domain 2
        result = values(score_response(form, respond(form, answers)))
        assert result["rasds-d1-percent"] == 70.83 and result["rasds-d4-raw"] == 20
        assert [result[k] for k in ("rasds-d2-raw", "rasds-d2-percent", "rasds-total-raw", "rasds-total-percent")] == [
            None
        ] * 4


class TestReqolStyle:
    @pytest.fixture
    def form(self, fixture: Load) -> Json:
        return fixture("synthetic/reqol-style.json")

    def answers(self, codes: list[int]) -> dict[str, str]:
        return {f"reqol-q{n}": str(code) for n, code in enumerate(codes, start=1)}

    def test_worked_example_with_reverse_coded_items(self, form: Json, respond: Respond) -> None:
        # codes [1,3,2,2,2,1,3,2,3,2]; items 1, 3, 6, 9 score 4 - code: [3,3,2,2,2,3,3,2,1,2] = 23
        result = score_response(form, respond(form, self.answers([1, 3, 2, 2, 2, 1, 3, 2, 3, 2])))
        assert values(result) == {"reqol-total": 23}
        assert result.scores[0].band is not None and result.scores[0].band.code == "clinical-range"

    def test_reverse_coding_by_weights(self, form: Json, respond: Respond) -> None:
        # every answer "most or all of the time": 6 positive items x 4, 4 negative items x 0
        assert values(score_response(form, respond(form, self.answers([4] * 10)))) == {"reqol-total": 24}
        assert values(score_response(form, respond(form, self.answers([0] * 10)))) == {"reqol-total": 16}

    def test_the_physical_health_item_is_not_in_the_total(self, form: Json, respond: Respond) -> None:
        answers = self.answers([4] * 10) | {"reqol-p": "s0"}
        assert values(score_response(form, respond(form, answers))) == {"reqol-total": 24}

    def test_one_missing_item_is_prorated_two_void_the_score(self, form: Json, respond: Respond) -> None:
        answers = self.answers([4] * 10)
        del answers["reqol-q2"]  # 20 from 9 items: round(20 * 10 / 9) = round(22.2) = 22
        assert values(score_response(form, respond(form, answers))) == {"reqol-total": 22}
        del answers["reqol-q3"]
        assert values(score_response(form, respond(form, answers))) == {"reqol-total": None}


class TestPublishedForms:
    def test_sdc_phq9_recomputes_to_10(self, fixture: Load) -> None:
        result = score_response(
            fixture("sdc/questionnaire-sdc-profile-example-PHQ9.json"),
            fixture("sdc/questionnaireresponse-sdc-profile-example-PHQ9.json"),
        )
        assert values(result) == {"H1/TS": 10}
        assert [issue.severity for issue in result.issues] == ["warning"]

    @pytest.mark.parametrize("form", ["lforms/phq9.json", "lforms/phq9-with-the-weight-function.json"])
    def test_lforms_phq9_on_the_us_core_response(self, fixture: Load, form: str) -> None:
        result = score_response(fixture(form), fixture("us-core/QuestionnaireResponse-phq-9-example.json"))
        assert values(result) == {"/44261-6": 12}
        assert result.issues == ()  # the submitted valueDecimal 12 agrees

    def test_sdc_bmi_with_variables(self, fixture: Load) -> None:
        form = fixture("sdc/questionnaire-sdc-profile-example-weight-height.json")
        response = {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "item": [
                {"linkId": "/29463-7", "answer": [{"valueDecimal": 70}]},
                {"linkId": "/8302-2", "answer": [{"valueDecimal": 70}]},
            ],
        }
        result = score_response(form, response)
        # 70 kg / (70 in * 0.0254 m/in)^2 = 70 / 3.161284 = 22.143 -> 22.1
        assert values(result) == {"/39156-5": 22.1}
        assert [entry["linkId"] for entry in result.response["item"]] == ["/29463-7", "/8302-2", "/39156-5"]
