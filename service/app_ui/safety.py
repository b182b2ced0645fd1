"""Which item raised a safety Flag and how the person answered it, from the Questionnaire and the response (pure).

A Flag the service raises carries the ``safety-flag`` extension's message as its ``code.text`` and points at
the response that raised it; the item is the one whose ``safety-flag`` carries that message (or the
instrument's only safety item, should the message have been reworded since).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from service.app_ui.profile import answer_display, first_answers, item_number
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
