"""Patient-view cards from plain data: which cards, in what order, in what words, and when a measure is overdue."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.cds.cards import (
    CardSettings,
    PatientData,
    Source,
    day_text,
    fit,
    flag_card_uuid,
    interval_days,
    number_text,
    overdue_measures,
    patient_view_cards,
    score_sentence,
)
from service.cds.measures import (
    Measure,
    SafetyConcern,
    ScoreResult,
    instrument_label,
    previous_response_ids,
    read_flag,
    read_measure,
)
from service.config import Settings, SettingsError
from service.extraction import CHANGE_EXTENSION, INTERPRETATION, safety_flag
from tests.api.scored import URL, scored_questionnaire

NOW = datetime(2026, 4, 20, 9, 30)
SETTINGS = CardSettings(
    now=NOW,
    app_launch_url="https://proms.example/app/launch",
    source=Source("Recovery PROMs", "https://proms.example/app"),
)
PHQ9_URL = "https://recovery-proms.org/fhir/Questionnaire/phq-9"


def score(**fields: Any) -> ScoreResult:
    return ScoreResult(**{"key": "total", "name": "PHQ-9", "value": 12, **fields})


def measure(*scores: ScoreResult, completed: datetime = NOW - timedelta(days=3), **fields: Any) -> Measure:
    defaults: dict[str, Any] = {
        "instrument": "PHQ-9",
        "questionnaire_url": PHQ9_URL,
        "questionnaire_id": "phq-9",
        "response_id": "r-latest",
        "completed": completed,
        "scores": scores,
    }
    return Measure(**{**defaults, **fields})


def cards_for(*measures: Measure, concerns: tuple[SafetyConcern, ...] = (), settings: CardSettings = SETTINGS) -> Any:
    return patient_view_cards(PatientData("p1", tuple(measures), concerns), settings)


# wording ---------------------------------------------------------------------------------------------------


def test_the_change_in_words_a_clinician_reads_at_a_glance() -> None:
    previous = datetime(2026, 3, 3, 10)
    moderate = {"band": "Moderate", "previous_completed": previous}
    assert (
        score_sentence(score(**moderate, change="no-reliable-change", difference=-4.0), NOW)
        == "PHQ-9 12 (moderate), 4 lower than on 3 March: no reliable change"
    )
    assert (
        score_sentence(score(**moderate, change="deteriorated", difference=7.0), NOW)
        == "PHQ-9 12 (moderate), 7 higher than on 3 March: reliable deterioration"
    )
    assert (
        score_sentence(score(**moderate, change="improved", difference=-6.0), NOW)
        == "PHQ-9 12 (moderate), 6 lower than on 3 March: reliable improvement"
    )
    assert score_sentence(score(**moderate, change="unknown", difference=0.0), NOW) == (
        "PHQ-9 12 (moderate), the same as on 3 March"
    )
    assert score_sentence(score(change="unknown", difference=2.5), NOW) == "PHQ-9 12, 2.5 higher than last time"
    assert score_sentence(score(band="Mild"), NOW) == "PHQ-9 12 (mild), no earlier score to compare"


def test_numbers_dates_and_lengths() -> None:
    assert [number_text(v) for v in (12, 12.0, 3.1000000000000014, 4.25, -1.5)] == ["12", "12", "3.1", "4.25", "-1.5"]
    assert day_text(datetime(2026, 3, 3), NOW) == "3 March"
    assert day_text(datetime(2025, 12, 31), NOW) == "31 December 2025"
    long = fit("x" * 200, " (PHQ-9, 3 March)")
    assert len(long) == 139 and long.endswith("… (PHQ-9, 3 March)")
    assert fit("short") == "short"


@pytest.mark.parametrize(
    ("title", "label"),
    [
        ("Patient Health Questionnaire-9 (PHQ-9)", "PHQ-9"),
        ("CORE-10 (Clinical Outcomes in Routine Evaluation, 10 items)", "CORE-10"),
        ("Kessler Psychological Distress Scale (K10), Australian version", "K10"),
        ("DIALOG scale", "DIALOG"),
        ("Distress (3 items)", "Distress (3 items)"),
    ],
)
def test_instruments_go_by_their_short_names(title: str, label: str) -> None:
    assert instrument_label({"title": title}, "http://x/Questionnaire/q") == label


def test_an_untitled_instrument_goes_by_its_name_or_url() -> None:
    assert instrument_label({"name": "Mood"}, "http://x/Questionnaire/q") == "Mood"
    assert instrument_label(None, "http://x/Questionnaire/mood") == "mood"


# reading stored resources ----------------------------------------------------------------------------------


def observation(value: int, band: str | None, *, change: dict[str, Any] | None = None, worse: bool = False) -> Any:
    resource: dict[str, Any] = {"resourceType": "Observation", "id": f"obs-{value}", "valueInteger": value}
    interpretation = []
    if band:
        coding = {"system": "http://proms.test/bands", "code": band, "display": band.title()}
        interpretation.append({"coding": [coding]})
    if worse:
        interpretation.append({"coding": [{"system": INTERPRETATION, "code": "W"}]})
    if interpretation:
        resource["interpretation"] = interpretation
    if change:
        parts = [
            {"url": "result", "valueCode": change["result"]},
            {"url": "difference", "valueDecimal": change["difference"]},
            {"url": "previousValue", "valueDecimal": value - change["difference"]},
            {"url": "previousResponse", "valueReference": {"reference": "QuestionnaireResponse/r-before"}},
        ]
        resource["extension"] = [{"url": CHANGE_EXTENSION, "extension": parts}]
    return resource


def read(*observations: tuple[str, Any], questionnaire: Any = None) -> Measure:
    return read_measure(
        response_id="r-latest",
        questionnaire_url=URL,
        questionnaire_id="distress3",
        questionnaire=scored_questionnaire() if questionnaire is None else questionnaire,
        completed=NOW - timedelta(days=1),
        observations=list(observations),
        earlier={"r-before": datetime(2026, 3, 3)},
    )


def test_a_score_observation_is_read_with_band_severity_and_change() -> None:
    change = {"result": "deteriorated", "difference": 3}
    latest = read(("total", observation(4, "moderate", change=change, worse=True)))
    (result,) = latest.scores
    assert latest.instrument == "Distress (3 items)"
    assert result == ScoreResult(
        key="total",
        name="Distress (3 items)",
        value=4,
        band="Moderate",
        band_severity="warning",
        most_severe_band=False,
        change="deteriorated",
        difference=3.0,
        previous_completed=datetime(2026, 3, 3),
        observation_id="obs-4",
    )
    assert previous_response_ids([observation(4, "moderate", change=change)]) == {"r-before"}


def test_the_most_severe_band_is_at_the_worse_end_of_the_range() -> None:
    (high,) = read(("total", observation(9, "high"))).scores
    assert high.most_severe_band and high.band_severity == "warning"
    (low,) = read(("total", observation(1, "low"))).scores
    assert not low.most_severe_band
    better_when_higher = scored_questionnaire()
    total = better_when_higher["item"][3]
    total["extension"] = [
        e if not e["url"].endswith("score-direction") else {**e, "valueCode": "higher-is-better"}
        for e in total["extension"]
    ]
    (low_is_worst,) = read(("total", observation(1, "low")), questionnaire=better_when_higher).scores
    assert low_is_worst.most_severe_band


def test_only_calculated_items_count_as_scores_and_several_are_named_apart() -> None:
    questionnaire = scored_questionnaire()
    second = {**questionnaire["item"][3], "linkId": "sleep", "text": "Sleep subscale (0-3)"}
    questionnaire["item"].append(second)
    latest = read(
        ("sleep", observation(2, None)),
        ("a", observation(1, None)),  # an answer extracted as an Observation: not a score
        ("total", observation(5, "moderate")),
        questionnaire=questionnaire,
    )
    assert [(s.key, s.name) for s in latest.scores] == [
        ("total", "Distress (3 items) Distress total"),
        ("sleep", "Distress (3 items) Sleep subscale"),
    ]


def test_a_stored_flag_is_read_as_a_safety_concern() -> None:
    response = {"subject": {"reference": "Patient/p1"}, "authored": "2026-04-19T08:00:00+02:00"}
    flag = {**safety_flag("Could not sleep at all", response, "QuestionnaireResponse/r1"), "id": "f1"}
    assert read_flag(flag, "Distress") == SafetyConcern(
        flag_id="f1",
        message="Could not sleep at all",
        raised=datetime(2026, 4, 19, 6),
        instrument="Distress",
        response_id="r1",
    )


# cards -----------------------------------------------------------------------------------------------------


def test_no_data_no_cards() -> None:
    assert cards_for() == []


def test_critical_cards_come_first_then_warnings_then_information() -> None:
    flag_id = str(uuid.uuid4())
    older = SafetyConcern("f-older", "Earlier safety item", datetime(2026, 4, 1))
    concern = SafetyConcern(flag_id, "Thoughts of self-harm were reported", NOW - timedelta(days=1), "PHQ-9", "r1")
    worse = score(band="Moderately severe", change="deteriorated", difference=7.0)
    cards = cards_for(measure(worse, completed=NOW - timedelta(days=40)), concerns=(older, concern))
    assert [c.indicator for c in cards] == ["critical", "critical", "warning", "info", "info"]
    first = cards[0]
    assert first.uuid == flag_id
    assert first.summary == "Safety: Thoughts of self-harm were reported (PHQ-9, 19 April)"
    assert "not yet reviewed" in first.detail
    (link,) = first.links
    assert link.type == "smart" and link.url == "https://proms.example/app/launch"
    assert json.loads(link.app_context or "") == {"patient": "p1", "flag": flag_id, "questionnaireResponse": "r1"}
    assert cards[1].summary == "Safety: Earlier safety item (1 April)"
    assert cards[2].summary == "PHQ-9 12 (moderately severe): reliably worse than last time"
    assert cards[4].summary.startswith("PHQ-9 is due")


def test_a_flag_card_uuid_leads_back_to_its_flag() -> None:
    flag_id = "0b8e4b7e-8c9a-4d3e-9b1c-2f3a4b5c6d7e"
    assert flag_card_uuid(flag_id) == flag_id
    assert flag_card_uuid("not-a-uuid") == flag_card_uuid("not-a-uuid") != "not-a-uuid"
    assert uuid.UUID(flag_card_uuid("not-a-uuid"))


@pytest.mark.parametrize(
    ("fields", "summary"),
    [
        ({"band": "Severe", "band_severity": "warning", "most_severe_band": True},
         "PHQ-9 24 (severe): in the most severe band"),
        (
            {"band": "Severe", "band_severity": "warning", "most_severe_band": True, "change": "deteriorated",
             "difference": 8.0, "previous_completed": datetime(2026, 3, 3)},
            "PHQ-9 24 (severe): reliably worse than on 3 March and in the most severe band",
        ),
        ({"band": "Crisis", "band_severity": "critical"}, "PHQ-9 24 (crisis): in a band marked critical"),
    ],
)  # fmt: skip
def test_warning_cards_say_why(fields: dict[str, Any], summary: str) -> None:
    cards = cards_for(measure(score(value=24, **fields)))
    assert [c.indicator for c in cards] == ["warning", "info"]
    assert cards[0].summary == summary
    assert json.loads(cards[0].links[0].app_context or "")["questionnaire"] == PHQ9_URL


def test_a_most_severe_band_of_information_severity_is_no_warning() -> None:
    calm = score(band="High wellbeing", band_severity="info", most_severe_band=True)
    assert [c.indicator for c in cards_for(measure(calm))] == ["info"]


def test_normal_scores_give_one_information_card() -> None:
    improving = score(band="Moderate", band_severity="warning", change="no-reliable-change", difference=-4.0,
                      previous_completed=datetime(2026, 3, 3))  # fmt: skip
    (card,) = cards_for(measure(improving))
    assert card.indicator == "info"
    assert card.summary == "PHQ-9 12 (moderate), 4 lower than on 3 March: no reliable change"
    assert card.detail.endswith(
        "- **PHQ-9** 12 (moderate), 4 lower than on 3 March: no reliable change (completed 17 April)"
    )
    assert json.loads(card.links[0].app_context or "") == {"patient": "p1"}


def test_the_summary_lists_every_instrument_newest_first_within_140_characters() -> None:
    measures = [
        measure(score(name=f"Measure {n}", value=n, band="Mild"), instrument=f"Measure {n}", response_id=f"r{n}",
                questionnaire_url=f"http://x/{n}", completed=NOW - timedelta(days=n))
        for n in range(1, 12)
    ]  # fmt: skip
    (card,) = cards_for(*measures)
    assert card.summary.startswith("Latest scores: Measure 1 1 (mild); Measure 2 2 (mild)")
    assert len(card.summary) < 140 and card.summary.endswith("…")
    assert card.detail.index("**Measure 1**") < card.detail.index("**Measure 2**")


def test_markdown_in_definitions_is_shown_literally() -> None:
    concern = SafetyConcern("f1", "Score *very* high [see notes]", NOW)
    (card,) = cards_for(concerns=(concern,))
    assert r"**Score \*very\* high \[see notes\]**" in card.detail


def test_card_uuids_are_stable_for_the_same_situation() -> None:
    once = [c.uuid for c in cards_for(measure(score(change="deteriorated", difference=7.0)))]
    again = [c.uuid for c in cards_for(measure(score(change="deteriorated", difference=7.0)))]
    assert once == again and len(set(once)) == len(once)


# overdue ---------------------------------------------------------------------------------------------------


def test_a_measure_is_overdue_once_its_interval_has_passed() -> None:
    on_time = measure(completed=NOW - timedelta(days=28))
    late = measure(completed=NOW - timedelta(days=28, minutes=1))
    assert overdue_measures([on_time], SETTINGS) == []
    assert overdue_measures([late], SETTINGS) == [(late, 28, 28)]


def test_the_schedule_is_by_questionnaire_id_then_url_then_default() -> None:
    phq9 = measure()
    k10 = measure(instrument="K10", questionnaire_id="k10", questionnaire_url="http://x/k10")
    other = measure(instrument="Other", questionnaire_id=None, questionnaire_url="http://x/other")
    schedule = {"phq-9": 14, PHQ9_URL: 7, "http://x/k10": 84, "*": 56}
    assert [interval_days(m, schedule) for m in (phq9, k10, other)] == [14, 84, 56]
    assert interval_days(other, {}) == 28
    assert interval_days(other, {"*": 0}) == 0


def test_the_overdue_card_lists_the_most_overdue_first() -> None:
    settings = CardSettings(SETTINGS.now, SETTINGS.app_launch_url, SETTINGS.source, {"k10": 84, "dialog": 0})
    phq9 = measure(completed=NOW - timedelta(days=30))  # 2 days late
    k10 = measure(instrument="K10", questionnaire_id="k10", questionnaire_url="http://x/k10", response_id="r2",
                  completed=NOW - timedelta(days=100))  # fmt: skip  # 16 days late
    dialog = measure(instrument="DIALOG", questionnaire_id="dialog", questionnaire_url="http://x/dialog",
                     response_id="r3", completed=NOW - timedelta(days=400))  # fmt: skip  # not scheduled
    cards = cards_for(phq9, k10, dialog, settings=settings)
    overdue = cards[-1]
    assert overdue.summary == "Measures due: K10 (last 10 January), PHQ-9 (last 21 March)"
    assert "- **K10**: last completed 10 January, 100 days ago; due every 84 days (16 days overdue)" in overdue.detail
    assert "DIALOG" not in overdue.detail
    assert json.loads(overdue.links[0].app_context or "")["questionnaires"] == ["http://x/k10", PHQ9_URL]


def test_the_schedule_and_trusted_cds_clients_come_from_the_environment() -> None:
    env = {
        "PROMS_SCHEDULE": "phq-9=28, https://x/Questionnaire/k10=84,*=56",
        "PROMS_CDS_ISSUERS": "https://a, https://b",
    }
    settings = Settings.from_env(env)
    assert settings.schedule == (("phq-9", 28), ("https://x/Questionnaire/k10", 84), ("*", 56))
    assert settings.cds_issuers == ("https://a", "https://b")
    with pytest.raises(SettingsError, match="PROMS_SCHEDULE"):
        Settings.from_env({"PROMS_SCHEDULE": "phq-9=monthly"})
    with pytest.raises(SettingsError, match="PROMS_CDS_JWKS_URL or PROMS_CDS_JWKS_FILE"):
        Settings(auth_mode="none", cds_jwks_url="https://a/jwks", cds_jwks_file=Path("jwks.json")).check_safe()
