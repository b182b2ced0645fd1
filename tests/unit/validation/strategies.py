"""Hypothesis strategies: a valid QuestionnaireResponse for any Questionnaire, and one corruption of it.

The generator knows the Questionnaire rules independently of ``service.validation``: it fills every
item with a value its type and constraints allow, then removes the items whose enableWhen (or
enableWhenExpression) is not met, repeating until nothing changes. The corruptions are the four
kinds of mistake a form filler makes: an unknown linkId, a value of the wrong type, an option that
is not offered, and an answer to an item that is not enabled.
"""

from __future__ import annotations

import base64
import copy
import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from form_logic import ANSWER_TYPES, CORE, SDC, Enabled, Place, ext, ext_all, places, prune_disabled, value_of
from hypothesis import strategies as st

JSON = dict[str, Any]
Draw = Callable[[st.SearchStrategy[Any]], Any]

# ---------------------------------------------------------------- answer values


def _listed_codings(questionnaire: Mapping[str, Any], reference: str) -> list[JSON]:
    """Codings of a value set contained in the Questionnaire (expansion or enumerated compose)."""
    for resource in questionnaire.get("contained", []):
        if resource.get("resourceType") != "ValueSet":
            continue
        if reference not in ("#" + str(resource.get("id")), resource.get("url")):
            continue
        contains = resource.get("expansion", {}).get("contains")
        if contains:
            return [{k: c[k] for k in ("system", "code", "display") if k in c} for c in contains]
        codings = []
        for include in resource.get("compose", {}).get("include", []):
            for concept in include.get("concept", []):
                coding = {
                    "system": include.get("system"),
                    "code": concept["code"],
                    "display": concept.get("display"),
                }
                codings.append({k: v for k, v in coding.items() if v is not None})
        return codings
    return []


def _bounds(item: Mapping[str, Any], low: Any, high: Any) -> tuple[Any, Any]:
    minimum, maximum = ext(item, CORE + "minValue"), ext(item, CORE + "maxValue")
    return (low if minimum is None else minimum), (high if maximum is None else maximum)


def _decimal(draw: Draw, item: Mapping[str, Any]) -> float:
    low, high = _bounds(item, -1000, 1000)
    places = ext(item, CORE + "maxDecimalPlaces")
    places = 2 if places is None else min(int(places), 4)
    scale = 10**places
    units = draw(st.integers(int(Decimal(str(low)) * scale), int(Decimal(str(high)) * scale)))
    return float(Decimal(units) / scale)


def _text(draw: Draw, item: Mapping[str, Any], multiline: bool) -> str | None:
    maximum = item.get("maxLength") or 40
    minimum = ext(item, CORE + "minLength") or 1
    pattern = ext(item, CORE + "regex")
    if pattern is not None:
        try:
            strategy = st.from_regex(pattern, fullmatch=True).filter(lambda s: minimum <= len(s) <= maximum)
            return str(draw(strategy.filter(lambda s: "\n" not in s and "\r" not in s)))
        except Exception:
            return None
    alphabet = string.ascii_letters + string.digits + " .,'-" + ("\n" if multiline else "")
    body = draw(st.text(alphabet=alphabet, min_size=minimum, max_size=max(minimum, min(maximum, 60))))
    return body if body.strip() else "x" * max(1, minimum)


def _quantity(draw: Draw, item: Mapping[str, Any]) -> JSON:
    low_q, high_q = (
        ext(item, SDC + "sdc-questionnaire-minQuantity"),
        ext(item, SDC + "sdc-questionnaire-maxQuantity"),
    )
    options = ext_all(item, CORE + "questionnaire-unitOption")
    unit = ext(item, CORE + "questionnaire-unit")
    template = low_q or high_q
    if template is not None:
        quantity = {k: template[k] for k in ("unit", "system", "code") if k in template}
    elif options:
        chosen = draw(st.sampled_from(options))
        quantity = {"system": chosen.get("system"), "code": chosen.get("code"), "unit": chosen.get("display")}
    elif unit is not None:
        quantity = {"system": unit.get("system"), "code": unit.get("code"), "unit": unit.get("display")}
    else:
        quantity = {"system": "http://unitsofmeasure.org", "code": "1", "unit": "1"}
    low = low_q["value"] if low_q else (ext(item, CORE + "minValue") or 0)
    high = high_q["value"] if high_q else (ext(item, CORE + "maxValue") or 500)
    quantity["value"] = _decimal(
        draw,
        {
            "extension": [
                {"url": CORE + "minValue", "valueDecimal": low},
                {"url": CORE + "maxValue", "valueDecimal": high},
            ]
        },
    )
    return {k: v for k, v in quantity.items() if v is not None}


def draw_value(draw: Draw, questionnaire: Mapping[str, Any], item: Mapping[str, Any]) -> tuple[str, Any] | None:
    """One valid value[x] for the item, or None when the generator cannot make one."""
    kind = item.get("type")
    options = item.get("answerOption", [])
    if options:
        if kind == "open-choice" and draw(st.booleans()):
            return "valueString", draw(st.text(alphabet=string.ascii_letters, min_size=1, max_size=12))
        return value_of(copy.deepcopy(draw(st.sampled_from(options))))
    if kind in ("choice", "open-choice"):
        reference = item.get("answerValueSet")
        listed = _listed_codings(questionnaire, reference) if reference else []
        if listed:
            return "valueCoding", copy.deepcopy(draw(st.sampled_from(listed)))
        if kind == "open-choice" and draw(st.booleans()):
            return "valueString", draw(st.text(alphabet=string.ascii_letters, min_size=1, max_size=12))
        # An external value set cannot be checked here; any code only earns a warning.
        return "valueCoding", {
            "system": "http://example.org/codes",
            "code": draw(st.sampled_from(["a", "b", "c"])),
        }
    if kind == "boolean":
        return "valueBoolean", draw(st.booleans())
    if kind == "integer":
        low, high = _bounds(item, -1000, 1000)
        return "valueInteger", draw(st.integers(int(low), int(high)))
    if kind == "decimal":
        return "valueDecimal", _decimal(draw, item)
    if kind == "date":
        return "valueDate", draw(st.dates(date(1900, 1, 1), date(2099, 12, 31))).isoformat()
    if kind == "dateTime":
        moment = draw(st.datetimes(datetime(1950, 1, 1), datetime(2060, 1, 1), timezones=st.just(UTC)))
        return "valueDateTime", moment.strftime("%Y-%m-%dT%H:%M:%S") + "Z"
    if kind == "time":
        return "valueTime", draw(st.times(time(0, 0), time(23, 59, 59))).strftime("%H:%M:%S")
    if kind in ("string", "text"):
        text = _text(draw, item, multiline=kind == "text")
        return None if text is None else ("valueString", text)
    if kind == "url":
        return "valueUri", "https://example.org/" + draw(
            st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=10)
        )
    if kind == "attachment":
        allowed = ext_all(item, CORE + "mimeType") or ["text/plain"]
        limit = int(ext(item, CORE + "maxSize") or 64)
        data = draw(st.binary(min_size=1, max_size=max(1, min(limit, 64))))
        content_type = str(draw(st.sampled_from(allowed))).replace("*", "png")
        return "valueAttachment", {
            "contentType": content_type,
            "data": base64.b64encode(data).decode(),
            "size": len(data),
        }
    if kind == "reference":
        kinds = ext_all(item, CORE + "questionnaire-referenceResource") or ["Patient"]
        chosen = draw(st.sampled_from(kinds))
        return "valueReference", {"reference": f"{chosen}/{draw(st.integers(1, 999))}"}
    if kind == "quantity":
        return "valueQuantity", _quantity(draw, item)
    return None


# ---------------------------------------------------------------- a complete response


def _answers(draw: Draw, questionnaire: Mapping[str, Any], item: Mapping[str, Any], must: bool) -> list[JSON]:
    if not must and not draw(st.booleans()):
        return []
    wanted = 1
    minimum = ext(item, CORE + "questionnaire-minOccurs") or 0
    if item.get("repeats"):
        maximum = ext(item, CORE + "questionnaire-maxOccurs") or 3
        wanted = draw(st.integers(max(1, minimum), max(1, minimum, min(maximum, 3))))
    answers: list[JSON] = []
    seen: list[Any] = []
    for _ in range(wanted):
        drawn = draw_value(draw, questionnaire, item)
        if drawn is None or drawn[1] in seen:
            continue
        exclusive = any(
            ext(option, CORE + "questionnaire-optionExclusive") and value_of(option)[1] == drawn[1]
            for option in item.get("answerOption", [])
        )
        if exclusive and answers:
            continue
        seen.append(drawn[1])
        answers.append({drawn[0]: drawn[1]})
        if exclusive:
            break
    return answers


def _items(draw: Draw, questionnaire: Mapping[str, Any], q_items: list[JSON], must_answer_some: bool) -> list[JSON]:
    result: list[JSON] = []
    for item in q_items:
        kind = item.get("type")
        required = bool(item.get("required")) or bool(ext(item, CORE + "questionnaire-minOccurs"))
        if kind == "display":
            if draw(st.booleans()):
                result.append(_named({"linkId": item["linkId"]}, item, draw))
            continue
        if kind == "group":
            if not required and not draw(st.booleans()):
                continue
            repetitions = draw(st.integers(1, 2)) if item.get("repeats") else 1
            for _ in range(repetitions):
                children = _items(draw, questionnaire, item.get("item", []), required)
                if children:
                    result.append(_named({"linkId": item["linkId"], "item": children}, item, draw))
            continue
        if kind not in ANSWER_TYPES:
            continue
        answers = _answers(draw, questionnaire, item, required or (must_answer_some and not result))
        if not answers:
            continue
        if item.get("item"):
            for answer in answers:
                children = _items(draw, questionnaire, item["item"], False)
                if children:
                    answer["item"] = children
        result.append(_named({"linkId": item["linkId"], "answer": answers}, item, draw))
    return result


def _named(qr_item: JSON, item: Mapping[str, Any], draw: Draw) -> JSON:
    if "text" in item and draw(st.booleans()):
        qr_item["text"] = item["text"]
    return qr_item


@st.composite
def valid_responses(draw: Draw, questionnaire: Mapping[str, Any], status: str = "completed") -> JSON:
    response: JSON = {"resourceType": "QuestionnaireResponse", "status": status}
    items = _items(draw, questionnaire, questionnaire.get("item", []), False)
    if items:
        response["item"] = items
    prune_disabled(questionnaire, response)
    return response


# ---------------------------------------------------------------- corruptions


@dataclass
class Corruption:
    kind: str
    response: JSON
    target: str  # FHIRPath of the response item that was made wrong


def _containers(
    questionnaire: Mapping[str, Any], response: JSON
) -> Iterator[tuple[JSON, str, list[JSON], Place | None]]:
    """(element holding items, its path, Questionnaire items that may go there, owning place)."""
    yield response, "QuestionnaireResponse", questionnaire.get("item", []), None
    for place in places(questionnaire, response):
        children = place.q.get("item", [])
        if place.q.get("type") == "group":
            yield place.data, place.path, children, place
        elif children:
            for index, answer in enumerate(place.data.get("answer", [])):
                yield answer, f"{place.path}.answer[{index}]", children, place


def _wrong_value(item: Mapping[str, Any]) -> JSON:
    return {"valueInteger": 1} if item.get("type") == "boolean" else {"valueBoolean": True}


def _unlisted(key: str) -> Any:
    return {
        "valueCoding": {"system": "http://example.org/not-offered", "code": "not-an-option"},
        "valueInteger": 987654,
        "valueString": "not one of the options",
        "valueDate": "1901-01-01",
        "valueTime": "03:03:03",
        "valueReference": {"reference": "Patient/not-offered"},
    }[key]


def _insert(container: JSON, q_items: list[JSON], new: JSON) -> int:
    """Put ``new`` where the Questionnaire's order says; return its index."""
    order = {item["linkId"]: position for position, item in enumerate(q_items)}
    rank = order.get(new["linkId"], len(q_items))
    items = container.setdefault("item", [])
    index = next((i for i, item in enumerate(items) if order.get(item.get("linkId"), -1) > rank), len(items))
    items.insert(index, new)
    return index


@st.composite
def corruptions(draw: Draw, questionnaire: Mapping[str, Any], valid: JSON) -> Corruption:
    response = copy.deepcopy(valid)
    answered = [p for p in places(questionnaire, response) if p.data.get("answer")]
    offered = [
        p
        for p in answered
        if p.q.get("answerOption")
        and value_of(p.data["answer"][0])[0]
        in ("valueCoding", "valueInteger", "valueDate", "valueTime", "valueReference", "valueString")
        and not (p.q.get("type") == "open-choice" and value_of(p.data["answer"][0])[0] == "valueString")
    ]
    enabled = Enabled(questionnaire, response)
    disabled: list[tuple[JSON, str, list[JSON], Mapping[str, Any]]] = []
    for container, path, q_items, owner in _containers(questionnaire, response):
        if owner is not None and not enabled.place(owner):
            continue
        present = {item.get("linkId") for item in container.get("item", [])}
        for item in q_items:
            if (
                item.get("type") in ANSWER_TYPES
                and item["linkId"] not in present
                and not enabled.own(item, owner, None)
            ):
                if draw_value(draw, questionnaire, item) is not None:
                    disabled.append((container, path, q_items, item))
    kinds = ["unknown-linkId"] + ["wrong-type"] * bool(answered) + ["not-an-option"] * bool(offered)
    kinds += ["disabled-answer"] * bool(disabled)
    kind = draw(st.sampled_from(kinds))
    if kind == "wrong-type":
        place = draw(st.sampled_from(answered))
        kept = {k: v for k, v in place.data["answer"][0].items() if not k.startswith("value")}
        place.data["answer"][0] = {**_wrong_value(place.q), **kept}
        return Corruption(kind, response, place.path)
    if kind == "not-an-option":
        place = draw(st.sampled_from(offered))
        key, _ = value_of(place.data["answer"][0])
        place.data["answer"][0] = {key: _unlisted(key)}
        return Corruption(kind, response, place.path)
    if kind == "disabled-answer":
        container, path, q_items, item = draw(st.sampled_from(disabled))
        drawn = draw_value(draw, questionnaire, item)
        assert drawn is not None
        index = _insert(container, q_items, {"linkId": item["linkId"], "answer": [{drawn[0]: drawn[1]}]})
        return Corruption(kind, response, f"{path}.item[{index}]")
    containers = list(_containers(questionnaire, response))
    container, path, _, _ = draw(st.sampled_from(containers))
    items = container.setdefault("item", [])
    index = draw(st.integers(0, len(items)))
    items.insert(index, {"linkId": "no-such-item-" + str(draw(st.integers(0, 99))), "answer": [{"valueString": "x"}]})
    return Corruption(kind, response, f"{path}.item[{index}]")


def points_at(expression: str | None, target: str) -> bool:
    """Whether an issue's expression is the corrupted item, inside it, or one of its enclosing items."""
    if expression is None:
        return False
    if expression == target or expression.startswith(target + "."):
        return True
    return (
        expression != "QuestionnaireResponse"
        and target.startswith(expression + ".")
        and bool(re.search(r"\.item\[\d+\]$", expression))
    )
