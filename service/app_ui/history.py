"""A person's score history per instrument, from their stored responses and the Observations scored from them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.extraction import CHANGE_EXTENSION, INTERPRETATION
from service.fhir.dates import InvalidDate, date_range
from service.scoring import extensions as ext
from service.scoring.interpret import band_for, bands_of, decimal_extension, direction_of
from service.scoring.results import Band, BandRange

MIN_VALUE = ext.CORE + "minValue"
MAX_VALUE = ext.CORE + "maxValue"
SCORE_TYPES = ("integer", "decimal", "quantity")
# Observation.interpretation codes for reliable change, for Observations without the project's extension.
CHANGE_CODES = {"B": "improved", "W": "deteriorated"}
_TRAILING_RANGE = re.compile(r"\s*\([^()]*\d[^()]*\)\s*$")


@dataclass(frozen=True)
class ScoreDefinition:
    """One calculated score of an instrument, with what the charts and words need to interpret it."""

    link_id: str
    text: str
    codes: tuple[tuple[str, str], ...]  # (system, code) of the score item's codes
    bands: tuple[BandRange, ...]
    direction: str | None  # higher-is-better | lower-is-better
    reliable_change: float | None
    minimum: float | None
    maximum: float | None

    @property
    def name(self) -> str:
        return short_score_name(self.text)


def short_score_name(text: str) -> str:
    """A score item's text without its explanation or range: 'PHQ-9 total score (0–27)' -> 'PHQ-9 total score',
    'Subjective quality of life: mean of items 1-8 (1–7)' -> 'Subjective quality of life'."""
    name = _TRAILING_RANGE.sub("", text.split(":")[0]).strip()
    return name or text


@dataclass(frozen=True)
class ScorePoint:
    when: datetime  # UTC, naive
    value: float
    band: Band | None
    change: str | None  # improved | deteriorated | no-reliable-change | unknown; None: nothing to compare with
    difference: float | None  # this score minus the previous one
    response_id: str | None


@dataclass(frozen=True)
class ScoreSeries:
    definition: ScoreDefinition
    points: tuple[ScorePoint, ...]  # oldest first


@dataclass(frozen=True)
class InstrumentHistory:
    url: str
    questionnaire_id: str | None
    title: str
    questionnaire: Mapping[str, Any]
    series: tuple[ScoreSeries, ...]  # Questionnaire order; scores never computed for this person are left out
    latest_response: Mapping[str, Any]
    completed: tuple[datetime, ...]  # when each response was authored, oldest first


@dataclass(frozen=True)
class LatestResult:
    """The latest score in words."""

    score: str
    value: str
    band: Band | None
    when: datetime
    change: str | None
    change_text: str
    movement: str  # the change without the verdict: "Up 8 points since 1 Feb 2026" ("" for a first result)


def _number(value: Any) -> float | None:
    number = ext.to_number(value)
    return None if number is None else float(number)


def _limit(item: Mapping[str, Any], url: str) -> float | None:
    extension = ext.first_extension(item, url)
    if extension is None:
        return None
    return _number(extension.get("valueInteger", extension.get("valueDecimal")))


def _codes(concepts: Any) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(coding.get("system") or ""), str(coding["code"]))
        for coding in ext.as_list(concepts)
        if isinstance(coding, Mapping) and coding.get("code")
    )


def _items(items: Any) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for item in ext.as_list(items):
        if isinstance(item, Mapping):
            found.append(item)
            found.extend(_items(item.get("item")))
    return found


def is_score_item(item: Mapping[str, Any]) -> bool:
    return (
        item.get("readOnly") is True
        and item.get("type") in SCORE_TYPES
        and ext.first_extension(item, ext.CALCULATED_EXPRESSION) is not None
    )


def score_definitions(questionnaire: Mapping[str, Any]) -> list[ScoreDefinition]:
    """Every calculated score of a Questionnaire, in document order."""
    definitions = []
    for item in _items(questionnaire.get("item")):
        if not is_score_item(item):
            continue
        bands = bands_of(item)
        minimum, maximum = _limit(item, MIN_VALUE), _limit(item, MAX_VALUE)
        if bands:
            minimum = float(min(band.low for band in bands)) if minimum is None else minimum
            maximum = float(max(band.high for band in bands)) if maximum is None else maximum
        definitions.append(
            ScoreDefinition(
                link_id=str(item.get("linkId")),
                text=str(item.get("text") or item.get("linkId")),
                codes=_codes(item.get("code")),
                bands=bands,
                direction=direction_of(item),
                reliable_change=decimal_extension(item, ext.RELIABLE_CHANGE),
                minimum=minimum,
                maximum=maximum,
            )
        )
    return definitions


def canonical_url(canonical: Any) -> str:
    return str(canonical or "").split("|")[0]


def parse_when(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return date_range(text)[0]
    except InvalidDate:
        return None


def _observation_value(observation: Mapping[str, Any]) -> float | None:
    if "valueInteger" in observation:
        return _number(observation["valueInteger"])
    return _number(ext.as_mapping(observation.get("valueQuantity")).get("value"))


def _derived_response(observation: Mapping[str, Any]) -> str | None:
    for reference in ext.as_list(observation.get("derivedFrom")):
        text = ext.as_mapping(reference).get("reference")
        if isinstance(text, str) and text.startswith("QuestionnaireResponse/"):
            return text.split("/")[1]
    return None


def _change(observation: Mapping[str, Any]) -> tuple[str | None, float | None]:
    extension = ext.first_extension(observation, CHANGE_EXTENSION)
    if extension is not None:
        result = ext.sub_extension_value(extension, "result", "valueCode")
        difference = _number(ext.sub_extension_value(extension, "difference", "valueDecimal"))
        return (str(result) if result else None), difference
    for concept in ext.as_list(observation.get("interpretation")):
        for coding in ext.as_list(ext.as_mapping(concept).get("coding")):
            coding = ext.as_mapping(coding)
            if coding.get("system") == INTERPRETATION and coding.get("code") in CHANGE_CODES:
                return CHANGE_CODES[str(coding["code"])], None
    return None, None


def _band(observation: Mapping[str, Any], definition: ScoreDefinition, value: float) -> Band | None:
    """The band the service stored with the score; worked out again only for Observations without one."""
    known = {(band.band.system, band.band.code): band.band for band in definition.bands}
    for concept in ext.as_list(observation.get("interpretation")):
        for coding in ext.as_list(ext.as_mapping(concept).get("coding")):
            coding = ext.as_mapping(coding)
            found = known.get((str(coding.get("system") or ""), str(coding.get("code"))))
            if found is not None:
                return found
    return band_for(value, definition.bands)


def _matches(observation: Mapping[str, Any], definition: ScoreDefinition) -> bool:
    codes = set(_codes(ext.as_mapping(observation.get("code")).get("coding")))
    if definition.codes:
        return definition.codes[0] in codes
    return ext.as_mapping(observation.get("code")).get("text") == definition.text


def instrument_histories(
    questionnaires: Mapping[str, Mapping[str, Any]],
    responses: Sequence[Mapping[str, Any]],
    observations: Sequence[Mapping[str, Any]],
) -> list[InstrumentHistory]:
    """One history per instrument the person completed (``questionnaires`` by canonical url, without version).

    Scores come from the Observations the service derived (their bands and reliable change as stored);
    responses whose Questionnaire is not at hand are left out.
    """
    by_response: dict[str, str] = {}
    responses_by_url: dict[str, list[Mapping[str, Any]]] = {}
    for response in responses:
        url = canonical_url(response.get("questionnaire"))
        if url not in questionnaires or parse_when(response.get("authored")) is None:
            continue
        by_response[str(response.get("id"))] = url
        responses_by_url.setdefault(url, []).append(response)
    observations_by_url: dict[str, list[Mapping[str, Any]]] = {}
    for observation in observations:
        response_id = _derived_response(observation)
        if response_id in by_response and observation.get("status") != "entered-in-error":
            observations_by_url.setdefault(by_response[response_id], []).append(observation)

    histories = []
    for url, answered in responses_by_url.items():
        questionnaire = questionnaires[url]
        answered = sorted(answered, key=lambda r: (parse_when(r.get("authored")) or datetime.min, str(r.get("id"))))
        series = []
        for definition in score_definitions(questionnaire):
            points = []
            for observation in observations_by_url.get(url, []):
                value, when = _observation_value(observation), parse_when(observation.get("effectiveDateTime"))
                if value is None or when is None or not _matches(observation, definition):
                    continue
                change, difference = _change(observation)
                band = _band(observation, definition, value)
                points.append(ScorePoint(when, value, band, change, difference, _derived_response(observation)))
            if points:
                points.sort(key=lambda point: (point.when, point.response_id or ""))
                series.append(ScoreSeries(definition, tuple(points)))
        histories.append(
            InstrumentHistory(
                url=url,
                questionnaire_id=str(questionnaire["id"]) if questionnaire.get("id") else None,
                title=str(questionnaire.get("title") or questionnaire.get("name") or url),
                questionnaire=questionnaire,
                series=tuple(series),
                latest_response=answered[-1],
                completed=tuple(parse_when(r.get("authored")) or datetime.min for r in answered),
            )
        )
    histories.sort(key=lambda history: history.completed[-1], reverse=True)
    return histories


def format_number(value: float) -> str:
    """12 -> '12', 4.25 -> '4.25', 4.5 -> '4.5' (scores are shown as the service stored them)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_date(when: datetime) -> str:
    return f"{when.day} {when:%b %Y}"


CHANGE_WORDS = {
    "improved": "a reliable improvement",
    "deteriorated": "a reliable deterioration",
    "no-reliable-change": "not a reliable change",
}


def latest_result(series: ScoreSeries) -> LatestResult:
    """The latest score, its band and the change since the one before, in words."""
    latest = series.points[-1]
    previous = series.points[-2] if len(series.points) > 1 else None
    movement = ""
    if previous is None:
        change_text = "First result for this measure"
    else:
        difference = latest.difference if latest.difference is not None else latest.value - previous.value
        size = format_number(abs(difference))
        points = "point" if size == "1" else "points"
        movement = "no change" if difference == 0 else f"{'up' if difference > 0 else 'down'} {size} {points}"
        movement = f"{movement[0].upper()}{movement[1:]} since {format_date(previous.when)}"
        change_text = movement
        if latest.change in CHANGE_WORDS:
            change_text += f": {CHANGE_WORDS[latest.change]}"
        elif series.definition.reliable_change is None and difference != 0:
            change_text += " (the measure has no reliable-change threshold)"
    return LatestResult(
        score=series.definition.text,
        value=format_number(latest.value),
        band=latest.band,
        when=latest.when,
        change=latest.change,
        change_text=change_text,
        movement=movement,
    )
