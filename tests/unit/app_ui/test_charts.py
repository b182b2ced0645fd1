"""Charts: points, severity-shaded bands and change markers, in words too; readable text; escaped; answer bars."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from service.app_ui.bands import INFO_TOP, NEUTRAL, RAMP, by_severity, most_severe, ramp_colour, shades
from service.app_ui.charts import (
    FONT_SIZE,
    LINE,
    Scale,
    axis_ticks,
    band_edges,
    band_key,
    distance_bar,
    trend_chart,
)
from service.app_ui.history import ScoreDefinition, ScorePoint, ScoreSeries, instrument_histories, score_definitions
from service.app_ui.profile import ItemRating
from service.scoring.results import Band, BandRange
from tests.unit.app_ui.builders import questionnaire

SVG = "{http://www.w3.org/2000/svg}"


def _phq9_series(phq9: dict[str, Any], history: Any) -> ScoreSeries:
    responses, observations, _ = history
    return instrument_histories({phq9["url"]: phq9}, responses, observations)[0].series[0]


def _plot(markup: str) -> ET.Element:
    """The plot SVG of a chart (the part that is the image); the axis SVG beside it is decorative."""
    wrapper = ET.fromstring(markup)
    assert wrapper.tag == "div" and wrapper.get("class") == "trend-chart"
    axis, plot = list(wrapper)
    assert axis.get("aria-hidden") == "true" and "trend-axis" in (axis.get("class") or "")
    return plot


def test_trend_chart_is_an_image_with_a_title_and_a_description(phq9: dict[str, Any], phq9_history: Any) -> None:
    svg = _plot(trend_chart(_phq9_series(phq9, phq9_history), "phq9-total"))
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "phq9-total-title phq9-total-desc"
    assert svg.find(f"{SVG}title").text == "PHQ-9 total score (0–27) over time"  # type: ignore[union-attr]
    description = svg.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "3 results from 1 Jan 2026 to 1 Mar 2026; latest 19 (Moderately severe)." in description
    assert "Reliable improvement on 1 Feb 2026. Reliable deterioration on 1 Mar 2026." in description
    assert "Lower is better." in description


def test_chart_text_keeps_its_size_at_any_width(phq9: dict[str, Any], phq9_history: Any) -> None:
    """No viewBox anywhere: the SVGs are not scaled to fit, so a 13-14 px label is that size on a phone too."""
    markup = trend_chart(_phq9_series(phq9, phq9_history), "c")
    assert "viewBox" not in markup
    sizes = {float(size) for size in re.findall(r'font-size="([\d.]+)"', markup)}
    assert sizes == {FONT_SIZE} and FONT_SIZE >= 12
    plot = _plot(markup)
    assert plot.get("width") == "100%"  # stretches horizontally; positions along time are percentages
    xs = [line.get("x1") for line in plot.iter(f"{SVG}line") if line.get("class") == "trend-line"]
    assert xs and all((x or "").endswith("%") for x in xs)


def test_bands_are_shaded_darker_as_they_get_more_severe(phq9: dict[str, Any], phq9_history: Any) -> None:
    svg = _plot(trend_chart(_phq9_series(phq9, phq9_history), "c"))
    shaded = [g for g in svg.findall(f"{SVG}g") if g.get("class") == "band"]
    codes = [g.get("data-band") for g in shaded]
    assert codes == ["none-minimal", "mild", "moderate", "moderately-severe", "severe"]
    fills = [g.find(f"{SVG}rect").get("fill") for g in shaded]  # type: ignore[union-attr]
    ramp_steps = [RAMP.index(fill or "") for fill in fills]
    assert ramp_steps == sorted(ramp_steps) and len(set(ramp_steps)) == 5  # strictly darker up the scale
    assert fills[0] == RAMP[0] and fills[-1] == RAMP[-1]
    # Bands sit one above the other with no gap between 4 and 5: the shaded rectangles touch.
    rects = [g.find(f"{SVG}rect") for g in shaded]
    tops = [float(r.get("y")) for r in rects]  # type: ignore[union-attr, arg-type]
    bottoms = [float(r.get("y")) + float(r.get("height")) for r in rects]  # type: ignore[union-attr, arg-type]
    assert all(abs(bottoms[i + 1] - tops[i]) < 0.11 for i in range(4))


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_the_trend_line_stands_out_on_every_shade() -> None:
    for colour in (*RAMP, NEUTRAL):
        lighter, darker = sorted((_luminance(colour), _luminance(LINE)), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5, colour


def _bands(*spans: tuple[int, int, str], severity: str = "info") -> list[BandRange]:
    return [
        BandRange(Decimal(low), Decimal(high), Band(code, code.title(), "s", severity)) for low, high, code in spans
    ]


def test_severity_follows_the_scores_own_direction() -> None:
    bands = _bands((1, 3, "dissatisfied"), (4, 4, "neutral"), (5, 7, "satisfied"))
    assert [b.band.code for b in by_severity(bands, "higher-is-better") or ()] == [
        "satisfied",
        "neutral",
        "dissatisfied",
    ]
    assert [b.band.code for b in by_severity(bands, "lower-is-better") or ()] == [
        "dissatisfied",
        "neutral",
        "satisfied",
    ]
    assert most_severe(bands, "higher-is-better") == bands[0]
    assert most_severe(bands, "lower-is-better") == bands[2]
    # Without a direction nothing is called severe, and every band gets the same neutral shade.
    assert by_severity(bands, None) is None and most_severe(bands, None) is None
    assert {shade.colour for shade in shades(bands, None).values()} == {NEUTRAL}
    colours = shades(bands, "higher-is-better")
    assert [colours[b].colour for b in bands] == [RAMP[INFO_TOP], ramp_colour(1, 3, INFO_TOP), RAMP[0]]
    assert colours[bands[0]].most_severe and not colours[bands[2]].most_severe


def test_the_darkest_shades_are_kept_for_bands_marked_warning_or_critical() -> None:
    satisfaction = _bands((1, 3, "dissatisfied"), (4, 4, "neutral"), (5, 7, "satisfied"))  # all "info"
    calm = shades(satisfaction, "higher-is-better")
    assert calm[satisfaction[0]].colour == RAMP[INFO_TOP] and RAMP.index(RAMP[INFO_TOP]) < len(RAMP) - 1
    worrying = [*satisfaction[1:], replace(satisfaction[0], band=replace(satisfaction[0].band, severity="warning"))]
    assert shades(worrying, "higher-is-better")[worrying[-1]].colour == RAMP[-1]


@pytest.mark.parametrize("count", range(1, 9))
@pytest.mark.parametrize("top", [INFO_TOP, len(RAMP) - 1])
def test_the_ramp_grows_with_severity_whatever_the_number_of_bands(count: int, top: int) -> None:
    steps = [RAMP.index(ramp_colour(rank, count, top)) for rank in range(count)]
    assert steps == sorted(steps) and steps[0] == 0
    if count > 1:
        assert steps[-1] == top
    if count <= top + 1:
        assert len(set(steps)) == count  # never two bands of one score in the same shade


def test_the_band_key_names_every_band_in_full_top_down_and_marks_the_latest(
    phq9: dict[str, Any], phq9_history: Any
) -> None:
    series = _phq9_series(phq9, phq9_history)
    key = ET.fromstring(band_key(series, series.points[-1].band))
    items = key.findall(".//li")
    assert [li.get("data-band") for li in items] == ["severe", "moderately-severe", "moderate", "mild", "none-minimal"]
    texts = ["".join(li.itertext()).strip() for li in items]
    assert texts[0] == "20–27 Severe (most severe)"
    assert texts[1] == "15–19 Moderately severe ← the latest result"
    assert texts[-1] == "0–4 None/minimal"
    assert items[1].get("class") == "current"


def test_long_band_names_are_never_cut() -> None:
    core10 = questionnaire("core-10")
    definition = score_definitions(core10)[0]
    series = ScoreSeries(definition, (ScorePoint(datetime(2026, 1, 1), 32, None, None, None, "r"),))
    key = band_key(series, None)
    assert "Severe psychological distress (most severe)" in key
    dialog = score_definitions(questionnaire("dialog"))[0]  # its worst band is only "info": not called severe
    assert "most severe" not in band_key(ScoreSeries(dialog, series.points), None)
    for band in definition.bands:
        assert band.band.display in key  # e.g. "Moderate-to-severe psychological distress", whole
    assert "…" not in key


def test_trend_chart_marks_each_point_and_reliable_change_with_a_shape_and_a_word(
    phq9: dict[str, Any], phq9_history: Any
) -> None:
    svg = _plot(trend_chart(_phq9_series(phq9, phq9_history), "c"))
    points = [g for g in svg.iter(f"{SVG}g") if "point" in (g.get("class") or "").split()]
    assert [(g.get("data-date"), g.get("data-value"), g.get("data-change")) for g in points] == [
        ("2026-01-01", "18", "none"),
        ("2026-02-01", "11", "improved"),
        ("2026-03-01", "19", "deteriorated"),
    ]
    improved, worse = points[1], points[2]
    assert improved.find(f".//{SVG}polygon") is not None and improved.find(f"{SVG}text").text == "better"  # type: ignore[union-attr]
    assert worse.find(f".//{SVG}rect") is not None and worse.find(f"{SVG}text").text == "worse"  # type: ignore[union-attr]
    assert points[0].find(f".//{SVG}circle") is not None
    assert improved.find(f"{SVG}title").text == "1 Feb 2026: 11, Moderate; reliable improvement"  # type: ignore[union-attr]
    assert len([line for line in svg.iter(f"{SVG}line") if line.get("class") == "trend-line"]) == 2


def test_higher_points_are_drawn_higher_and_later_ones_further_right(phq9: dict[str, Any], phq9_history: Any) -> None:
    svg = _plot(trend_chart(_phq9_series(phq9, phq9_history), "c"))
    placed = [g.find(f"{SVG}svg") for g in svg.iter(f"{SVG}g") if "point" in (g.get("class") or "").split()]
    xs = [float((p.get("x") or "").rstrip("%")) for p in placed]  # type: ignore[union-attr]
    ys = [float(p.get("y") or 0) for p in placed]  # type: ignore[union-attr]
    assert xs == sorted(xs) and xs[0] >= 5 and xs[-1] <= 95
    assert ys[1] > ys[0] > ys[2]  # 11 is lowest on the page (largest y), 19 highest


def test_the_axis_names_band_starts_without_crowding() -> None:
    dialog = questionnaire("dialog")
    definition = score_definitions(dialog)[0]  # bands 1-3.99, 4-4, 4.01-7
    y = Scale(1, 7, 204, 24)
    ticks = axis_ticks(1, 7, definition.bands, y)
    assert ticks[0] == 1 and ticks[-1] == 7 and 4 in ticks
    assert 4.01 not in ticks  # 2 px from 4: both would be unreadable
    gaps = [abs(y(a) - y(b)) for a, b in zip(ticks, ticks[1:], strict=False)]
    assert min(gaps) >= FONT_SIZE


def _definition(**changes: Any) -> ScoreDefinition:
    base = ScoreDefinition("s", 'Score <&> "x"', (), (), None, None, None, None)
    return replace(base, **changes)


def test_a_single_point_without_bands_or_range_still_draws_and_escapes_text() -> None:
    series = ScoreSeries(_definition(), (ScorePoint(datetime(2026, 1, 1), 3.5, None, None, None, "r"),))
    markup = trend_chart(series, 'id"<')
    svg = _plot(markup)  # well-formed despite the hostile text
    assert svg.find(f"{SVG}title").text == 'Score <&> "x" over time'  # type: ignore[union-attr]
    assert 'class="trend-line"' not in markup
    assert 'aria-labelledby="id&quot;&lt;-title id&quot;&lt;-desc"' in markup
    assert band_key(series, None) == ""


def test_band_edges_split_gaps_and_clip_to_the_drawn_range() -> None:
    bands = _bands((5, 9, "mild"), (0, 4, "none"), (10, 30, "high"))
    edges = [(band.band.code, low, high) for band, low, high in band_edges(bands, 0, 27)]
    assert edges == [("none", 0.0, 4.5), ("mild", 4.5, 9.5), ("high", 9.5, 27.0)]


def test_scale_maps_linearly_and_centres_a_single_value() -> None:
    assert Scale(0, 10, 200, 0)(5) == 100
    assert Scale(3, 3, 0, 100)(3) == 50


def _rating(link_id: str, relative: float, *, safety: bool = False) -> ItemRating:
    return ItemRating(link_id, f"Item {link_id}", "Agree", 3, 0, 4, relative, None, True, safety=safety)


def test_an_answer_bar_is_longer_the_worse_the_answer() -> None:
    widths = []
    for relative in (1.0, 0.5, 0.0):
        bar = ET.fromstring(distance_bar(_rating("a", relative)))
        assert bar.get("aria-hidden") == "true"  # the page gives the distance in words as well
        track, filled = bar.findall(f"{SVG}rect")
        widths.append(float((filled.get("width") or "").rstrip("%")))
    assert widths == [0.0, 50.0, 100.0]
    safety = ET.fromstring(distance_bar(_rating("9", 0.0, safety=True)))
    assert safety.findall(f"{SVG}rect")[1].get("fill") != ET.fromstring(distance_bar(_rating("a", 0.0))).findall(
        f"{SVG}rect"
    )[1].get("fill")
