"""SVG charts: the points, shaded bands and change markers are there, labelled in words, and text is escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.app_ui.charts import Scale, band_edges, profile_chart, trend_chart
from service.app_ui.history import ScoreDefinition, ScorePoint, ScoreSeries, instrument_histories
from service.app_ui.profile import ItemRating
from service.scoring.interpret import BandRange
from service.scoring.results import Band

SVG = "{http://www.w3.org/2000/svg}"


def _phq9_series(phq9: dict[str, Any], history: Any) -> ScoreSeries:
    responses, observations, _ = history
    return instrument_histories({phq9["url"]: phq9}, responses, observations)[0].series[0]


def test_trend_chart_is_an_image_with_a_title_and_a_description(phq9: dict[str, Any], phq9_history: Any) -> None:
    svg = ET.fromstring(trend_chart(_phq9_series(phq9, phq9_history), "phq9-total"))
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "phq9-total-title phq9-total-desc"
    assert svg.find(f"{SVG}title").text == "PHQ-9 total score (0–27) over time"  # type: ignore[union-attr]
    description = svg.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "3 results from 1 Jan 2026 to 1 Mar 2026; latest 19 (Moderately severe)." in description
    assert "Reliable improvement on 1 Feb 2026. Reliable deterioration on 1 Mar 2026." in description
    assert "Lower is better." in description


def test_trend_chart_shades_and_names_every_band(phq9: dict[str, Any], phq9_history: Any) -> None:
    svg = ET.fromstring(trend_chart(_phq9_series(phq9, phq9_history), "c"))
    bands = svg.findall(f"{SVG}g[@class]")
    shaded = [g for g in bands if "band" in (g.get("class") or "").split()]
    assert [g.get("data-band") for g in shaded] == ["none-minimal", "mild", "moderate", "moderately-severe", "severe"]
    labels = [g.find(f"{SVG}text").text for g in shaded]  # type: ignore[union-attr]
    assert labels[0] == "None/minimal (0–4)" and labels[-1] == "Severe (20–27)"
    # Bands sit one above the other with no gap between 4 and 5: the shaded rectangles touch.
    rects = [g.find(f"{SVG}rect") for g in shaded]
    tops = [float(r.get("y")) for r in rects]  # type: ignore[union-attr, arg-type]
    bottoms = [float(r.get("y")) + float(r.get("height")) for r in rects]  # type: ignore[union-attr, arg-type]
    assert all(abs(bottoms[i + 1] - tops[i]) < 0.11 for i in range(4))
    assert {g.get("class") for g in shaded} == {"band band-info", "band band-warning"}


def test_trend_chart_marks_each_point_and_reliable_change_with_a_shape_and_a_word(
    phq9: dict[str, Any], phq9_history: Any
) -> None:
    svg = ET.fromstring(trend_chart(_phq9_series(phq9, phq9_history), "c"))
    points = [g for g in svg.iter(f"{SVG}g") if "point" in (g.get("class") or "").split()]
    assert [(g.get("data-date"), g.get("data-value"), g.get("data-change")) for g in points] == [
        ("2026-01-01", "18", "none"),
        ("2026-02-01", "11", "improved"),
        ("2026-03-01", "19", "deteriorated"),
    ]
    improved, worse = points[1], points[2]
    assert improved.find(f"{SVG}polygon") is not None and improved.find(f"{SVG}text").text == "better"  # type: ignore[union-attr]
    assert worse.find(f"{SVG}rect") is not None and worse.find(f"{SVG}text").text == "worse"  # type: ignore[union-attr]
    assert points[0].find(f"{SVG}circle") is not None
    assert improved.find(f"{SVG}title").text == "1 Feb 2026: 11, Moderate; reliable improvement"  # type: ignore[union-attr]
    line = svg.find(f"{SVG}polyline")
    assert line is not None and len((line.get("points") or "").split()) == 3


def test_higher_points_are_drawn_higher(phq9: dict[str, Any], phq9_history: Any) -> None:
    markup = trend_chart(_phq9_series(phq9, phq9_history), "c")
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', markup)]
    polyline = re.search(r'<polyline class="trend-line" points="([^"]+)"', markup)
    assert polyline is not None
    heights = [float(pair.split(",")[1]) for pair in polyline.group(1).split()]
    assert heights[1] > heights[0] > heights[2]  # 11 is lowest on the page (largest y), 19 highest
    assert ys == [heights[0]]


def _definition(**changes: Any) -> ScoreDefinition:
    base = ScoreDefinition("s", 'Score <&> "x"', (), (), None, None, None, None)
    return replace(base, **changes)


def test_a_single_point_without_bands_or_range_still_draws_and_escapes_text() -> None:
    series = ScoreSeries(_definition(), (ScorePoint(datetime(2026, 1, 1), 3.5, None, None, None, "r"),))
    markup = trend_chart(series, 'id"<')
    svg = ET.fromstring(markup)  # well-formed despite the hostile text
    assert svg.find(f"{SVG}title").text == 'Score <&> "x" over time'  # type: ignore[union-attr]
    assert "<polyline" not in markup
    assert 'aria-labelledby="id&quot;&lt;-title id&quot;&lt;-desc"' in markup


def _band(low: int, high: int, code: str) -> BandRange:
    return BandRange(Decimal(low), Decimal(high), Band(code, code.title(), "s", "info"))


def test_band_edges_split_gaps_and_clip_to_the_drawn_range() -> None:
    bands = [_band(5, 9, "mild"), _band(0, 4, "none"), _band(10, 30, "high")]
    edges = [(band.band.code, low, high) for band, low, high in band_edges(bands, 0, 27)]
    assert edges == [("none", 0.0, 4.5), ("mild", 4.5, 9.5), ("high", 9.5, 27.0)]


def test_scale_maps_linearly_and_centres_a_single_value() -> None:
    assert Scale(0, 10, 200, 0)(5) == 100
    assert Scale(3, 3, 0, 100)(3) == 50


def _rating(link_id: str, relative: float) -> ItemRating:
    return ItemRating(link_id, f"Item {link_id}", "Agree", 3, 0, 4, relative, None, True)


def test_profile_chart_has_a_bar_per_item_sized_by_rating_and_names_strengths_and_priorities() -> None:
    ratings = [_rating("a", 1.0), _rating("b", 0.0), _rating("c", 0.5)]
    svg = ET.fromstring(profile_chart(ratings, "p", "QPR: latest", strengths=["a"], priorities=["b"]))
    assert svg.get("role") == "img" and svg.find(f"{SVG}title").text == "QPR: latest"  # type: ignore[union-attr]
    bars = [g for g in svg.iter(f"{SVG}g") if "bar" in (g.get("class") or "").split()]
    assert [(g.get("data-link-id"), g.get("class"), g.get("data-relative")) for g in bars] == [
        ("a", "bar bar-strength", "1.000"),
        ("b", "bar bar-priority", "0.000"),
        ("c", "bar", "0.500"),
    ]
    widths = [float(g.findall(f"{SVG}rect")[1].get("width") or 0) for g in bars]
    assert widths[0] > widths[2] > widths[1] > 0  # even the least favourable answer shows a sliver
    notes = [g.findall(f"{SVG}text")[1].text for g in bars]
    assert notes == ["Agree (strength)", "Agree (priority)", "Agree"]
