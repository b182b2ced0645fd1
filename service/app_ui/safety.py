"""Which item raised a safety Flag and how the person answered it, from the Questionnaire and the response (pure).

A Flag the service raises carries the ``safety-flag`` extension's message as its ``code.text`` and points at
the response that raised it; the item is the one whose ``safety-flag`` carries that message (or the
instrument's only safety item, should the message have been reworded since).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.app_ui.history import canonical_url, parse_when
from service.app_ui.profile import answer_display, first_answers, item_number
from service.extraction import FLAG_DETAIL
from service.scoring import extensions as ext

MESSAGE = "message"


@dataclass(frozen=True)
class FlaggedAnswer:
    """The safety item of a raised Flag, and the answer that raised it."""

    link_id: str
    number: str | None  # "9": the item's number on the form
    text: str  # the item's wording
    answer: str | None  # the answer as the person saw it (None when the response holds none)

    @property
    def item(self) -> str:
        """'item 9', or the item's wording when it has no number."""
        return f"item {self.number}" if self.number else f"“{self.text}”"


def _items(items: Any) -> Iterator[Mapping[str, Any]]:
    for item in ext.as_list(items):
        if isinstance(item, Mapping):
            yield item
            yield from _items(item.get("item"))


def safety_items(questionnaire: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], list[str]]]:
    """Each item carrying ``safety-flag``, with the messages of its flags."""
    found = []
    for item in _items(questionnaire.get("item")):
        messages = [
            str(message)
            for extension in ext.extensions(item, ext.SAFETY_FLAG)
            if (message := ext.sub_extension_value(extension, MESSAGE, "valueString"))
        ]
        if ext.first_extension(item, ext.SAFETY_FLAG) is not None:
            found.append((item, messages))
    return found


def flagged_answer(
    questionnaire: Mapping[str, Any] | None, response: Mapping[str, Any] | None, message: str
) -> FlaggedAnswer | None:
    """The item a Flag with this message was raised from, and its answer in ``response`` (None if unknown)."""
    if questionnaire is None:
        return None
    candidates = safety_items(questionnaire)
    chosen = next((item for item, messages in candidates if message in messages), None)
    if chosen is None and len(candidates) == 1:
        chosen = candidates[0][0]
    if chosen is None:
        return None
    link_id = str(chosen.get("linkId"))
    answer = first_answers(response).get(link_id) if response is not None else None
    shown = answer_display(answer) if answer is not None else None
    return FlaggedAnswer(link_id, item_number(chosen), str(chosen.get("text") or link_id), shown or None)


def raised_by(flag: Mapping[str, Any]) -> str | None:
    """The id of the QuestionnaireResponse a Flag the service raised points at (its flag-detail extension)."""
    for extension in ext.as_list(flag.get("extension")):
        extension = ext.as_mapping(extension)
        reference = ext.as_mapping(extension.get("valueReference")).get("reference")
        if extension.get("url") == FLAG_DETAIL and isinstance(reference, str):
            return reference.split("/")[-1]
    return None


@dataclass(frozen=True)
class EarlierAnswer:
    """How the person answered the same safety item in an earlier response."""

    when: datetime
    answer: str | None  # None: not answered that time
    response_id: str


@dataclass(frozen=True)
class FlagView:
    """A safety Flag as the page reviewing it shows it."""

    flag_id: str
    message: str
    status: str  # active (not reviewed) | inactive (reviewed) | entered-in-error (withdrawn with its response)
    raised: datetime | None
    ended: datetime | None  # when it was reviewed (or withdrawn)
    response_id: str | None
    answered_on: datetime | None  # when the response that raised it was completed
    answered: FlaggedAnswer | None
    earlier: list[EarlierAnswer]  # the same item in the person's earlier responses, newest first

    @property
    def reviewed(self) -> bool:
        return self.status == "inactive"


def flag_view(
    flag: Mapping[str, Any],
    response: Mapping[str, Any] | None,
    questionnaire: Mapping[str, Any] | None,
    responses: Sequence[Mapping[str, Any]] = (),
    earlier_count: int = 5,
) -> FlagView:
    """The Flag, the item and answer that raised it, and that item's answers in up to ``earlier_count`` earlier
    responses to the same instrument (``responses``: the person's, any order)."""
    code = ext.as_mapping(flag.get("code"))
    message = str(code.get("text") or "Safety item raised")
    answered = flagged_answer(questionnaire, response, message)
    answered_on = parse_when(response.get("authored")) if response is not None else None
    earlier = []
    if response is not None and answered is not None and answered_on is not None:
        url = canonical_url(response.get("questionnaire"))
        for other in responses:
            when = parse_when(other.get("authored"))
            if (
                when is None
                or when >= answered_on
                or other.get("id") == response.get("id")
                or canonical_url(other.get("questionnaire")) != url
            ):
                continue
            given = first_answers(other).get(answered.link_id)
            earlier.append(EarlierAnswer(when, answer_display(given) or None if given else None, str(other.get("id"))))
        earlier.sort(key=lambda entry: entry.when, reverse=True)
    period = ext.as_mapping(flag.get("period"))
    return FlagView(
        flag_id=str(flag.get("id") or ""),
        message=message,
        status=str(flag.get("status") or ""),
        raised=parse_when(period.get("start")),
        ended=parse_when(period.get("end")),
        response_id=raised_by(flag),
        answered_on=answered_on,
        answered=answered,
        earlier=earlier[:earlier_count],
    )
