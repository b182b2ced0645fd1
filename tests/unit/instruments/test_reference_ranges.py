"""Each built-in score's Observation carries the instrument's published bands as its referenceRange.

The bands below are written out from the instrument fact sheets (the published severity bands and cut-offs),
not read from the Questionnaires, so a band changed in a definition by mistake fails here.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from service.extraction import SCORE_UNIT, extract_observations
from service.scoring import score_response
from tests.unit.instruments.library import build_response, cases, questionnaire, score_items, slugs

# score linkId -> (low, high, a word the band's name contains), inclusive bounds in score order
PUBLISHED: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "phq-9": {  # Kroenke 2001: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20-27 severe
        "/44261-6": [
            ("0", "4", "minimal"),
            ("5", "9", "mild"),
            ("10", "14", "moderate"),
            ("15", "19", "moderately severe"),
            ("20", "27", "severe"),
        ]
    },
    "gad-7": {
        "/70274-6": [("0", "4", "minimal"), ("5", "9", "mild"), ("10", "14", "moderate"), ("15", "21", "severe")]
    },
    "phq-2": {"/55758-7": [("0", "2", "below"), ("3", "6", "3 or more")]},
    "gad-2": {"gad-2-total": [("0", "2", "below"), ("3", "6", "3 or more")]},
    "k10": {  # AIHW METeOR 376091 (Andrews and Slade); K6 cut-offs 5 and 13 (Prochaska 2012)
        "k10-total": [("10", "19", "low"), ("20", "24", "mild"), ("25", "29", "moderate"), ("30", "50", "severe")],
        "k6-total": [("0", "4", "low"), ("5", "12", "moderate"), ("13", "24", "serious")],
    },
    "k6": {"k6-total": [("0", "4", "low"), ("5", "12", "moderate"), ("13", "24", "serious")]},
    "core-10": {  # clinical cut-off 11, then 15, 20, 25; the score has one decimal place, so [11, 15) is 11-14.9
        "core-10-clinical-score": [
            ("0", "10.9", "non-clinical"),
            ("11", "14.9", "mild"),
            ("15", "19.9", "moderate"),
            ("20", "24.9", "moderate-to-severe"),
            ("25", "40", "severe"),
        ]
    },
    "dialog": {  # below 4 dissatisfied, 4 neutral, above 4 satisfied (means of 1-7 ratings)
        "dialog-sqol": [("1", "3.99", "dissatisfaction"), ("4", "4", "neutral"), ("4.01", "7", "satisfaction")],
        "dialog-treatment": [("1", "3.99", "dissatisfaction"), ("4", "4", "neutral"), ("4.01", "7", "satisfaction")],
    },
}


def _bound(value: str) -> dict[str, Any]:
    number = Decimal(value)
    return {"value": int(number) if number == number.to_integral_value() else float(number), **SCORE_UNIT}


def _observations(slug: str) -> dict[str, dict[str, Any]]:
    """The score Observations of every golden case of the instrument, by score linkId (the last one seen)."""
    definition = questionnaire(slug)
    found: dict[str, dict[str, Any]] = {}
    for case in cases(slug):
        response = build_response(definition, case)
        if response["status"] != "completed":
            continue
        result = score_response(copy.deepcopy(definition), response)
        extracted = extract_observations(
            definition,
            result.response,
            result.scores,
            {},
            response_reference="QuestionnaireResponse/golden",
            issued="2026-11-23T09:00:00Z",
            ids=lambda key: key.strip("/"),
            reference=lambda id_: f"Observation/{id_}",
        )
        found.update((member.key, member.resource) for member in extracted if member.key != "panel")
    return found


def test_every_banded_score_of_the_library_is_listed() -> None:
    banded = {
        slug: sorted(item["linkId"] for item in score_items(questionnaire(slug)) if "score-band" in str(item))
        for slug in slugs()
    }
    # a newly banded instrument needs its published bands written out here
    assert {slug: found for slug, found in banded.items() if found} == {
        slug: sorted(scores) for slug, scores in PUBLISHED.items()
    }


@pytest.mark.parametrize("slug", sorted(PUBLISHED))
def test_reference_ranges_are_the_published_bands(slug: str) -> None:
    observations = _observations(slug)
    for link_id, bands in PUBLISHED[slug].items():
        assert link_id in observations, f"{slug}: no golden case makes {link_id}"
        ranges = observations[link_id]["referenceRange"]
        assert [(r["low"], r["high"]) for r in ranges] == [(_bound(low), _bound(high)) for low, high, _ in bands]
        for found, (_, _, word) in zip(ranges, bands, strict=True):
            assert word in found["text"].lower(), f"{link_id}: {found['text']!r} is not the {word!r} band"
        for before, after in zip(bands, bands[1:], strict=False):
            assert Decimal(before[1]) < Decimal(after[0]), f"{link_id}: published bands overlap"


def test_integer_bands_leave_no_integer_between_them() -> None:
    ranges = _observations("phq-9")["/44261-6"]["referenceRange"]
    covered = [n for n in range(0, 28) for r in ranges if r["low"]["value"] <= n <= r["high"]["value"]]
    assert covered == list(range(0, 28))  # every total in exactly one band
