"""A score's bands in order of severity, and the one colour ramp every chart shades them with (pure).

Severity comes from the score's own ``score-direction``: when lower is better the highest band is the most
severe, when higher is better the lowest. The ramp is the same for every instrument (ColorBrewer OrRd,
palest = least severe), so a darker shade always means a worse band. Its darkest steps are kept for scores
whose worst band the instrument marks ``warning`` or ``critical``: a scale whose bands are all ``info`` (such
as DIALOG's satisfaction bands) stops at a light orange, so it never looks as alarming as a severe PHQ-9. A
score that does not say which way is better gets one neutral shade for every band: no colour claims a
severity nobody defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.scoring.results import BandRange

# Least to most severe. The darkest step still contrasts 4.5:1 with the trend line drawn over it.
RAMP = ("#fff7ec", "#fee8c8", "#fdd49e", "#fdbb84", "#fc8d59", "#ef6548")
NEUTRAL = "#ececec"
INFO_TOP = 3  # the darkest ramp step for a score whose bands are all "info"
HIGHER_IS_BETTER = "higher-is-better"
LOWER_IS_BETTER = "lower-is-better"


@dataclass(frozen=True)
class Shade:
    rank: int | None  # 0 = the least severe band; None when the score gives no direction
    of: int  # how many bands the score has
    colour: str

    @property
    def most_severe(self) -> bool:
        return self.rank is not None and self.rank == self.of - 1


def by_severity(bands: Sequence[BandRange], direction: str | None) -> tuple[BandRange, ...] | None:
    """The bands from the least to the most severe, or None when the direction is unknown."""
    if direction == LOWER_IS_BETTER:
        return tuple(sorted(bands, key=lambda band: (band.low, band.high)))
    if direction == HIGHER_IS_BETTER:
        return tuple(sorted(bands, key=lambda band: (band.high, band.low), reverse=True))
    return None


def most_severe(bands: Sequence[BandRange], direction: str | None) -> BandRange | None:
    """The band at the worse end of the score's range (None without bands or a direction)."""
    ordered = by_severity(bands, direction)
    return ordered[-1] if ordered else None


def ramp_colour(rank: int, count: int, top: int = len(RAMP) - 1) -> str:
    """The ramp step for the ``rank``-th least severe of ``count`` bands: first palest, last ``RAMP[top]``."""
    if count <= 1:
        return RAMP[0]
    step = rank * top / (count - 1)
    return RAMP[int(step + 0.5)]


def shades(bands: Sequence[BandRange], direction: str | None) -> dict[BandRange, Shade]:
    """Each band's shade: its place on the ramp by severity (neutral when the direction is unknown)."""
    ordered = by_severity(bands, direction)
    if ordered is None:
        return {band: Shade(None, len(bands), NEUTRAL) for band in bands}
    alarming = any(band.band.severity in ("warning", "critical") for band in ordered)
    top = len(RAMP) - 1 if alarming else INFO_TOP
    return {band: Shade(rank, len(ordered), ramp_colour(rank, len(ordered), top)) for rank, band in enumerate(ordered)}


def band_concern(severity: str | None, most_severe_band: bool) -> str | None:
    """Why a latest score's band needs a clinician's attention: ``most-severe`` (the worst band of its score,
    when that band is marked warning or critical), ``critical`` (a band marked critical), else None."""
    if most_severe_band and severity in ("warning", "critical"):
        return "most-severe"
    if severity == "critical":
        return "critical"
    return None
