"""Patient-view cards from plain data: which cards, in what order (the app's attention order), in what words."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.app_ui.safety import FlaggedAnswer
from service.cds.cards import (
    CardSettings,
    PatientData,
    Source,
    day_text,
    fit,
    fit_list,
    flag_card_uuid,
    interval_days,
    long_day_text,
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
        == "PHQ-9 12 (moderate), 4 lower than on 3 Mar: no reliable change"
    )
    assert (
        score_sentence(score(**moderate, change="deteriorated", difference=7.0), NOW)
        == "PHQ-9 12 (moderate), 7 higher than on 3 Mar: reliable deterioration"
    )
    assert (
        score_sentence(score(**moderate, change="improved", difference=-6.0), NOW)
        == "PHQ-9 12 (moderate), 6 lower than on 3 Mar: reliable improvement"
    )
    assert score_sentence(score(**moderate, change="unknown", difference=0.0), NOW) == (
        "PHQ-9 12 (moderate), the same as on 3 Mar"
    )
    assert score_sentence(score(change="unknown", difference=2.5), NOW) == "PHQ-9 12, 2.5 higher than last time"
    assert score_sentence(score(band="Mild"), NOW) == "PHQ-9 12 (mild), no earlier score to compare"


def test_numbers_dates_and_lengths() -> None:
    assert [number_text(v) for v in (12, 12.0, 3.1000000000000014, 4.25, -1.5)] == ["12", "12", "3.1", "4.25", "-1.5"]
    assert day_text(datetime(2026, 3, 3), NOW) == "3 Mar"
    assert day_text(datetime(2025, 12, 31), NOW) == "31 Dec 2025"
    assert long_day_text(datetime(2026, 3, 3), NOW) == "3 March"
    long = fit("x" * 200, " (PHQ-9, 3 March)")
    assert len(long) == 139 and long.endswith("… (PHQ-9, 3 March)")
    assert fit("short") == "short"
    entries = [f"Measure {n} {n}" for n in range(1, 20)]
    listed = fit_list("Latest: ", entries)
    assert len(listed) < 140 and listed.startswith("Latest: Measure 1 1; Measure 2 2")
    assert listed.endswith("more") and "…" not in listed  # whole entries only, and how many are left out
    shown = listed.removeprefix("Latest: ").split("; ")
    assert shown[-1] == f"and {19 - (len(shown) - 1)} more"


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
    assert [(s.key, s.name) for s in latest.scores] == [("total", "Distress total"), ("sleep", "Sleep subscale")]
    assert latest.headline_name == "Distress (3 items)"  # the first score is the instrument's total


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


def test_cards_come_in_the_apps_attention_order() -> None:
    """Safety, reliably worse, most severe band, due, reliably better, then every measure's latest score."""
    flag_id = str(uuid.uuid4())
    older = SafetyConcern("f-older", "Earlier safety item", datetime(2026, 4, 1))
    concern = SafetyConcern(flag_id, "Thoughts of self-harm were reported", NOW - timedelta(days=1), "PHQ-9", "r1")
    severe_k10 = measure(
        score(name="K10", key="k10", value=47, band="Severe", band_severity="warning", most_severe_band=True),
        instrument="K10", questionnaire_id="k10", questionnaire_url="http://x/k10", response_id="rk",
        completed=NOW - timedelta(days=1),
    )  # fmt: skip  # newer than the PHQ-9, but not reliably worse: after it
    worse_phq9 = measure(
        score(band="Moderately severe", change="deteriorated", difference=7.0), completed=NOW - timedelta(days=40)
    )
    better_gad7 = measure(
        score(name="GAD-7", value=5, band="Mild", change="improved", difference=-8.0),
        instrument="GAD-7", questionnaire_id="gad-7", questionnaire_url="http://x/gad-7", response_id="rg",
    )  # fmt: skip
    cards = cards_for(severe_k10, worse_phq9, better_gad7, concerns=(older, concern))
    assert [(c.indicator, c.summary) for c in cards] == [
        ("critical", "Safety: Thoughts of self-harm were reported (PHQ-9) on 19 Apr, not reviewed"),
        ("critical", "Safety: Earlier safety item on 1 Apr, not reviewed"),
        ("warning", "PHQ-9 12 (moderately severe): reliably worse, 7 higher than last time"),
        ("warning", "K10 47 (severe): in the most severe band"),
        ("info", "PHQ-9 is due: last completed 11 Mar, 40 days ago (every 28 days)"),
        ("info", "GAD-7 5 (mild): reliably better, 8 lower than last time"),
        ("info", "Latest: K10 47 (severe); GAD-7 5 (mild); PHQ-9 12 (moderately severe)"),
    ]
    first = cards[0]
    assert first.uuid == flag_id
    assert "not yet reviewed" in first.detail
    (link,) = first.links
    assert link.type == "smart" and link.url == "https://proms.example/app/launch"
    assert json.loads(link.app_context or "") == {"patient": "p1", "flag": flag_id, "questionnaireResponse": "r1"}


def test_a_safety_summary_says_which_item_was_answered_how_and_when() -> None:
    answered = FlaggedAnswer(
        "/44260-8", "9", "Thoughts that you would be better off dead or of hurting yourself in some way",
        "More than half the days",
    )  # fmt: skip
    message = (
        "PHQ-9 item 9 answered above 'Not at all': thoughts that they would be better off dead or of hurting "
        "themselves were reported. Review risk with the person."
    )
    concern = SafetyConcern("f1", message, datetime(2025, 11, 28, 10), "PHQ-9", "r1", answered)
    (card,) = cards_for(concerns=(concern,))
    assert card.summary == "Safety: PHQ-9 item 9 answered 'More than half the days' on 28 Nov 2025, not reviewed"
    assert len(card.summary) < 140
    assert (
        "PHQ-9 item 9, “Thoughts that you would be better off dead or of hurting yourself in some way”, was "
        "answered **“More than half the days”** on 28 November 2025."
    ) in card.detail
    assert "Review risk with the person." in card.detail
    # Even a very long answer keeps the summary under 140 characters, and what matters in it.
    wordy = FlaggedAnswer("x", "6", "I made plans", "An answer " * 20)
    long_concern = SafetyConcern("f2", message, datetime(2026, 4, 19), "CORE-10", "r2", wordy)
    summary = cards_for(concerns=(long_concern,))[0].summary
    assert len(summary) < 140
    assert summary.startswith("Safety: CORE-10 item 6 answered 'An answer") and summary.endswith(
        "…' on 19 Apr, not reviewed"
    )


def test_an_instrument_with_several_scores_is_one_card_quoted_by_its_headline() -> None:
    k10 = measure(
        score(key="k10-total", name="K10 total score, Australian scoring", value=47, band="Severe",
              band_severity="warning", most_severe_band=True),
        score(key="k10-total-0-4", name="K10 total score, 0-4 scoring", value=37),
        score(key="k6-total", name="K6 total score from the six K6 items of the K10", value=23,
              band="Probable serious mental illness", band_severity="warning", most_severe_band=True),
        instrument="K10", questionnaire_id="k10", questionnaire_url="http://x/k10",
    )  # fmt: skip
    warning, summary = cards_for(k10)
    assert warning.summary == "K10 47 (severe): in the most severe band"
    assert summary.summary == "K10 47 (severe), no earlier score to compare"
    for card in (warning, summary):
        assert "K10 K6" not in card.summary and "K10 23" not in card.summary
        assert "- **K10** 47 (severe)" in card.detail
        assert "    - **K6 total score from the six K6 items of the K10** 23 (probable serious mental illness)" in (
            card.detail
        )
        assert "    - **K10 total score, 0-4 scoring** 37" in card.detail


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
            "PHQ-9 24 (severe): reliably worse, 8 higher than on 3 Mar; in the most severe band",
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
    assert card.summary == "PHQ-9 12 (moderate), 4 lower than on 3 Mar: no reliable change"
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
    assert card.summary.startswith("Latest: Measure 1 1 (mild); Measure 2 2 (mild)")
    assert len(card.summary) < 140 and card.summary.endswith(" more")
    assert card.detail.index("**Measure 1**") < card.detail.index("**Measure 2**")


def test_markdown_in_definitions_is_shown_literally() -> None:
    concern = SafetyConcern("f1", "Score *very* high [see notes]", NOW)
    (card,) = cards_for(concerns=(concern,))
    assert r"Score \*very\* high \[see notes\]" in card.detail and "*very*" not in card.detail


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
    overdue = cards[0]
    assert overdue.summary == "Due: K10 (last 10 Jan); PHQ-9 (last 21 Mar)"
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
