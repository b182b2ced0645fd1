"""Score histories from stored Observations: points, bands and reliable change as the service derived them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.app_ui.history import (
    format_number,
    instrument_histories,
    latest_result,
    score_definitions,
)
from tests.unit.app_ui.builders import answered, derived, questionnaire

History = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


def test_score_definitions_read_bands_direction_threshold_and_range(phq9: dict[str, Any]) -> None:
    (total,) = score_definitions(phq9)
    assert total.link_id == "/44261-6"
    assert total.codes[0] == ("http://loinc.org", "44261-6")
    assert [band.band.code for band in total.bands] == [
        "none-minimal", "mild", "moderate", "moderately-severe", "severe",
    ]  # fmt: skip
    assert (total.direction, total.reliable_change, total.minimum, total.maximum) == ("lower-is-better", 6.0, 0, 27)


def test_every_score_of_an_instrument_is_found_in_document_order() -> None:
    assert [d.link_id for d in score_definitions(questionnaire("k10"))] == ["k10-total", "k10-total-0-4", "k6-total"]
    assert [d.link_id for d in score_definitions(questionnaire("dialog"))] == ["dialog-sqol", "dialog-treatment"]


def test_history_has_each_score_over_time_with_band_and_reliable_change(
    phq9: dict[str, Any], phq9_history: History
) -> None:
    responses, observations, _ = phq9_history
    (history,) = instrument_histories({phq9["url"]: phq9}, responses, observations)
    assert (history.questionnaire_id, history.title) == ("phq-9", "Patient Health Questionnaire-9 (PHQ-9)")
    assert history.latest_response["id"] == "r3"
    assert history.completed[-1] == datetime(2026, 3, 1, 9)
    (series,) = history.series
    assert [(p.value, p.band.code if p.band else None, p.change) for p in series.points] == [
        (18, "moderately-severe", None),
        (11, "moderate", "improved"),
        (19, "moderately-severe", "deteriorated"),
    ]
    assert [p.response_id for p in series.points] == ["r1", "r2", "r3"]
    assert series.points[1].difference == -7


def test_withdrawn_observations_and_responses_to_unknown_questionnaires_are_left_out(
    phq9: dict[str, Any], phq9_history: History
) -> None:
    responses, observations, _ = phq9_history
    withdrawn = [
        {**o, "status": "entered-in-error"}
        if (o.get("derivedFrom") or [{}])[0].get("reference", "").endswith("r2")
        else o
        for o in observations
    ]
    (history,) = instrument_histories({phq9["url"]: phq9}, responses, withdrawn)
    assert [p.response_id for p in history.series[0].points] == ["r1", "r3"]
    assert instrument_histories({}, responses, observations) == []


def test_latest_result_in_words(phq9: dict[str, Any], phq9_history: History) -> None:
    responses, observations, _ = phq9_history
    (history,) = instrument_histories({phq9["url"]: phq9}, responses, observations)
    latest = latest_result(history.series[0])
    assert latest.value == "19"
    assert latest.band is not None and latest.band.display == "Moderately severe"
    assert latest.change == "deteriorated"
    assert latest.change_text == "Up 8 points since 1 Feb 2026: a reliable deterioration"


def test_first_result_and_a_change_without_a_threshold_are_said_plainly() -> None:
    qpr = questionnaire("qpr-15")
    items = [item["linkId"] for item in qpr["item"] if item["type"] == "choice"]
    first = answered(qpr, dict.fromkeys(items, 2.0), authored="2026-01-05", response_id="a")
    second = answered(qpr, {**dict.fromkeys(items, 2.0), items[0]: 3.0}, authored="2026-02-05", response_id="b")
    observations, _ = derived(qpr, [first, second])
    (history,) = instrument_histories({qpr["url"]: qpr}, [first, second], observations)
    (series,) = history.series
    assert [p.change for p in series.points] == [None, "unknown"]
    only_first = type(series)(series.definition, series.points[:1])
    assert latest_result(only_first).change_text == "First result for this measure"
    assert latest_result(series).change_text == (
        "Up 1 point since 5 Jan 2026 (the measure has no reliable-change threshold)"
    )


def test_numbers_are_shown_as_stored() -> None:
    assert [format_number(v) for v in (12.0, 4.25, 4.5, -0.0, 3.333333)] == ["12", "4.25", "4.5", "0", "3.33"]
