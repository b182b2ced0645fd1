"""Server-rendered charts: a score's trend over its severity-shaded bands with reliable change marked; answer bars.

Text in a chart must stay readable on a phone, so the trend is not one scaled drawing: it is a fixed-height
SVG whose horizontal positions are percentages (it stretches to any width while its text keeps its size in
CSS pixels), beside a narrow SVG holding the score axis. Band names are HTML (``band_key``), so they wrap
instead of being cut. Bands are shaded on one ramp by severity (service.app_ui.bands). Meaning is carried
in shapes and words as well as colour: reliable change is a distinct marker with a word beside it, and the
chart is an ``img`` with a title and a description; the page shows the same data as a table. Colours are
presentation attributes, not inline styles, so a strict CSP holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from service.app_ui.bands import band_concern, shades
from service.app_ui.history import ScorePoint, ScoreSeries, format_date, format_number
from service.app_ui.profile import ItemRating
from service.scoring.results import Band, BandRange

FONT_SIZE = 14  # CSS pixels: the SVG is never scaled, so this is the size on every screen
TOP, PLOT_HEIGHT, BOTTOM = 24, 180, 30
HEIGHT = TOP + PLOT_HEIGHT + BOTTOM
AXIS_WIDTH = 44
X_FIRST, X_LAST = 5.0, 95.0  # where the first and last results sit, in percent of the plot's width
MIN_TICK_GAP = FONT_SIZE + 3  # pixels between two score labels on the axis
LINE = "#102a43"
TEXT = "#1b1b1b"
BORDER = "#5f6b76"
BAND_EDGE = "#8a8a8a"
IMPROVED = "#13652b"
DETERIORATED = "#8b1014"
BAR = "#102a43"
SAFETY_BAR = "#8b1014"
BAR_TRACK = "#e6e6e6"
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
    """A linear map from a domain to pixels (or percent)."""

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


def band_range_text(band: BandRange) -> str:
    return f"{format_number(float(band.low))}–{format_number(float(band.high))}"


def band_rects(series: ScoreSeries, y: Scale) -> list[str]:
    """One shaded rectangle per band, coloured by its severity (the names are in the key beside the chart)."""
    colours = shades(series.definition.bands, series.definition.direction)
    parts = []
    for band, bottom, top in band_edges(series.definition.bands, y.low, y.high):
        shade = colours[band]
        y_top, y_bottom = y(top), y(bottom)
        edge = ""
        if y_top > TOP + 0.5:  # the line between two bands (the plot's border draws the top one)
            edge = (
                f'<line x1="0" x2="100%" y1="{_n(y_top)}" y2="{_n(y_top)}" stroke="{BAND_EDGE}" '
                'stroke-width="1" stroke-dasharray="4 3"/>'
            )
        parts.append(
            f'<g class="band" data-band="{_attr(band.band.code)}" data-rank="{_attr(shade.rank)}">'
            f'<rect x="0" y="{_n(y_top)}" width="100%" height="{_n(y_bottom - y_top)}" fill="{shade.colour}"/>'
            f"{edge}</g>"
        )
    return parts


def axis_ticks(low: float, high: float, bands: Sequence[BandRange], y: Scale) -> list[float]:
    """The scores named on the axis: the range's ends and where each band starts, never crowding each other."""
    if bands:
        candidates = sorted({low, high} | {float(band.low) for band in bands if low <= float(band.low) <= high})
    else:
        step = (high - low) / 4
        candidates = [low + step * index for index in range(5)]
    chosen = [low, high]
    for value in candidates:
        if all(abs(y(value) - y(other)) >= MIN_TICK_GAP for other in chosen):
            chosen.append(value)
    return sorted(chosen)


def _seconds(when: datetime) -> float:
    return (when - EPOCH).total_seconds()


def _short_date(point: ScorePoint) -> str:
    return f"{point.when.day} {point.when:%b %Y}"


def _anchor(x: float) -> str:
    """Labels near an edge grow inwards, so they are never cut off."""
    return "start" if x < 12 else "end" if x > 88 else "middle"


def _marker(point: ScorePoint, x: float, y: float) -> str:
    """A result: a dot; a reliable improvement a diamond and "better"; a reliable deterioration a square and
    "worse" (x in percent, y in pixels; shapes are drawn in a nested SVG placed at the point)."""
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
        shape = f'<polygon points="0,-9 9,0 0,9 -9,0" fill="#ffffff" stroke="{IMPROVED}" stroke-width="3"/>'
    elif change == "deteriorated":
        shape = (
            f'<rect x="-7.5" y="-7.5" width="15" height="15" fill="#ffffff" stroke="{DETERIORATED}" stroke-width="3"/>'
        )
    else:
        shape = f'<circle cx="0" cy="0" r="5" fill="{LINE}" stroke="#ffffff" stroke-width="1.5"/>'
    label = ""
    if change is not None:
        label = (
            f'<text x="{_n(x)}%" y="{_n(y - 13)}" font-size="{FONT_SIZE}" font-weight="bold" '
            f'text-anchor="{_anchor(x)}" fill="{TEXT}">{CHANGE_LABELS[change]}</text>'
        )
    css = f"point point-{change}" if change else "point"
    return (
        f'<g class="{css}" {common}><title>{escape(summary)}</title>'
        f'<svg x="{_n(x)}%" y="{_n(y)}" overflow="visible">{shape}</svg>{label}</g>'
    )


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
    """One score over time: the score axis, then the plot (an ``img``) with its bands, results and change."""
    low, high = value_domain(series)
    y = Scale(low, high, float(TOP + PLOT_HEIGHT), float(TOP))
    times = [_seconds(point.when) for point in series.points]
    x = Scale(min(times), max(times), X_FIRST, X_LAST)
    axis = [
        f'<svg class="trend-axis" width="{AXIS_WIDTH}" height="{HEIGHT}" aria-hidden="true" focusable="false">',
        *(
            f'<text class="tick" x="{AXIS_WIDTH - 6}" y="{_n(y(tick) + FONT_SIZE / 3)}" font-size="{FONT_SIZE}" '
            f'text-anchor="end" fill="{TEXT}">{escape(format_number(tick))}</text>'
            for tick in axis_ticks(low, high, series.definition.bands, y)
        ),
        "</svg>",
    ]
    title = f"{series.definition.text} over time"
    plot = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart trend" width="100%" height="{HEIGHT}" role="img" '
        f'aria-labelledby="{_attr(chart_id)}-title {_attr(chart_id)}-desc" focusable="false">',
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{_attr(chart_id)}-desc">{escape(describe_trend(series))}</desc>',
        *band_rects(series, y),
        f'<rect x="0.5" y="{TOP}" width="100%" height="{PLOT_HEIGHT}" fill="none" stroke="{BORDER}" stroke-width="1"/>',
    ]
    first, last = series.points[0], series.points[-1]
    # Every date is in the table; the chart names the first and the last, which never collide on a narrow screen.
    dates = [("50%", "middle", first)] if len(series.points) == 1 else [("0", "start", first), ("100%", "end", last)]
    for position, anchor, point in dates:
        plot.append(
            f'<text class="tick" x="{position}" y="{TOP + PLOT_HEIGHT + FONT_SIZE + 8}" font-size="{FONT_SIZE}" '
            f'text-anchor="{anchor}" fill="{TEXT}">{escape(_short_date(point))}</text>'
        )
    coordinates = [(x(_seconds(point.when)), y(point.value)) for point in series.points]
    for (x1, y1), (x2, y2) in zip(coordinates, coordinates[1:], strict=False):
        plot.append(
            f'<line class="trend-line" x1="{_n(x1)}%" y1="{_n(y1)}" x2="{_n(x2)}%" y2="{_n(y2)}" stroke="{LINE}" '
            'stroke-width="2.5"/>'
        )
    for point, (px, py) in zip(series.points, coordinates, strict=True):
        plot.append(_marker(point, px, py))
    plot.append("</svg>")
    return f'<div class="trend-chart">{"".join(axis)}{"".join(plot)}</div>'


def band_key(series: ScoreSeries, latest: Band | None) -> str:
    """The bands named in full, top to bottom as the chart stacks them, each with its shade and range."""
    bands = series.definition.bands
    if not bands:
        return ""
    colours = shades(bands, series.definition.direction)
    items = []
    for band in sorted(bands, key=lambda b: (b.high, b.low), reverse=True):
        shade = colours[band]
        current = latest is not None and band.band == latest
        note = ' <strong class="band-current">← the latest result</strong>' if current else ""
        css = ' class="current"' if current else ""
        # Named as the dashboard names it: only where the instrument marks its worst band warning or critical.
        worst = " (most severe)" if band_concern(band.band.severity, shade.most_severe) == "most-severe" else ""
        items.append(
            f'<li data-band="{_attr(band.band.code)}"{css}>'
            f'<svg class="swatch" width="16" height="16" aria-hidden="true" focusable="false">'
            f'<rect x="0.5" y="0.5" width="15" height="15" fill="{shade.colour}" stroke="{BORDER}"/></svg> '
            f'<span class="band-range">{escape(band_range_text(band))}</span> '
            f'<span class="band-label">{escape(band.band.display)}{worst}{note}</span></li>'
        )
    if series.definition.direction:
        caption = "Darker shading: a more severe band."
    else:
        caption = "The score does not say which way is better, so the bands are not shaded by severity."
    return f'<div class="band-key"><p class="band-key-caption">{caption}</p><ul>{"".join(items)}</ul></div>'


def distance_bar(rating: ItemRating) -> str:
    """How far an answer is from the best answer on its item, as a bar: the longer, the worse (decorative:
    the page says the same in words)."""
    width = max(0.0, min(1.0, rating.distance)) * 100
    fill = SAFETY_BAR if rating.safety else BAR
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="distance-bar" width="100%" height="14" aria-hidden="true" '
        f'focusable="false" data-distance="{rating.distance:.3f}">'
        f'<rect x="0" y="0" width="100%" height="14" fill="{BAR_TRACK}"/>'
        f'<rect x="0" y="0" width="{_n(width)}%" height="14" fill="{fill}"/></svg>'
    )


@dataclass(frozen=True, slots=True)
class RateBar:
    label: str  # e.g. "Reliable improvement"
    numerator: int
    denominator: int
    words: str  # "2 of 5 (40%)"
    worse: bool = False  # a rate where lower is better (reliable deterioration)


RATE_ROW = 46


def rate_bars(bars: Sequence[RateBar], *, title: str, chart_id: str) -> str:
    """Outcome rates as horizontal bars, each labelled with its counts in words (the page has them as a table too)."""
    height = RATE_ROW * len(bars) + 4
    rows = []
    for index, bar in enumerate(bars):
        top = 2 + index * RATE_ROW
        share = bar.numerator / bar.denominator if bar.denominator else 0.0
        fill = DETERIORATED if bar.worse else BAR
        rows.append(
            f'<g class="rate" data-measure="{_attr(bar.label)}" data-numerator="{bar.numerator}" '
            f'data-denominator="{bar.denominator}">'
            f'<text x="0" y="{top + 15}" font-size="{FONT_SIZE}" fill="{TEXT}">{escape(bar.label)}: '
            f"{escape(bar.words)}</text>"
            f'<rect x="0" y="{top + 22}" width="100%" height="16" fill="{BAR_TRACK}"/>'
            f'<rect x="0" y="{top + 22}" width="{_n(share * 100)}%" height="16" fill="{fill}"/></g>'
        )
    description = "; ".join(f"{bar.label}: {bar.words}" for bar in bars) or "No rate can be counted"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart rates" width="100%" height="{height}" role="img" '
        f'aria-labelledby="{_attr(chart_id)}-title {_attr(chart_id)}-desc" focusable="false">'
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{_attr(chart_id)}-desc">{escape(description)}</desc>{"".join(rows)}</svg>'
    )
