"""Shared data for the clinician app's pure parts: a PHQ-9 history with a reliable improvement then deterioration."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.app_ui.builders import answered, derived, questionnaire

PHQ9_ITEMS = [
    "/44250-9",
    "/44255-8",
    "/44259-0",
    "/44254-1",
    "/44251-7",
    "/44258-2",
    "/44252-5",
    "/44253-3",
    "/44260-8",
]


def phq9_weights(total: int, item9: int = 0) -> dict[str, float]:
    """Weights for the nine PHQ-9 items adding up to ``total`` (item 9, the safety item, as given)."""
    weights = dict.fromkeys(PHQ9_ITEMS, 0.0)
    weights["/44260-8"] = float(item9)
    remaining = total - item9
    for link_id in PHQ9_ITEMS[:-1]:
        step = min(3, remaining)
        weights[link_id] = float(step)
        remaining -= step
    assert remaining == 0
    return weights


@pytest.fixture(scope="session")
def phq9() -> dict[str, Any]:
    return questionnaire("phq-9")


@pytest.fixture(scope="session")
def phq9_history(phq9: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Totals 18 (1 Jan), 11 (1 Feb: reliably better), 19 with item 9 raised (1 Mar: reliably worse)."""
    responses = [
        answered(phq9, phq9_weights(18), authored="2026-01-01T09:00:00Z", response_id="r1"),
        answered(phq9, phq9_weights(11), authored="2026-02-01T09:00:00Z", response_id="r2"),
        answered(phq9, phq9_weights(19, item9=1), authored="2026-03-01T09:00:00Z", response_id="r3"),
    ]
    observations, flags = derived(phq9, responses)
    return responses, observations, flags
