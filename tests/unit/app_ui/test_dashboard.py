"""The dashboard as data: safety flags first, each measure with its charts, words, profile and due date."""

from __future__ import annotations

from datetime import date
from typing import Any

from service.app_ui.dashboard import build_dashboard, results_of_response, safety_notices
from tests.unit.app_ui.builders import answered, choice_ids, derived, questionnaire

TODAY = date(2026, 4, 15)


def test_dashboard_puts_flags_first_and_builds_a_panel_per_measure(phq9: dict[str, Any], phq9_history: Any) -> None:
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
    assert [notice.response_id for notice in view.flags] == ["r3"]
    assert "better off dead" in view.flags[0].message
    assert [panel.history.questionnaire_id for panel in view.instruments] == ["qpr-15", "phq-9"]
    qpr_panel, phq_panel = view.instruments
    assert qpr_panel.profile_items and [r.link_id for r in qpr_panel.strengths] == ["qpr-3"]
    assert [r.link_id for r in qpr_panel.priorities] == ["qpr-10"]
    assert qpr_panel.profile_chart is not None and 'data-link-id="qpr-3"' in qpr_panel.profile_chart
    assert not phq_panel.profile_items and phq_panel.strengths == [] and len(phq_panel.ratings) == 9
    (score,) = phq_panel.scores
    assert score.latest.change_text == "Up 8 points since 1 Feb 2026: a reliable deterioration"
    assert 'data-change="improved"' in score.chart and 'data-change="deteriorated"' in score.chart
    assert [(d.questionnaire_id, d.status) for d in view.due] == [
        ("phq-9", "overdue"),  # 1 Mar + 28 days = 29 Mar
        ("k10", "not-started"),  # scheduled, never completed
        ("qpr-15", "due"),  # 10 Apr + 28 (the default) = 8 May
    ]
    assert phq_panel.due is not None and phq_panel.due.days_overdue == 17


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
    assert [(n.flag_id, n.message) for n in safety_notices(flags)] == [("c", "Coded"), ("a", "Old")]
