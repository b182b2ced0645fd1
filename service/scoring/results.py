"""What scoring a response produces: scores with their interpretation, safety flags and issues."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from service.fhir.issues import Issue

BandSeverity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Band:
    """One interpretation band of a score (from the ``score-band`` extension)."""

    code: str
    display: str
    system: str
    severity: str  # info | warning | critical


@dataclass(frozen=True)
class BandRange:
    """A band with the closed range of scores [low, high] it covers."""

    low: Decimal
    high: Decimal
    band: Band


@dataclass(frozen=True)
class Score:
    """One calculated item of the Questionnaire, as computed from the response."""

    link_id: str
    text: str | None
    codes: tuple[dict[str, Any], ...]  # the item's ``code`` list, unchanged
    item_type: str  # integer | decimal | quantity ...
    value: int | float | None  # None when the score cannot be computed (e.g. too many items missing)
    band: Band | None
    direction: str | None  # higher-is-better | lower-is-better
    reliable_change_threshold: float | None
    minimal_important_difference: float | None
    bands: tuple[BandRange, ...] = ()  # every band of the score, as the Questionnaire gives them


@dataclass(frozen=True)
class SafetyFlag:
    """A ``safety-flag`` condition that held: something a clinician must be told."""

    link_id: str | None
    message: str


@dataclass(frozen=True)
class ScoringResult:
    response: dict[str, Any]  # a copy of the response with every calculated item filled in by the server
    scores: tuple[Score, ...]  # one per calculated item (per instance in repeating groups), Questionnaire order
    safety_flags: tuple[SafetyFlag, ...]
    issues: tuple[Issue, ...]  # warnings (replaced values) and errors (failed expressions)
