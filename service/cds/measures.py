"""Reading stored Observations, Flags and Questionnaires into the plain facts cards are made of (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.app_ui.bands import most_severe
from service.app_ui.history import short_score_name
from service.app_ui.safety import FlaggedAnswer
from service.extraction import CHANGE_EXTENSION, INTERPRETATION
from service.fhir.dates import InvalidDate, date_range
from service.scoring import extensions as ext
from service.scoring.interpret import bands_of, direction_of

# "Patient Health Questionnaire-9 (PHQ-9)" -> "PHQ-9"; "CORE-10 (Clinical Outcomes ...)" -> "CORE-10".
_ABBREVIATION_IN_PARENTHESES = re.compile(r"\(([A-Z][A-Za-z0-9\-]*[A-Z0-9])\)")
_LEADING_ABBREVIATION = re.compile(r"^([A-Z][A-Z0-9\-]+)\b")


def _response_id(reference: Any) -> str | None:
    """The id in a ``{"reference": "QuestionnaireResponse/{id}"}`` the service wrote (else None)."""
    text = ext.as_mapping(reference).get("reference")
    if not isinstance(text, str):
        return None
    parts = text.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-1] if len(parts) >= 2 and parts[-2] == "QuestionnaireResponse" and parts[-1] else None


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """One score of a person's latest response, with its band and its change since last time."""

    key: str  # the score's linkId
    name: str  # the instrument's short name ("PHQ-9") when it has one score, else the score's ("K10 total score")
    value: int | float
    band: str | None = None  # the band's display, e.g. "Moderate"
    band_severity: str | None = None  # info | warning | critical
    most_severe_band: bool = False  # the band is the worst one this score has
    change: str | None = None  # improved | deteriorated | no-reliable-change | unknown; None: nothing to compare
    difference: float | None = None  # this score minus the previous one
    previous_completed: datetime | None = None  # when the previous score was given, if known
    observation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Measure:
    """A person's latest completed response to one instrument, and its scores (Questionnaire order)."""

    instrument: str  # short label, e.g. "PHQ-9"
    questionnaire_url: str
    questionnaire_id: str | None
    response_id: str
    completed: datetime  # UTC
    scores: tuple[ScoreResult, ...] = ()
    unscored_after: datetime | None = None  # a later response to it (UTC) could not be scored: these still stand

    @property
    def headline(self) -> ScoreResult | None:
        """The score a clinician quotes for the instrument: its first (the total, where it has one)."""
        return self.scores[0] if self.scores else None

    @property
    def headline_name(self) -> str:
        """'PHQ-9', 'K10' (its first score is its total), 'DIALOG Subjective quality of life' (no total)."""
        first = self.headline
        if first is None or len(self.scores) == 1 or "total" in first.name.lower():
            return self.instrument
        return first.name if self.instrument in first.name else f"{self.instrument} {first.name}"


@dataclass(frozen=True, slots=True)
class SafetyConcern:
    """An active (not yet reviewed) safety Flag."""

    flag_id: str
    message: str
    raised: datetime | None = None  # UTC
    instrument: str | None = None
    response_id: str | None = None
    answered: FlaggedAnswer | None = None  # the item that raised it and the answer given, when known


def instrument_label(questionnaire: Mapping[str, Any] | None, url: str) -> str:
    """The short name clinicians use: the abbreviation in the title when it has one, else the title."""
    questionnaire = questionnaire or {}
    title = str(questionnaire.get("title") or "").strip()
    if title:
        found = _ABBREVIATION_IN_PARENTHESES.search(title) or _LEADING_ABBREVIATION.match(title)
        return found.group(1) if found else title
    name = questionnaire.get("name") or questionnaire.get("id")
    return str(name) if name else url.rstrip("/").rsplit("/", 1)[-1]


def _walk(items: Any) -> Iterator[Mapping[str, Any]]:
    for item in ext.as_list(items):
        if isinstance(item, Mapping):
            yield item
            yield from _walk(item.get("item"))


def score_items(questionnaire: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The calculated (score) items of a Questionnaire by linkId, in Questionnaire order."""
    return {
        str(item.get("linkId")): item
        for item in _walk((questionnaire or {}).get("item"))
        if ext.first_extension(item, ext.CALCULATED_EXPRESSION) is not None
    }


def _score_name(instrument: str, item: Mapping[str, Any] | None, observation: Mapping[str, Any], several: bool) -> str:
    if not several:
        return instrument
    text = str((item or {}).get("text") or ext.as_mapping(observation.get("code")).get("text") or "").strip()
    return short_score_name(text) if text else instrument


def _value(observation: Mapping[str, Any]) -> int | float | None:
    value = observation.get("valueInteger", ext.as_mapping(observation.get("valueQuantity")).get("value"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _band_coding(observation: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for concept in ext.as_list(observation.get("interpretation")):
        for coding in ext.as_list(ext.as_mapping(concept).get("coding")):
            if isinstance(coding, Mapping) and coding.get("system") != INTERPRETATION and coding.get("code"):
                return coding
    return None


def _worse_coded(observation: Mapping[str, Any]) -> bool:
    return any(
        isinstance(coding, Mapping) and coding.get("system") == INTERPRETATION and coding.get("code") == "W"
        for concept in ext.as_list(observation.get("interpretation"))
        for coding in ext.as_list(ext.as_mapping(concept).get("coding"))
    )


def _change(observation: Mapping[str, Any]) -> tuple[str | None, float | None, str | None]:
    """(result, difference, previous response id) from the ``reliable-change-result`` extension."""
    extension = ext.first_extension(observation, CHANGE_EXTENSION)
    if extension is None:
        return ("deteriorated", None, None) if _worse_coded(observation) else (None, None, None)
    result = ext.sub_extension_value(extension, "result", "valueCode")
    difference = ext.to_number(ext.sub_extension_value(extension, "difference", "valueDecimal"))
    previous_id = _response_id(ext.sub_extension_value(extension, "previousResponse", "valueReference"))
    if _worse_coded(observation):
        result = "deteriorated"
    return (
        str(result) if result else None,
        None if difference is None else float(difference),
        previous_id,
    )


def previous_response_ids(observations: Sequence[Mapping[str, Any]]) -> set[str]:
    """The responses these score Observations were compared with (to look up when they were completed)."""
    return {previous for observation in observations if (previous := _change(observation)[2]) is not None}


def read_score(
    observation: Mapping[str, Any],
    key: str,
    item: Mapping[str, Any] | None,
    *,
    name: str,
    earlier: Mapping[str, datetime],
) -> ScoreResult | None:
    """A score Observation as a ScoreResult (None when it carries no number)."""
    value = _value(observation)
    if value is None:
        return None
    coding = _band_coding(observation)
    bands = bands_of(item) if item is not None else ()
    matched = None
    if coding is not None:
        matched = next(
            (b for b in bands if b.band.code == coding.get("code") and b.band.system == (coding.get("system") or "")),
            None,
        )
    worst = most_severe(bands, direction_of(item) if item is not None else None)
    change, difference, previous_id = _change(observation)
    return ScoreResult(
        key=key,
        name=name,
        value=value,
        band=str(coding.get("display") or coding.get("code")) if coding is not None else None,
        band_severity=matched.band.severity if matched is not None else None,
        most_severe_band=matched is not None and matched is worst,
        change=change,
        difference=difference,
        previous_completed=earlier.get(previous_id) if previous_id else None,
        observation_id=str(observation["id"]) if observation.get("id") else None,
    )


def read_measure(
    *,
    response_id: str,
    questionnaire_url: str,
    questionnaire_id: str | None,
    questionnaire: Mapping[str, Any] | None,
    completed: datetime,
    observations: Sequence[tuple[str, Mapping[str, Any]]],
    earlier: Mapping[str, datetime],
    unscored_after: datetime | None = None,
) -> Measure:
    """The latest response to an instrument with its scores; ``observations`` are (score linkId, Observation).

    With the Questionnaire at hand only its calculated items count as scores (Observations extracted from
    marked answers are left out); without it every numeric Observation does.
    """
    instrument = instrument_label(questionnaire, questionnaire_url)
    items = score_items(questionnaire)
    order = {key: index for index, key in enumerate(items)}
    chosen = [(key, obs) for key, obs in observations if not items or key in items]
    chosen.sort(key=lambda pair: order.get(pair[0], len(order)))
    several = len(chosen) > 1
    scores = []
    for key, observation in chosen:
        item = items.get(key)
        name = _score_name(instrument, item, observation, several)
        score = read_score(observation, key, item, name=name, earlier=earlier)
        if score is not None:
            scores.append(score)
    return Measure(
        instrument, questionnaire_url, questionnaire_id, response_id, completed, tuple(scores), unscored_after
    )


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return date_range(value)[0]
    except InvalidDate:
        return None


def flag_message(flag: Mapping[str, Any]) -> str:
    code = ext.as_mapping(flag.get("code"))
    codings = [c for c in ext.as_list(code.get("coding")) if isinstance(c, Mapping)]
    return str(code.get("text") or next((c.get("display") for c in codings if c.get("display")), None) or "")


def flag_response_id(flag: Mapping[str, Any]) -> str | None:
    """The response that raised a Flag (its flag-detail reference)."""
    for extension in ext.as_list(flag.get("extension")):
        found = _response_id(ext.as_mapping(extension).get("valueReference"))
        if found:
            return found
    return None


def read_flag(flag: Mapping[str, Any], instrument: str | None, answered: FlaggedAnswer | None = None) -> SafetyConcern:
    """An active safety Flag (as the service raises them: the message in ``code.text``), with the answer that
    raised it when the caller could find it (service.app_ui.safety.flagged_answer)."""
    return SafetyConcern(
        flag_id=str(flag.get("id") or ""),
        message=flag_message(flag) or "Safety item raised",
        raised=_instant(ext.as_mapping(flag.get("period")).get("start")),
        instrument=instrument,
        response_id=flag_response_id(flag),
        answered=answered,
    )
