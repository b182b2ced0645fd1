"""Interpreting scores: bands (``score-band``), direction, change thresholds, reliable change, safety flags."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, Literal

from service.scoring import extensions as ext
from service.scoring.fhirpath import plain
from service.scoring.functions import FhirPathError
from service.scoring.results import Band, BandRange, SafetyFlag
from service.scoring.scope import Scope

DIRECTIONS = ("higher-is-better", "lower-is-better")
SEVERITIES = ("info", "warning", "critical")
Change = Literal["improved", "deteriorated", "no-reliable-change"]
_HOLDS_FLAG = attrgetter("holds_flag")  # the items a walk for safety flags needs


class BandError(ValueError):
    """A ``score-band`` extension that cannot be used (the message says what is wrong)."""


def _decimal(value: Any) -> Decimal | None:
    number = ext.to_number(value)
    return None if number is None else Decimal(number)


def read_band(extension: Mapping[str, Any]) -> BandRange:
    """One ``score-band`` extension; raises BandError when a required part is missing or wrong."""
    low = _decimal(ext.sub_extension_value(extension, "low", "valueDecimal"))
    high = _decimal(ext.sub_extension_value(extension, "high", "valueDecimal"))
    coding = ext.sub_extension_value(extension, "code", "valueCoding")
    severity = ext.sub_extension_value(extension, "severity", "valueCode")
    if low is None or high is None:
        raise BandError("score-band needs decimal 'low' and 'high'")
    if low > high:
        raise BandError(f"score-band 'low' ({low}) is above 'high' ({high})")
    if not isinstance(coding, Mapping) or not coding.get("code"):
        raise BandError("score-band needs a 'code' Coding")
    if severity not in SEVERITIES:
        raise BandError(f"score-band 'severity' must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    band = Band(
        code=str(coding["code"]),
        display=str(coding.get("display") or coding["code"]),
        system=str(coding.get("system") or ""),
        severity=str(severity),
    )
    return BandRange(low, high, band)


def bands_of(item: Mapping[str, Any]) -> tuple[BandRange, ...]:
    """The usable bands of a score item (malformed ones are left out; `check` reports them)."""
    bands = []
    for extension in ext.extensions(item, ext.SCORE_BAND):
        try:
            bands.append(read_band(extension))
        except BandError:
            continue
    return tuple(bands)


def band_for(value: int | float | Decimal | None, bands: tuple[BandRange, ...]) -> Band | None:
    """The band whose closed range [low, high] holds ``value`` (the first one, should bands overlap)."""
    if value is None:
        return None
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    for band in bands:
        if band.low <= number <= band.high:
            return band.band
    return None


def direction_of(item: Mapping[str, Any]) -> str | None:
    extension = ext.first_extension(item, ext.SCORE_DIRECTION)
    direction = extension.get("valueCode") if extension is not None else None
    return direction if direction in DIRECTIONS else None


def decimal_extension(item: Mapping[str, Any], url: str) -> float | None:
    extension = ext.first_extension(item, url)
    number = ext.to_number(extension.get("valueDecimal")) if extension is not None else None
    return None if number is None else float(number)


def reliable_change(previous: float, current: float, threshold: float, direction: str | None) -> Change:
    """Whether the change from ``previous`` to ``current`` is reliable, and which way it goes.

    A change counts as reliable when its size reaches the threshold: ``|current - previous| >= threshold``
    (inclusive, so a published "a change of 3 or more points" threshold of 3 means what it says). The
    difference is taken in decimal arithmetic so that 22.35 - 19.25 is 3.10, not 3.1000000000000014.
    A reliable change with no known direction cannot be called better or worse: ValueError.
    """
    try:
        before, after, limit = (Decimal(repr(float(x))) for x in (previous, current, threshold))
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError("previous, current and threshold must be numbers") from exc
    if not all(x.is_finite() for x in (before, after, limit)):
        raise ValueError("previous, current and threshold must be finite")
    if limit <= 0:
        raise ValueError(f"the reliable change threshold must be positive, got {threshold}")
    difference = after - before
    if abs(difference) < limit:
        return "no-reliable-change"
    if direction not in DIRECTIONS:
        raise ValueError(f"a reliable change needs a direction ({' or '.join(DIRECTIONS)}), got {direction!r}")
    better = difference > 0 if direction == "higher-is-better" else difference < 0
    return "improved" if better else "deteriorated"


def raised_flags(scope: Scope) -> list[SafetyFlag]:
    """Every ``safety-flag`` whose condition holds on the (final) response.

    A flag on an item is evaluated on each instance of the item in the response, or once with an empty
    ``%context`` when the response does not contain it (conditions usually read ``%resource``). A
    condition that fails, or gives anything but a single boolean, is reported through the scope.
    """
    flags: list[SafetyFlag] = []
    if not scope.definition.has_flags:
        return flags
    for visit in scope.walk(include_absent=True, within=_HOLDS_FLAG):
        definitions = scope.definition.flags if visit.item_def is None else visit.item_def.flags
        link_id = None if visit.item_def is None else visit.item_def.link_id
        for flag in definitions:
            try:
                result = plain(scope.evaluate(flag.condition, visit.focus, visit.env))
            except FhirPathError as exc:
                scope.report(flag.condition, str(exc), visit.item)
                continue
            if result == [True]:
                raised = SafetyFlag(link_id, flag.message or "Safety flag raised")
                if raised not in flags:
                    flags.append(raised)
            elif result not in ([], [False]):
                scope.report(flag.condition, f"the condition must give true or false, got {result!r}", visit.item)
    return flags
