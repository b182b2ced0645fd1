"""Server-rendered SVG charts: a score's trend with its bands shaded and reliable change marked; an item profile.

The SVG carries its meaning in shapes and words as well as colours (bands are labelled, reliable change is a
distinct marker with a word beside it) and is an ``img`` with a title and description; the page shows the
same data as a table. Colours are presentation attributes, not inline styles, so a strict CSP holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from service.app_ui.history import ScorePoint, ScoreSeries, format_date, format_number
from service.app_ui.profile import ItemRating
from service.scoring.interpret import BandRange

WIDTH = 640
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 44, 176, 16, 40
SEVERITY_FILLS = {
    "info": ("#e3f1e6", "#cfe6d5"),
    "warning": ("#fbeecd", "#f6e0a6"),
    "critical": ("#f8d9d9", "#f0bcbc"),
}
LINE = "#1f4e79"
TEXT = "#1b1b1b"
MUTED = "#4a4a4a"
EPOCH = datetime(1970, 1, 1)
CHANGE_LABELS = {"improved": "better", "deteriorated": "worse"}
CHANGE_TITLES = {
    "improved": "reliable improvement",
    "deteriorated": "reliable deterioration",
    "no-reliable-change": "no reliable change",
}


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Scale:
    """A linear map from a domain to pixels."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        if self.high == self.low:
            return (self.start + self.end) / 2
        return self.start + (value - self.low) * (self.end - self.start) / (self.high - self.low)


def value_domain(series: ScoreSeries) -> tuple[float, float]:
    """The score range to draw: the instrument's own range where it gives one, widened to fit every value."""
    values = [point.value for point in series.points]
    low = series.definition.minimum if series.definition.minimum is not None else min(values)
    high = series.definition.maximum if series.definition.maximum is not None else max(values)
    low, high = min(low, *values), max(high, *values)
    if low == high:
        low, high = low - 1, high + 1
    return low, high


def band_edges(bands: Sequence[BandRange], low: float, high: float) -> list[tuple[BandRange, float, float]]:
    """Each band's shaded extent: gaps between bands (4 to 5 on an integer score) are split between them."""
    ordered = sorted(bands, key=lambda band: band.low)
    edges = []
    for index, band in enumerate(ordered):
        bottom, top = float(band.low), float(band.high)
        if index > 0 and float(ordered[index - 1].high) < bottom:
            bottom = (float(ordered[index - 1].high) + bottom) / 2
        if index + 1 < len(ordered) and top < float(ordered[index + 1].low):
            top = (top + float(ordered[index + 1].low)) / 2
        bottom, top = max(bottom, low), min(top, high)
        if top > bottom:
            edges.append((band, bottom, top))
    return edges


def band_rects(bands: Sequence[BandRange], y: Scale, x_start: float, x_end: float) -> list[str]:
    """Shaded, labelled rectangles, one per band (a label names the band and its range, so colour is not needed)."""
    parts = []
    shade_by_severity: dict[str, int] = {}
    for band, bottom, top in band_edges(bands, y.low, y.high):
        severity = band.band.severity if band.band.severity in SEVERITY_FILLS else "info"
        shade = shade_by_severity.get(severity, 0)
        shade_by_severity[severity] = shade + 1
        fill = SEVERITY_FILLS[severity][shade % 2]
        y_top, y_bottom = y(top), y(bottom)
        label = f"{band.band.display} ({format_number(float(band.low))}–{format_number(float(band.high))})"
        parts.append(
            f'<g class="band band-{_attr(severity)}" data-band="{_attr(band.band.code)}">'
            f'<rect x="{_n(x_start)}" y="{_n(y_top)}" width="{_n(x_end - x_start)}" '
            f'height="{_n(y_bottom - y_top)}" fill="{fill}"/>'
            f'<line x1="{_n(x_start)}" x2="{_n(x_end)}" y1="{_n(y_top)}" y2="{_n(y_top)}" stroke="#ffffff" '
            'stroke-width="1"/>'
            f'<text x="{_n(x_end + 6)}" y="{_n((y_top + y_bottom) / 2 + 4)}" font-size="11" fill="{TEXT}">'
            f"{escape(label)}</text></g>"
        )
    return parts


def _ticks(low: float, high: float, bands: Sequence[BandRange]) -> list[float]:
    if bands:
        ticks = {low, high} | {float(band.low) for band in bands if low <= float(band.low) <= high}
        return sorted(ticks)
    step = (high - low) / 4
    return [low + step * index for index in range(5)]


def _seconds(when: datetime) -> float:
    return (when - EPOCH).total_seconds()


def _short_date(point: ScorePoint) -> str:
    return f"{point.when.day} {point.when:%b %y}"


def _marker(point: ScorePoint, x: float, y: float) -> str:
    change = point.change if point.change in CHANGE_LABELS else None
    summary = f"{format_date(point.when)}: {format_number(point.value)}"
    if point.band is not None:
        summary += f", {point.band.display}"
    if point.change in CHANGE_TITLES:
        summary += f"; {CHANGE_TITLES[point.change]}"
    common = (
        f'data-date="{point.when:%Y-%m-%d}" data-value="{_attr(format_number(point.value))}" '
        f'data-change="{_attr(point.change or "none")}"'
    )
    if change == "improved":
        shape = (
            f'<polygon points="{_n(x)},{_n(y - 8)} {_n(x + 8)},{_n(y)} {_n(x)},{_n(y + 8)} {_n(x - 8)},{_n(y)}" '
            f'fill="#ffffff" stroke="#13652b" stroke-width="3"/>'
        )
    elif change == "deteriorated":
        shape = (
            f'<rect x="{_n(x - 7)}" y="{_n(y - 7)}" width="14" height="14" fill="#ffffff" stroke="#a4161a" '
            'stroke-width="3"/>'
        )
    else:
        shape = f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4.5" fill="{LINE}"/>'
    label = ""
    if change is not None:
        label = (
            f'<text x="{_n(x)}" y="{_n(y - 12)}" font-size="11" font-weight="bold" text-anchor="middle" '
            f'fill="{TEXT}">{CHANGE_LABELS[change]}</text>'
        )
    css = f"point point-{change}" if change else "point"
    return f'<g class="{css}" {common}><title>{escape(summary)}</title>{shape}{label}</g>'


def describe_trend(series: ScoreSeries) -> str:
    """The chart in one paragraph, for its ``desc`` (the page also has the full table)."""
    points = series.points
    first, last = points[0], points[-1]
    text = f"{len(points)} result{'s' if len(points) != 1 else ''}"
    if len(points) > 1:
        text += f" from {format_date(first.when)} to {format_date(last.when)}"
    else:
        text += f" on {format_date(first.when)}"
    text += f"; latest {format_number(last.value)}"
    if last.band is not None:
        text += f" ({last.band.display})"
    text += "."
    if series.definition.bands:
        bands = ", ".join(
            f"{band.band.display} {format_number(float(band.low))} to {format_number(float(band.high))}"
            for band in series.definition.bands
        )
        text += f" Shaded bands: {bands}."
    marked = [point for point in points if point.change in CHANGE_LABELS]
    for point in marked:
        text += f" Reliable {'improvement' if point.change == 'improved' else 'deterioration'} on "
        text += f"{format_date(point.when)}."
    if series.definition.direction:
        text += f" {series.definition.direction.replace('-', ' ').capitalize()}."
    return text


def trend_chart(series: ScoreSeries, chart_id: str) -> str:
    """One score over time as an SVG ``img``: bands shaded and labelled, reliable change marked."""
    low, high = value_domain(series)
    x_start, x_end = float(LEFT), float(WIDTH - RIGHT)
    y = Scale(low, high, float(HEIGHT - BOTTOM), float(TOP))
    times = [_seconds(point.when) for point in series.points]
    x = Scale(min(times), max(times), x_start + 16, x_end - 16)
    title = f"{series.definition.text} over time"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart trend" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{_attr(chart_id)}-title {_attr(chart_id)}-desc" focusable="false">',
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{_attr(chart_id)}-desc">{escape(describe_trend(series))}</desc>',
        *band_rects(series.definition.bands, y, x_start, x_end),
        f'<rect x="{_n(x_start)}" y="{TOP}" width="{_n(x_end - x_start)}" height="{HEIGHT - TOP - BOTTOM}" '
        f'fill="none" stroke="{MUTED}" stroke-width="1"/>',
    ]
    for tick in _ticks(low, high, series.definition.bands):
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{_n(y(tick) + 4)}" font-size="11" text-anchor="end" '
            f'fill="{TEXT}">{escape(format_number(tick))}</text>'
        )
    labelled = series.points if len(series.points) <= 6 else [series.points[0], series.points[-1]]
    for point in labelled:
        parts.append(
            f'<text class="tick" x="{_n(x(_seconds(point.when)))}" y="{HEIGHT - BOTTOM + 18}" font-size="11" '
            f'text-anchor="middle" fill="{TEXT}">{escape(_short_date(point))}</text>'
        )
    coordinates = [(x(_seconds(point.when)), y(point.value)) for point in series.points]
    if len(coordinates) > 1:
        path = " ".join(f"{_n(px)},{_n(py)}" for px, py in coordinates)
        parts.append(f'<polyline class="trend-line" points="{path}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    for point, (px, py) in zip(series.points, coordinates, strict=True):
        parts.append(_marker(point, px, py))
    parts.append("</svg>")
    return "".join(parts)


PROFILE_ROW = 30
PROFILE_LABEL = 262
PROFILE_BAR = 200
PROFILE_CHARS = 40


def _truncate(text: str, limit: int = PROFILE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def profile_chart(
    ratings: Sequence[ItemRating],
    chart_id: str,
    title: str,
    *,
    strengths: Sequence[str] = (),
    priorities: Sequence[str] = (),
) -> str:
    """Each rated item as a horizontal bar (longer = more favourable); strengths and priorities are named."""
    height = TOP + PROFILE_ROW * len(ratings) + 8
    bar_start = PROFILE_LABEL + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart profile" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{_attr(chart_id)}-title {_attr(chart_id)}-desc" focusable="false">',
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{_attr(chart_id)}-desc">{len(ratings)} items, each bar from the least to the most favourable '
        "answer on that item's scale. " + escape(" ".join(f"{r.text}: {r.answer}." for r in ratings)) + "</desc>",
    ]
    for index, rating in enumerate(ratings):
        top = TOP + index * PROFILE_ROW
        role = "strength" if rating.link_id in strengths else "priority" if rating.link_id in priorities else ""
        fill = "#13652b" if role == "strength" else "#a4161a" if role == "priority" else LINE
        width = max(2.0, rating.relative * PROFILE_BAR)
        note = f"{rating.answer}" + (f" ({role})" if role else "")
        parts.append(
            f'<g class="bar{" bar-" + role if role else ""}" data-link-id="{_attr(rating.link_id)}" '
            f'data-relative="{rating.relative:.3f}"><title>{escape(rating.text)}: {escape(note)}</title>'
            f'<text x="{PROFILE_LABEL}" y="{top + 18}" font-size="12" text-anchor="end" fill="{TEXT}">'
            f"{escape(_truncate(rating.text))}</text>"
            f'<rect x="{bar_start}" y="{top + 6}" width="{PROFILE_BAR}" height="16" fill="#eeeeee"/>'
            f'<rect x="{bar_start}" y="{top + 6}" width="{_n(width)}" height="16" fill="{fill}"/>'
            f'<text x="{bar_start + PROFILE_BAR + 6}" y="{top + 18}" font-size="11" fill="{TEXT}">'
            f"{escape(_truncate(note, 27))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
