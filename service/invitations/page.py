"""The completion page's form (pure): the Questionnaire split into screens, and saved answers shown again."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from service.app_ui.forms import CHOICE_KINDS, OTHER_SUFFIX, FormItem, walk

# A form with more questions than this shows one top-level group per screen (when it has groups).
QUESTIONS_PER_SCREEN = 12


def _questions(items: list[FormItem]) -> int:
    return sum(1 for item in walk(items) if item.is_question)


def screens(items: list[FormItem]) -> list[list[FormItem]]:
    """The screens the form is asked in: one when short or without groups; else each top-level group on a screen
    of its own (items between groups share one)."""
    if _questions(items) <= QUESTIONS_PER_SCREEN or not any(item.kind == "group" for item in items):
        return [items]
    found: list[list[FormItem]] = []
    loose: list[FormItem] = []
    for item in items:
        if item.kind == "group":
            if loose:
                found.append(loose)
                loose = []
            found.append([item])
        else:
            loose.append(item)
    if loose:
        found.append(loose)
    return found


def _answers_by_link_id(items: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for item in items or ():
        if not isinstance(item, Mapping):
            continue
        answers = [a for a in item.get("answer") or () if isinstance(a, Mapping)]
        yield str(item.get("linkId", "")), [dict(a) for a in answers]
        yield from _answers_by_link_id(item.get("item"))
        for answer in answers:
            yield from _answers_by_link_id(answer.get("item"))


def _value_text(answer: Mapping[str, Any]) -> str | None:
    for key, value in answer.items():
        if not key.startswith("value"):
            continue
        if key == "valueQuantity" and isinstance(value, Mapping):
            value = value.get("value")
        if key == "valueDateTime" and isinstance(value, str):
            value = value.removesuffix("Z")
        return None if isinstance(value, Mapping | list) else str(value)
    return None


def fill_from_response(items: list[FormItem], response: Mapping[str, Any]) -> None:
    """Show a saved (in-progress) response's answers in the form, as if the person had just entered them."""
    saved = dict(_answers_by_link_id(response.get("item")))
    for item in walk(items):
        if not item.is_question or item.link_id not in saved:
            continue
        answers = [{k: v for k, v in a.items() if k != "item"} for a in saved[item.link_id]]
        if item.kind in CHOICE_KINDS:
            item.values = [option.token for option in item.options if option.answer in answers]
            if item.kind == "open-choice":
                chosen = [option.answer for option in item.options]
                typed = [a["valueString"] for a in answers if "valueString" in a and a not in chosen]
                item.other = typed[0] if typed else ""
        else:
            item.values = [text for text in map(_value_text, answers) if text is not None]


def carried_fields(items: list[FormItem]) -> list[tuple[str, str]]:
    """The form fields of items not on the current screen, as hidden fields: the answers travel with each step."""
    fields: list[tuple[str, str]] = []
    for item in walk(items):
        if item.is_question:
            fields.extend((item.name, value) for value in item.values)
            if item.other:
                fields.append((item.name + OTHER_SUFFIX, item.other))
    return fields


def _items(items: Any) -> Iterator[Mapping[str, Any]]:
    for item in items or ():
        if isinstance(item, Mapping):
            yield item
            yield from _items(item.get("item"))


def scores_of(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The scores the service computed into a stored response ((label, value) of each answered readOnly item): what
    the thank-you page shows when the organisation turns that on (PROMS_LINK_SHOW_SCORE)."""
    labels = {str(item.get("linkId")): str(item.get("text") or item.get("linkId")) for item in
              _items(questionnaire.get("item")) if item.get("readOnly") is True}  # fmt: skip
    found = []
    for link_id, answers in _answers_by_link_id(response.get("item")):
        if link_id in labels and answers and (value := _value_text(answers[0])) is not None:
            found.append((labels[link_id], value))
    return found
