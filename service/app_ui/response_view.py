"""One stored response as a clinician reads it: each question in full with the answer given, each score with its
band and the way it reads (or why it was not made), who answered, and the safety flags it raised (pure).

What it says about scores comes from what was stored: the score items the server filled in when it scored the
response, the Observations it derived. Nothing is scored again here; why a score is missing is told from the
instrument's own rule (``score-minimum-answers``), as the submission's warning told it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.app_ui.history import LatestResult, ScoreDefinition, format_number, parse_when, score_definitions
from service.app_ui.profile import answer_display, item_number
from service.app_ui.safety import raised_by
from service.cds.measures import instrument_label
from service.fhir.response_status import SCORED_STATUSES
from service.responses.checks import Shortfall, shortfalls
from service.scoring import extensions as ext
from service.scoring.interpret import band_for
from service.scoring.results import Band

HIDDEN = ext.CORE + "questionnaire-hidden"
SELF = "the person themselves"
DIRECTION_WORDS = {"higher-is-better": "Higher scores are better", "lower-is-better": "Lower scores are better"}
STATUS_WORDS = {
    "completed": "Completed",
    "amended": "Amended",
    "in-progress": "In progress (not finished)",
    "entered-in-error": "Entered in error (withdrawn)",
    "stopped": "Stopped before it was finished",
}


@dataclass(frozen=True)
class AnswerLine:
    """One question of the form (or the heading of a group of them) and what was answered."""

    link_id: str
    kind: str  # question | group
    number: str | None  # "9", as printed on the form
    text: str  # the full wording
    answers: tuple[str, ...]  # as the person saw them; empty when the question was not answered
    safety: bool  # a safety flag is raised from this question
    depth: int  # 0 for a top-level item


@dataclass(frozen=True)
class ScoreLine:
    """One score of the response: its value, band and change, or why it was not made."""

    definition: ScoreDefinition
    value: str | None  # None: not scored
    band: Band | None
    change: str | None  # improved | deteriorated | no-reliable-change | unknown | None
    change_text: str | None  # the change since the previous response, in words
    reason: str | None  # why it was not scored, in words (None when it was)

    @property
    def direction_words(self) -> str | None:
        return DIRECTION_WORDS.get(self.definition.direction or "")


@dataclass(frozen=True)
class FlagLine:
    """A safety flag the response raised, and whether a clinician has reviewed it."""

    flag_id: str
    message: str
    status: str  # active (not reviewed) | inactive (reviewed) | entered-in-error (withdrawn with its response)
    ended: datetime | None  # when it was reviewed (or withdrawn)


@dataclass(frozen=True)
class ResponseView:
    title: str
    instrument: str  # short name, e.g. "PHQ-9"
    authored: datetime | None
    status: str
    answered_by: str | None
    recorded_by: str | None
    lines: list[AnswerLine]
    scores: list[ScoreLine]
    flags: list[FlagLine]

    @property
    def status_words(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)

    @property
    def unscored(self) -> list[ScoreLine]:
        return [score for score in self.scores if score.value is None]

    @property
    def scored(self) -> bool:
        """Every score the instrument has was made (False for an instrument without scores)."""
        return bool(self.scores) and not self.unscored


def _items(items: Any, depth: int = 0) -> Iterator[tuple[Mapping[str, Any], int]]:
    for item in ext.as_list(items):
        if isinstance(item, Mapping):
            yield item, depth
            yield from _items(item.get("item"), depth + 1)


def _all_answers(items: Any, found: dict[str, list[Mapping[str, Any]]]) -> dict[str, list[Mapping[str, Any]]]:
    for item in ext.as_list(items):
        item = ext.as_mapping(item)
        for answer in ext.as_list(item.get("answer")):
            answer = ext.as_mapping(answer)
            if any(key.startswith("value") for key in answer):
                found.setdefault(str(item.get("linkId")), []).append(answer)
            _all_answers(answer.get("item"), found)
        _all_answers(item.get("item"), found)
    return found


def answer_text(answer: Mapping[str, Any]) -> str:
    """An answer as the person gave it: a choice's label, Yes/No, a quantity with its unit, else the value."""
    if "valueBoolean" in answer:
        return "Yes" if answer["valueBoolean"] is True else "No"
    if "valueQuantity" in answer:
        quantity = ext.as_mapping(answer["valueQuantity"])
        number = ext.to_number(quantity.get("value"))
        unit = quantity.get("unit") or quantity.get("code") or ""
        return f"{format_number(float(number)) if number is not None else ''} {unit}".strip()
    if "valueReference" in answer:
        reference = ext.as_mapping(answer["valueReference"])
        return str(reference.get("display") or reference.get("reference") or "")
    if "valueAttachment" in answer:
        return str(ext.as_mapping(answer["valueAttachment"]).get("title") or "an attachment")
    return answer_display(answer)


def answer_lines(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> list[AnswerLine]:
    """Every question the person was asked, in form order, with the answers given (calculated scores excluded)."""
    answers = _all_answers(response.get("item"), {})
    lines = []
    for item, depth in _items(questionnaire.get("item")):
        kind = item.get("type")
        hidden = ext.first_extension(item, HIDDEN)
        if kind == "display" or item.get("readOnly") is True or (hidden or {}).get("valueBoolean") is True:
            continue
        link_id = str(item.get("linkId"))
        given = tuple(text for text in (answer_text(answer) for answer in answers.get(link_id, [])) if text)
        lines.append(
            AnswerLine(
                link_id=link_id,
                kind="group" if kind == "group" else "question",
                number=item_number(item),
                text=str(item.get("text") or link_id),
                answers=given,
                safety=ext.first_extension(item, ext.SAFETY_FLAG) is not None,
                depth=depth,
            )
        )
    return lines


def shortfall_text(shortfall: Shortfall) -> str:
    """'PHQ-9 total score needs at least 7 of its 9 items answered; 5 were answered'."""
    if shortfall.items is None or shortfall.answered is None:
        return f"{shortfall.name}: the instrument's scoring rule gives no score for these answers"
    were = "was" if shortfall.answered == 1 else "were"
    if shortfall.minimum is not None:
        return (
            f"{shortfall.name} needs at least {shortfall.minimum} of its {shortfall.items} items answered; "
            f"{shortfall.answered} {were} answered"
        )
    return (
        f"{shortfall.name} was not made from these answers ({shortfall.answered} of its {shortfall.items} items "
        "answered)"
    )


def shortfall_texts(
    questionnaire: Mapping[str, Any], response: Mapping[str, Any], link_ids: Sequence[str]
) -> list[str]:
    """Why each of these scores (by linkId) is not made from this response, in words."""
    texts = {definition.link_id: definition.text for definition in score_definitions(questionnaire)}
    found = shortfalls(questionnaire, response, [(link_id, texts.get(link_id)) for link_id in link_ids])
    return [shortfall_text(shortfall) for shortfall in found]


def score_lines(
    questionnaire: Mapping[str, Any], response: Mapping[str, Any], results: Sequence[LatestResult]
) -> list[ScoreLine]:
    """Each score of the instrument for this response: the value the server stored in the response, with the band
    and change of the Observation it derived (``results``), or why no value was stored."""
    stored = _all_answers(response.get("item"), {})
    by_text = {result.score: result for result in results}
    status = str(response.get("status") or "")
    definitions = score_definitions(questionnaire)
    missing = []
    lines: dict[str, ScoreLine] = {}
    for definition in definitions:
        value = next((number for a in stored.get(definition.link_id, []) if (number := _number(a)) is not None), None)
        if value is None or status not in SCORED_STATUSES:
            missing.append(definition)
            continue
        result = by_text.get(definition.text)
        band = result.band if result is not None else band_for(value, definition.bands)
        lines[definition.link_id] = ScoreLine(
            definition,
            format_number(value),
            band,
            result.change if result is not None else None,
            result.change_text if result is not None else None,
            None,
        )
    if status not in SCORED_STATUSES:
        reason = f"only completed responses are scored, and this one is {STATUS_WORDS.get(status, status).lower()}"
        for definition in missing:
            lines[definition.link_id] = ScoreLine(definition, None, None, None, None, f"Not scored: {reason}")
    else:
        reasons = shortfall_texts(questionnaire, response, [definition.link_id for definition in missing])
        for definition, reason in zip(missing, reasons, strict=True):
            lines[definition.link_id] = ScoreLine(definition, None, None, None, None, reason)
    return [lines[definition.link_id] for definition in definitions]


def _number(answer: Mapping[str, Any]) -> float | None:
    for key in ("valueInteger", "valueDecimal"):
        if key in answer:
            number = ext.to_number(answer[key])
            return None if number is None else float(number)
    number = ext.to_number(ext.as_mapping(answer.get("valueQuantity")).get("value"))
    return None if number is None else float(number)


def person_text(reference: Any, subject: Any) -> str | None:
    """Who a reference names, for a reader: the person themselves when it is the response's subject."""
    reference, subject = ext.as_mapping(reference), ext.as_mapping(subject)
    if not reference:
        return None
    if reference.get("reference") and reference.get("reference") == subject.get("reference"):
        return SELF
    return str(reference.get("display") or reference.get("reference") or "") or None


def flag_lines(flags: Sequence[Mapping[str, Any]], response_id: str) -> list[FlagLine]:
    """The safety flags raised by this response, in the order they were raised."""
    lines = []
    for flag in flags:
        if raised_by(flag) != response_id or not flag.get("id"):
            continue
        code = ext.as_mapping(flag.get("code"))
        lines.append(
            FlagLine(
                flag_id=str(flag["id"]),
                message=str(code.get("text") or "Safety item raised"),
                status=str(flag.get("status") or ""),
                ended=parse_when(ext.as_mapping(flag.get("period")).get("end")),
            )
        )
    return lines


def response_view(
    questionnaire: Mapping[str, Any],
    response: Mapping[str, Any],
    results: Sequence[LatestResult],
    flags: Sequence[Mapping[str, Any]],
) -> ResponseView:
    """The whole page's content (``results``: the response's scores as the dashboard's history reads them)."""
    url = str(questionnaire.get("url") or "")
    recorded_by = person_text(response.get("author"), response.get("subject"))
    answered_by = person_text(response.get("source"), response.get("subject"))
    if answered_by is None and recorded_by == SELF:
        answered_by = SELF  # self-reported: the person entered their own answers
    return ResponseView(
        title=str(questionnaire.get("title") or questionnaire.get("name") or url),
        instrument=instrument_label(questionnaire, url),
        authored=parse_when(response.get("authored")),
        status=str(response.get("status") or ""),
        answered_by=answered_by,
        recorded_by=recorded_by,
        lines=answer_lines(questionnaire, response),
        scores=score_lines(questionnaire, response, results),
        flags=flag_lines(flags, str(response.get("id") or "")),
    )
