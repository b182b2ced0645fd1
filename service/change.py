"""Change since last time: each score compared with the same person's previous score on the same instrument."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.scoring import Score, reliable_change


@dataclass(frozen=True, slots=True)
class PreviousScore:
    value: float
    response_id: str
    authored: str | None


@dataclass(frozen=True, slots=True)
class Change:
    """The change of one score; ``result`` is improved | deteriorated | no-reliable-change | unknown."""

    previous: PreviousScore
    difference: float
    result: str


def compare_scores(current: Sequence[Score], previous: Mapping[str, PreviousScore]) -> dict[str, Change]:
    """Changes keyed by score linkId, for the scores that have a value now and had one last time.

    Without a reliable-change threshold the difference is still reported, with the result ``unknown``: a
    difference alone says nothing about whether it exceeds measurement error. Without a direction a reliable
    change cannot be called better or worse, so it is ``unknown`` too (``proms questionnaires check`` flags
    a threshold given without a direction).
    """
    changes: dict[str, Change] = {}
    for score in current:
        before = previous.get(score.link_id)
        if score.value is None or before is None:
            continue
        difference = float(score.value) - before.value
        if score.reliable_change_threshold is None or score.direction is None:
            result = "unknown"
        else:
            result = reliable_change(before.value, float(score.value), score.reliable_change_threshold, score.direction)
        changes[score.link_id] = Change(before, difference, result)
    return changes
