"""A Questionnaire as an HTML form model, and the submitted form back as QuestionnaireResponse items.

Each item gets a field name from its position (``i-3-1``: the second child of the fourth item), so any
linkId works. Calculated (readOnly) and hidden items are not asked. enableWhen is evaluated on the server
with the validator's own comparison (answers of disabled items are dropped before submitting), and is also
described as data for the page's small script, which shows and hides items as the person answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from service.scoring import extensions as ext
from service.scoring.inputs import score_inputs
from service.validation.enable_when import relate

HIDDEN = ext.CORE + "questionnaire-hidden"
UNIT = ext.CORE + "questionnaire-unit"
MAX_ITERATIONS = 20
INPUT_KINDS = ("integer", "decimal", "string", "text", "date", "dateTime", "time", "url", "quantity")
CHOICE_KINDS = ("choice", "open-choice", "boolean")
_INTEGER = re.compile(r"^[+-]?\d{1,9}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")
OTHER_SUFFIX = "-other"
ORDERED: dict[str, tuple[int, ...]] = {">": (1,), "<": (-1,), ">=": (0, 1), "<=": (-1, 0)}


@dataclass
class Option:
    token: str  # the value the form sends
    label: str
    answer: dict[str, Any]  # the QuestionnaireResponse answer it stands for, e.g. {"valueCoding": {...}}


@dataclass
class Condition:
    question: str
    operator: str
    answer_key: str  # answerCoding, answerInteger ...
    answer: Any


@dataclass
class FormItem:
    kind: str  # group | display | choice | open-choice | boolean | integer | ... | unsupported
    link_id: str
    name: str
    html_id: str
    label: str
    required: bool = False
    repeats: bool = False
    options: list[Option] = field(default_factory=list)
    unit: dict[str, Any] | None = None
    max_length: int | None = None
    children: list[FormItem] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    behavior: str = "all"
    values: list[str] = field(default_factory=list)  # what was entered (re-shown after an error)
    other: str = ""  # an open-choice answer typed in
    errors: list[str] = field(default_factory=list)
    missing: bool = False  # unanswered, and it counts towards a score: shown when the clinician is asked to confirm
    safety: bool = False  # answering it may raise a safety flag
    enabled: bool = True
    enable_data: str | None = None  # enableWhen for the page's script (JSON)

    @property
    def focus_id(self) -> str:
        """The id of the control an error summary links to."""
        return f"{self.html_id}-0" if self.kind in CHOICE_KINDS and self.options else self.html_id

    @property
    def is_question(self) -> bool:
        return self.kind not in ("group", "display")


@dataclass
class FormResult:
    items: list[FormItem]
    answers: list[dict[str, Any]]  # QuestionnaireResponse.item
    errors: list[tuple[FormItem, str]]  # what could not be read from the form (nothing is submitted then)
    answered: frozenset[str] = frozenset()  # the linkIds answered (of items that apply)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _label(item: Mapping[str, Any]) -> str:
    prefix, text = _text(item.get("prefix")).strip(), _text(item.get("text")).strip()
    text = text or _text(item.get("linkId"))
    return f"{prefix} {text}" if prefix else text


def _option_label(key: str, value: Any) -> str:
    if key == "valueCoding":
        coding = ext.as_mapping(value)
        return str(coding.get("display") or coding.get("code") or "")
    if key == "valueReference":
        reference = ext.as_mapping(value)
        return str(reference.get("display") or reference.get("reference") or "")
    return str(value)


def _value_set_options(questionnaire: Mapping[str, Any], canonical: str) -> list[tuple[str, Any]]:
    """Options from a ValueSet contained in the Questionnaire (the service expands nothing over the network)."""
    for resource in ext.as_list(questionnaire.get("contained")):
        resource = ext.as_mapping(resource)
        if resource.get("resourceType") != "ValueSet":
            continue
        if canonical not in (f"#{resource.get('id')}", resource.get("url")):
            continue
        contains = ext.as_list(ext.as_mapping(resource.get("expansion")).get("contains"))
        if contains:
            return [
                ("valueCoding", {k: v for k, v in ext.as_mapping(c).items() if k in ("system", "code", "display")})
                for c in contains
            ]
        found = []
        for include in ext.as_list(ext.as_mapping(resource.get("compose")).get("include")):
            include = ext.as_mapping(include)
            for concept in ext.as_list(include.get("concept")):
                concept = ext.as_mapping(concept)
                coding = {"system": include.get("system"), "code": concept.get("code")}
                if concept.get("display"):
                    coding["display"] = concept["display"]
                found.append(("valueCoding", {k: v for k, v in coding.items() if v is not None}))
        return found
    return []


def _options(questionnaire: Mapping[str, Any], item: Mapping[str, Any]) -> tuple[list[Option], list[str]]:
    """The item's options and the tokens of those initially selected."""
    pairs: list[tuple[str, Any, bool]] = []
    for option in ext.as_list(item.get("answerOption")):
        option = ext.as_mapping(option)
        for key, value in option.items():
            if key.startswith("value"):
                pairs.append((key, value, option.get("initialSelected") is True))
                break
    if not pairs and isinstance(item.get("answerValueSet"), str):
        pairs = [(key, value, False) for key, value in _value_set_options(questionnaire, item["answerValueSet"])]
    options = [
        Option(str(index), _option_label(key, value), {key: value}) for index, (key, value, _) in enumerate(pairs)
    ]
    selected = [str(index) for index, (_, _, initial) in enumerate(pairs) if initial]
    return options, selected


def _initial_values(item: Mapping[str, Any]) -> list[str]:
    values = []
    for initial in ext.as_list(item.get("initial")):
        for key, value in ext.as_mapping(initial).items():
            if key.startswith("value") and isinstance(value, str | int | float) and not isinstance(value, bool):
                values.append(str(value))
    return values


def _conditions(item: Mapping[str, Any]) -> list[Condition]:
    conditions = []
    for condition in ext.as_list(item.get("enableWhen")):
        condition = ext.as_mapping(condition)
        keys = [key for key in condition if key.startswith("answer") and len(key) > 6]
        if len(keys) == 1 and isinstance(condition.get("question"), str) and isinstance(condition.get("operator"), str):
            conditions.append(Condition(condition["question"], condition["operator"], keys[0], condition[keys[0]]))
    return conditions


def _max_length(item: Mapping[str, Any]) -> int | None:
    value = item.get("maxLength")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def form_items(questionnaire: Mapping[str, Any]) -> list[FormItem]:
    """The form for a Questionnaire, initial answers filled in."""

    def build(items: Any, path: tuple[int, ...]) -> list[FormItem]:
        built = []
        for index, item in enumerate(ext.as_list(items)):
            item = ext.as_mapping(item)
            hidden = ext.first_extension(item, HIDDEN)
            if item.get("readOnly") is True or (hidden is not None and hidden.get("valueBoolean") is True):
                continue
            here = (*path, index)
            suffix = "-".join(str(part) for part in here)
            kind = str(item.get("type") or "")
            if kind not in ("group", "display", *CHOICE_KINDS, *INPUT_KINDS):
                kind = "unsupported"
            form_item = FormItem(
                kind=kind,
                link_id=_text(item.get("linkId")),
                name=f"i-{suffix}",
                html_id=f"f-{suffix}",
                label=_label(item),
                required=item.get("required") is True,
                repeats=item.get("repeats") is True,
                max_length=_max_length(item),
                conditions=_conditions(item),
                behavior="any" if item.get("enableBehavior") == "any" else "all",
                safety=ext.first_extension(item, ext.SAFETY_FLAG) is not None,
            )
            if kind in ("choice", "open-choice"):
                form_item.options, form_item.values = _options(questionnaire, item)
                if not form_item.options and kind == "choice":
                    form_item.kind = "unsupported"  # its answers live in a ValueSet the service cannot expand
            elif kind == "boolean":
                form_item.options = [
                    Option("true", "Yes", {"valueBoolean": True}),
                    Option("false", "No", {"valueBoolean": False}),
                ]
            else:
                form_item.values = _initial_values(item)
            if kind == "quantity":
                unit = ext.first_extension(item, UNIT)
                form_item.unit = dict(ext.as_mapping(unit.get("valueCoding"))) if unit is not None else None
            form_item.children = build(item.get("item"), here)
            built.append(form_item)
        return built

    items = build(questionnaire.get("item"), ())
    _describe_conditions(items)
    return items


def walk(items: Sequence[FormItem]) -> Iterator[FormItem]:
    for item in items:
        yield item
        yield from walk(item.children)


def _describe_conditions(items: list[FormItem]) -> None:
    """enableWhen as the page's script reads it: compare the named field's values with the expected ones."""
    by_link_id = {item.link_id: item for item in walk(items)}
    for item in walk(items):
        described: list[dict[str, Any]] = []
        for condition in item.conditions:
            target = by_link_id.get(condition.question)
            if target is None:
                described = []
                break
            entry: dict[str, Any] = {"field": target.name, "op": condition.operator}
            if condition.operator == "exists":
                entry["value"] = condition.answer is True
            elif target.options:
                # Options are compared here once; the script only checks which ones are selected.
                wanted = (0,) if condition.operator in ("=", "!=") else ORDERED[condition.operator]
                entry["kind"] = "token"
                entry["op"] = "notin" if condition.operator == "!=" else "in"
                entry["values"] = [
                    option.token
                    for option in target.options
                    for key, value in option.answer.items()
                    if relate(key, value, condition.answer_key, condition.answer) in wanted
                ]
            elif condition.answer_key in ("answerInteger", "answerDecimal"):
                entry["kind"], entry["value"] = "number", float(condition.answer)
            else:
                entry["kind"], entry["value"] = "text", str(condition.answer)
            described.append(entry)
        if described:
            item.enable_data = json.dumps({"behavior": item.behavior, "conditions": described}, separators=(",", ":"))


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _json_number(number: Decimal) -> int | float:
    return int(number) if number == number.to_integral_value() else float(number)


def _read_answers(item: FormItem, form: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The answers the form gives for one item (item.values/other/errors are updated)."""
    raw = [value.strip() for value in form.get(item.name, [])]
    item.values = [value for value in raw if value]
    if item.kind in CHOICE_KINDS:
        tokens = item.values if item.repeats else item.values[:1]
        by_token = {option.token: option for option in item.options}
        answers = [dict(by_token[token].answer) for token in tokens if token in by_token]
        if len(answers) != len(tokens):
            item.errors.append("Choose one of the options shown")
        if item.kind == "open-choice":
            item.other = (form.get(item.name + OTHER_SUFFIX) or [""])[0].strip()
            if item.other:
                if answers and not item.repeats:
                    item.errors.append("Choose an option or type another answer, not both")
                answers.append({"valueString": item.other})
        return answers
    answers = []
    values = item.values if item.repeats else item.values[:1]
    for value in values:
        answer = _parse_value(item, value)
        if answer is None:
            continue
        answers.append(answer)
    return answers


def _parse_value(item: FormItem, value: str) -> dict[str, Any] | None:
    if item.kind == "integer":
        if not _INTEGER.match(value):
            item.errors.append("Enter a whole number, like 4")
            return None
        return {"valueInteger": int(value)}
    if item.kind in ("decimal", "quantity"):
        number = _decimal(value)
        if number is None:
            item.errors.append("Enter a number, like 4.5")
            return None
        if item.kind == "decimal":
            return {"valueDecimal": _json_number(number)}
        quantity: dict[str, Any] = {"value": _json_number(number)}
        if item.unit:
            quantity.update({"unit": item.unit.get("display") or item.unit.get("code")})
            quantity.update({k: item.unit[k] for k in ("system", "code") if k in item.unit})
        return {"valueQuantity": quantity}
    if item.kind == "date":
        if not _DATE.match(value):
            item.errors.append("Enter a date as year-month-day, like 2026-03-01")
            return None
        return {"valueDate": value}
    if item.kind == "dateTime":
        if not _DATE_TIME.match(value):
            item.errors.append("Enter a date and time, like 2026-03-01T14:30")
            return None
        return {"valueDateTime": (value if value.count(":") == 2 else value + ":00") + "Z"}
    if item.kind == "time":
        if not _TIME.match(value):
            item.errors.append("Enter a time, like 14:30")
            return None
        return {"valueTime": value if value.count(":") == 2 else value + ":00"}
    if item.kind == "url":
        return {"valueUri": value}
    if item.kind in ("string", "text"):
        if item.max_length is not None and len(value) > item.max_length:
            item.errors.append(f"Use at most {item.max_length} characters")
            return None
        return {"valueString": value}
    return None


def _condition_holds(condition: Condition, answers: Mapping[str, list[dict[str, Any]]]) -> bool:
    given = [
        (key, value)
        for answer in answers.get(condition.question, [])
        for key, value in answer.items()
        if key.startswith("value")
    ]
    if condition.operator == "exists":
        return bool(given) == (condition.answer is True)
    relations = [relate(key, value, condition.answer_key, condition.answer) for key, value in given]
    if condition.operator == "=":
        return any(relation == 0 for relation in relations)
    if condition.operator == "!=":
        return not any(relation == 0 for relation in relations)
    return any(relation in ORDERED.get(condition.operator, ()) for relation in relations)


def _mark_enabled(nodes: list[FormItem], parent_enabled: bool, answers: Mapping[str, list[dict[str, Any]]]) -> bool:
    """Set each item's ``enabled`` from its conditions and its parent's; True when anything changed."""
    changed = False
    for node in nodes:
        own = True
        if node.conditions:
            results = [_condition_holds(condition, answers) for condition in node.conditions]
            own = any(results) if node.behavior == "any" else all(results)
        enabled = parent_enabled and own
        if enabled != node.enabled:
            node.enabled, changed = enabled, True
        changed = _mark_enabled(node.children, enabled, answers) or changed
    return changed


def _apply_enablement(
    items: list[FormItem], answers: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Mark items enabled or not until nothing changes; answers of disabled items do not count."""
    visible = dict(answers)
    for _ in range(MAX_ITERATIONS):
        changed = _mark_enabled(items, True, visible)
        enabled_ids = {node.link_id for node in walk(items) if node.enabled}
        visible = {link_id: values for link_id, values in answers.items() if link_id in enabled_ids}
        if not changed:
            break
    return visible


def _response_items(items: list[FormItem], answers: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    built = []
    for item in items:
        if not item.enabled or item.kind in ("display", "unsupported"):
            continue
        children = _response_items(item.children, answers)
        if item.kind == "group":
            if children:
                built.append({"linkId": item.link_id, "item": children})
            continue
        given = [dict(answer) for answer in answers.get(item.link_id, [])]
        if not given:
            continue
        if children:
            given[0]["item"] = children  # a question's own child items go under its answer
        built.append({"linkId": item.link_id, "answer": given})
    return built


def read_form(questionnaire: Mapping[str, Any], form: Mapping[str, Sequence[str]]) -> FormResult:
    """The submitted form as QuestionnaireResponse items, and whatever could not be read."""
    items = form_items(questionnaire)
    answers: dict[str, list[dict[str, Any]]] = {}
    for item in walk(items):
        if item.is_question:
            item.values = []
            found = _read_answers(item, form)
            if found:
                answers.setdefault(item.link_id, []).extend(found)
    visible = _apply_enablement(items, answers)
    errors = [(item, message) for item in walk(items) if item.enabled for message in item.errors]
    answered = frozenset(link_id for link_id, values in visible.items() if values)
    return FormResult(items, _response_items(items, visible), errors, answered)


def missing_answers(questionnaire: Mapping[str, Any], result: FormResult) -> list[FormItem]:
    """The questions that apply, are unanswered, and are required or count towards a score, in form order: what a
    clinician is asked about before such a form is stored. Each is marked ``missing``."""
    scored = {link_id for inputs in score_inputs(questionnaire).values() for link_id in inputs.items}
    found = [
        item
        for item in walk(result.items)
        if item.enabled
        and item.is_question
        and item.kind != "unsupported"
        and item.link_id not in result.answered
        and (item.required or item.link_id in scored)
    ]
    for item in found:
        item.missing = True
    return found


def refresh_enablement(items: list[FormItem]) -> None:
    """Work out which items show on first display (from their initial answers)."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for item in walk(items):
        if not item.is_question:
            continue
        if item.options:
            by_token = {option.token: option for option in item.options}
            answers[item.link_id] = [dict(by_token[t].answer) for t in item.values if t in by_token]
        else:
            answers[item.link_id] = [a for a in (_parse_value(item, v) for v in item.values) if a is not None]
            item.errors = []
    _apply_enablement(items, answers)


def build_response(
    questionnaire: Mapping[str, Any],
    items: list[dict[str, Any]],
    *,
    subject: str,
    authored: str,
    author: str | None,
    identifier: str | None,
) -> dict[str, Any]:
    """A completed QuestionnaireResponse to the Questionnaire's exact version, about Patient/{subject}."""
    canonical = str(questionnaire.get("url") or "")
    if questionnaire.get("version"):
        canonical += f"|{questionnaire['version']}"
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical,
        "status": "completed",
        "subject": {"reference": f"Patient/{subject}"},
        "authored": authored,
    }
    if identifier is not None:
        # Submitting the same form twice (a double click, a resend) stores one response.
        response["identifier"] = {"system": "urn:ietf:rfc:3986", "value": identifier}
    if author is not None:
        response["author"] = {"reference": author}
    response["item"] = items
    return response


_SEGMENT = re.compile(r"^(item|answer)\[(\d+)\]$")


def link_id_at(response: Mapping[str, Any], expression: str | None) -> str | None:
    """The linkId of the innermost item an issue's expression (``QuestionnaireResponse.item[2].answer[0]``) names."""
    if not expression or not expression.startswith("QuestionnaireResponse."):
        return None
    node: Any = response
    found = None
    for segment in expression.split(".")[1:]:
        match = _SEGMENT.match(segment)
        if match is None:
            break
        children = ext.as_list(ext.as_mapping(node).get(match.group(1)))
        index = int(match.group(2))
        if index >= len(children):
            break
        node = children[index]
        if match.group(1) == "item":
            found = ext.as_mapping(node).get("linkId")
    return found if isinstance(found, str) else None


def attach_issues(
    items: list[FormItem], response: Mapping[str, Any], issues: Sequence[tuple[str | None, str | None, str]]
) -> list[str]:
    """Put each (linkId, expression, text) issue next to its field; return those that belong to no field."""
    by_link_id = {item.link_id: item for item in walk(items) if item.enabled}
    general = []
    for link_id, expression, text in issues:
        target = by_link_id.get(link_id or "") or by_link_id.get(link_id_at(response, expression) or "")
        if target is None:
            general.append(text)
        elif text not in target.errors:
            target.errors.append(text)
    return general
