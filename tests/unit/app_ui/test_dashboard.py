"""The dashboard as data: what needs attention first, in a fixed order, then each measure's charts and answers."""

from __future__ import annotations

from datetime import date
from typing import Any

from service.app_ui.dashboard import build_dashboard, results_of_response, safety_notices
from tests.unit.app_ui.builders import answered, choice_ids, derived, questionnaire
from tests.unit.app_ui.conftest import phq9_weights

TODAY = date(2026, 4, 15)


def test_attention_comes_in_order_safety_worse_severe_due_then_better(phq9: dict[str, Any], phq9_history: Any) -> None:
    responses, observations, flags = phq9_history  # PHQ-9: 18, 11 (better), 19 with item 9 (worse)
    gad7 = questionnaire("gad-7")
    gad_responses = [
        answered(gad7, dict.fromkeys(choice_ids(gad7), 3.0), authored="2026-03-20T10:00:00Z", response_id="g1"),
        answered(gad7, dict.fromkeys(choice_ids(gad7), 3.0), authored="2026-04-10T10:00:00Z", response_id="g2"),
    ]  # 21 twice: the most severe band, no change
    k10 = questionnaire("k10")
    k10_responses = [
        answered(k10, dict.fromkeys(choice_ids(k10), 4.0), authored="2026-03-01T10:00:00Z", response_id="k1"),
        answered(k10, dict.fromkeys(choice_ids(k10), 1.0), authored="2026-04-12T10:00:00Z", response_id="k2"),
    ]  # 40 then 10: K10 has no reliable-change threshold, so no verdict either way
    gad_observations, _ = derived(gad7, gad_responses)
    k10_observations, _ = derived(k10, k10_responses)
    view = build_dashboard(
        {phq9["url"]: phq9, gad7["url"]: gad7, k10["url"]: k10},
        [*responses, *gad_responses, *k10_responses],
        [*observations, *gad_observations, *k10_observations],
        flags,
        {"phq-9": 28, "*": 84},
        TODAY,
    )
    attention = view.attention
    assert attention.needs_attention
    (notice,) = attention.safety
    assert notice.response_id == "r3" and notice.instrument == "PHQ-9"
    assert notice.answered is not None and notice.answered.item == "item 9"
    assert notice.answered.answer == "Several days"
    assert notice.answered.text.startswith("Thoughts that you would be better off dead")
    assert [(a.instrument, a.score, a.latest.value, a.concern) for a in attention.deteriorated] == [
        ("PHQ-9", "PHQ-9 total score", "19", None)
    ]
    assert attention.deteriorated[0].latest.movement == "Up 8 points since 1 Feb 2026"
    assert [(a.instrument, a.latest.value, a.concern) for a in attention.severe] == [("GAD-7", "21", "most-severe")]
    assert [(d.questionnaire_id, d.status) for d in attention.due] == [("phq-9", "overdue")]  # due 29 Mar
    assert attention.improved == []  # the PHQ-9's earlier improvement is history, not the latest result
    # The measures follow in the same spirit: the one that got worse first, then the severe one, then the rest.
    assert [panel.history.questionnaire_id for panel in view.instruments] == ["phq-9", "gad-7", "k10"]


def test_nothing_to_report_means_no_attention_summary(phq9: dict[str, Any]) -> None:
    response = answered(phq9, phq9_weights(3), authored="2026-04-10T10:00:00Z", response_id="a")
    observations, flags = derived(phq9, [response])
    view = build_dashboard({phq9["url"]: phq9}, [response], observations, flags, {}, TODAY)
    assert not view.attention.needs_attention and view.attention.improved == []
    assert [(d.status, d.due) for d in view.schedule] == [("not-yet-due", date(2026, 5, 8))]


def test_a_reliable_improvement_is_listed_after_the_attention_items(phq9: dict[str, Any]) -> None:
    responses = [
        answered(phq9, phq9_weights(18), authored="2026-03-01T10:00:00Z", response_id="a"),
        answered(phq9, phq9_weights(6), authored="2026-04-10T10:00:00Z", response_id="b"),
    ]
    observations, flags = derived(phq9, responses)
    attention = build_dashboard({phq9["url"]: phq9}, responses, observations, flags, {}, TODAY).attention
    assert not attention.needs_attention
    assert [(a.latest.value, a.latest.movement) for a in attention.improved] == [
        ("6", "Down 12 points since 1 Mar 2026")
    ]


def test_each_measure_has_its_charts_answers_and_due_date(phq9: dict[str, Any], phq9_history: Any) -> None:
    responses, observations, flags = phq9_history
    qpr = questionnaire("qpr-15")
    weights = dict.fromkeys(choice_ids(qpr), 2.0) | {"qpr-3": 4.0, "qpr-10": 1.0}
    qpr_response = answered(qpr, weights, authored="2026-04-10T10:00:00Z", response_id="q1")
    qpr_observations, _ = derived(qpr, [qpr_response])
    k10 = questionnaire("k10")
    view = build_dashboard(
        {phq9["url"]: phq9, qpr["url"]: qpr, k10["url"]: k10},
        [*responses, qpr_response],
        [*observations, *qpr_observations],
        flags,
        {"phq-9": 28, "k10": 84},
        TODAY,
    )
    assert [panel.history.questionnaire_id for panel in view.instruments] == ["phq-9", "qpr-15"]
    phq_panel, qpr_panel = view.instruments
    assert qpr_panel.profile_items and [r.link_id for r in qpr_panel.strengths] == ["qpr-3"]
    assert [r.link_id for r in qpr_panel.priorities] == ["qpr-10"]
    assert not phq_panel.profile_items and phq_panel.strengths == [] and len(phq_panel.ratings) == 9
    item9 = next(r for r in phq_panel.ratings if r.prefix == "9")
    assert item9.safety and item9.answer == "Several days" and item9.points_from_best == 1
    assert [r.prefix for r in phq_panel.ratings if r.safety] == ["9"]
    (score,) = phq_panel.scores
    assert score.latest.change_text == "Up 8 points since 1 Feb 2026: a reliable deterioration"
    assert 'data-change="improved"' in score.chart and 'data-change="deteriorated"' in score.chart
    assert 'data-band="severe"' in score.key
    assert [(d.questionnaire_id, d.status) for d in view.schedule] == [
        ("phq-9", "overdue"),  # 1 Mar + 28 days = 29 Mar
        ("k10", "not-started"),  # scheduled, never completed
        ("qpr-15", "not-yet-due"),  # 10 Apr + 28 (the default) = 8 May
    ]
    assert [(d.questionnaire_id, d.due_now) for d in view.attention.due] == [("phq-9", True), ("k10", True)]
    assert phq_panel.due is not None and phq_panel.due.days_overdue == 17
    assert qpr_panel.due is not None and not qpr_panel.due.due_now


def test_results_of_one_response_compare_it_with_the_one_before(phq9: dict[str, Any], phq9_history: Any) -> None:
    responses, observations, _ = phq9_history
    view = build_dashboard({phq9["url"]: phq9}, responses, observations, [], {}, TODAY)
    history = view.instruments[0].history
    (middle,) = results_of_response(history, "r2")
    assert (middle.value, middle.change) == ("11", "improved")
    assert middle.change_text == "Down 7 points since 1 Jan 2026: a reliable improvement"
    assert results_of_response(history, "unknown") == []


def test_only_active_flags_are_notices_newest_first() -> None:
    flags = [
        {"id": "a", "status": "active", "code": {"text": "Old"}, "period": {"start": "2026-01-01"}},
        {"id": "b", "status": "inactive", "code": {"text": "Reviewed"}},
        {"id": "c", "status": "active", "code": {"coding": [{"display": "Coded"}]}, "period": {"start": "2026-02-01"}},
    ]
    notices = safety_notices(flags)
    assert [(n.flag_id, n.message) for n in notices] == [("c", "Coded"), ("a", "Old")]
    assert all(n.answered is None for n in notices)  # without the response, the answer is not guessed


def test_the_measure_with_an_unreviewed_safety_item_comes_first(phq9: dict[str, Any]) -> None:
    phq9_response = answered(phq9, phq9_weights(6, item9=1), authored="2026-04-01T10:00:00Z", response_id="p")
    gad7 = questionnaire("gad-7")
    all_threes = dict.fromkeys(choice_ids(gad7), 3.0)
    gad_response = answered(gad7, all_threes, authored="2026-04-12T10:00:00Z", response_id="g")
    phq_observations, flags = derived(phq9, [phq9_response])
    gad_observations, _ = derived(gad7, [gad_response])
    view = build_dashboard(
        {phq9["url"]: phq9, gad7["url"]: gad7},
        [phq9_response, gad_response],
        [*phq_observations, *gad_observations],
        flags,
        {},
        TODAY,
    )
    assert [a.instrument for a in view.attention.severe] == ["GAD-7"] and len(view.attention.safety) == 1
    # GAD-7 is newer and in its most severe band, but the PHQ-9 holds the unreviewed safety item.
    assert [panel.history.questionnaire_id for panel in view.instruments] == ["phq-9", "gad-7"]
