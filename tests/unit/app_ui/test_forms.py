"""A Questionnaire as an accessible form (every item type), and the submitted form back as response items."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from service.app_ui.forms import (
    FormItem,
    attach_issues,
    build_response,
    form_items,
    link_id_at,
    read_form,
    refresh_enablement,
    walk,
)
from service.config import PROJECT_ROOT
from service.validation import validate_response
from tests.conftest import load_fixture

CORE = "http://hl7.org/fhir/StructureDefinition"
CODING = {"system": "http://example.org/feel", "code": "good", "display": "Good"}


def _coding(code: str, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": "http://example.org/feel", "code": code, "display": display}}


EVERY_TYPE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "id": "every-type",
    "url": "http://example.org/Questionnaire/every-type",
    "version": "2",
    "status": "active",
    "contained": [
        {
            "resourceType": "ValueSet",
            "id": "colours",
            "status": "active",
            "compose": {
                "include": [
                    {
                        "system": "http://example.org/colour",
                        "concept": [{"code": "red", "display": "Red"}, {"code": "blue"}],
                    }
                ]
            },
        }
    ],
    "item": [
        {"linkId": "intro", "type": "display", "text": "Please answer <all> questions"},
        {
            "linkId": "mood",
            "prefix": "1.",
            "type": "choice",
            "text": "Mood",
            "required": True,
            "answerOption": [_coding("bad", "Bad"), {**_coding("good", "Good"), "initialSelected": True}],
        },
        {"linkId": "colours", "type": "choice", "repeats": True, "text": "Colours", "answerValueSet": "#colours"},
        {
            "linkId": "pet",
            "type": "open-choice",
            "text": "Pet",
            "answerOption": [{"valueString": "cat"}, {"valueString": "dog"}],
        },
        {"linkId": "smoker", "type": "boolean", "text": "Do you smoke?"},
        {
            "linkId": "cigarettes",
            "type": "integer",
            "text": "How many a day?",
            "enableWhen": [{"question": "smoker", "operator": "=", "answerBoolean": True}],
        },
        {"linkId": "weight", "type": "decimal", "text": "Weight"},
        {
            "linkId": "height",
            "type": "quantity",
            "text": "Height",
            "extension": [
                {
                    "url": f"{CORE}/questionnaire-unit",
                    "valueCoding": {"system": "http://unitsofmeasure.org", "code": "cm", "display": "cm"},
                }
            ],
        },
        {"linkId": "name", "type": "string", "text": "Name", "maxLength": 5},
        {"linkId": "notes", "type": "text", "text": "Notes"},
        {"linkId": "born", "type": "date", "text": "Born"},
        {"linkId": "seen", "type": "dateTime", "text": "Seen"},
        {"linkId": "wake", "type": "time", "text": "Wake"},
        {"linkId": "site", "type": "url", "text": "Site"},
        {"linkId": "scan", "type": "attachment", "text": "Scan"},
        {
            "linkId": "group",
            "type": "group",
            "text": "About sleep",
            "item": [{"linkId": "hours", "type": "integer", "text": "Hours"}],
        },
        {"linkId": "total", "type": "integer", "text": "Total", "readOnly": True},
        {
            "linkId": "secret",
            "type": "string",
            "text": "Secret",
            "extension": [{"url": f"{CORE}/questionnaire-hidden", "valueBoolean": True}],
        },
    ],
}


class Elements(HTMLParser):
    """Every start tag with its attributes, and which label text points at which id."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.labels: dict[str, str] = {}
        self._label_for: str | None = None
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "label":
            self._label_for = dict(attrs).get("for")

    def handle_data(self, data: str) -> None:
        if self._label_for is not None and data.strip():
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def render(items: list[FormItem]) -> str:
    environment = Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "service" / "templates"), autoescape=True, undefined=StrictUndefined
    )
    template = environment.from_string(
        '{% from "app/form_items.html" import render_item %}{% for item in items %}{{ render_item(item) }}{% endfor %}'
    )
    return template.render(items=items)


def test_each_item_type_becomes_the_right_control_with_a_label() -> None:
    items = form_items(EVERY_TYPE)
    refresh_enablement(items)
    html = Elements(render(items))
    by_link = {item.link_id: item for item in walk(items)}
    assert "total" not in by_link and "secret" not in by_link  # calculated and hidden items are not asked
    # choice: a fieldset whose legend is the question, one radio per option, the initial one checked
    mood = by_link["mood"]
    assert html.find("fieldset", id=mood.html_id)
    radios = html.find("input", name=mood.name)
    assert [(r["type"], r["value"], "checked" in r) for r in radios] == [("radio", "0", False), ("radio", "1", True)]
    assert [html.labels[str(r["id"])] for r in radios] == ["Bad", "Good"]
    # repeating choice from a contained ValueSet: checkboxes
    colours = html.find("input", name=by_link["colours"].name)
    assert [c["type"] for c in colours] == ["checkbox", "checkbox"]
    assert [html.labels[str(c["id"])] for c in colours] == ["Red", "blue"]
    # open-choice: the options plus a labelled text box for another answer
    pet = by_link["pet"]
    assert html.labels[f"{pet.html_id}-other"] == "Another answer (type it here)"
    # boolean: Yes and No radios, so it can be left unanswered
    assert [html.labels[str(r["id"])] for r in html.find("input", name=by_link["smoker"].name)] == ["Yes", "No"]
    # text-like inputs: each labelled, each of the right type
    expected = {
        "cigarettes": ("input", "text", "numeric"),
        "weight": ("input", "text", "decimal"),
        "height": ("input", "text", "decimal"),
        "name": ("input", "text", None),
        "born": ("input", "date", None),
        "seen": ("input", "datetime-local", None),
        "wake": ("input", "time", None),
        "site": ("input", "url", None),
        "hours": ("input", "text", "numeric"),
    }
    for link_id, (tag, kind, inputmode) in expected.items():
        (control,) = html.find(tag, id=by_link[link_id].html_id)
        assert (control.get("type"), control.get("inputmode")) == (kind, inputmode), link_id
        assert html.labels[by_link[link_id].html_id].startswith(by_link[link_id].label), link_id
    assert html.find("input", id=by_link["name"].html_id)[0]["maxlength"] == "5"
    assert html.find("textarea", id=by_link["notes"].html_id)
    assert html.labels[by_link["height"].html_id] == "Height(cm)"
    # groups are headed sections; display items are text; unsupported types say so
    assert html.find("section", id=by_link["group"].html_id)
    assert html.find("p", id=by_link["intro"].html_id) and "Please answer &lt;all&gt; questions" in render(items)
    assert "cannot be given here" in render(items)
    # the question asked only of smokers starts hidden and disabled, with its rule for the page's script
    cigarettes = by_link["cigarettes"]
    (container,) = html.find("div", id=f"{cigarettes.html_id}-question")
    assert "hidden" in container
    assert json.loads(str(container["data-enable-when"])) == {
        "behavior": "all",
        "conditions": [{"field": by_link["smoker"].name, "op": "in", "kind": "token", "values": ["true"]}],
    }
    assert "disabled" in html.find("input", id=cigarettes.html_id)[0]


def _form(items: list[FormItem], **values: str | list[str]) -> dict[str, list[str]]:
    by_link = {item.link_id: item for item in walk(items)}
    form: dict[str, list[str]] = {}
    for link_id, value in values.items():
        name = by_link[link_id.replace("_other", "")].name + ("-other" if link_id.endswith("_other") else "")
        form[name] = value if isinstance(value, list) else [value]
    return form


def test_submitted_answers_become_typed_response_items() -> None:
    form = _form(
        form_items(EVERY_TYPE),
        mood="0", colours=["0", "1"], pet_other="hamster", smoker="true", cigarettes="12", weight="70.5",
        height="180", name="Ann", notes="fine", born="1990-02-03", seen="2026-03-01T14:30", wake="07:15",
        site="https://example.org", hours="8",
    )  # fmt: skip
    result = read_form(EVERY_TYPE, form)
    assert result.errors == []
    answers = {item["linkId"]: item.get("answer") or item.get("item") for item in result.answers}
    assert answers["mood"] == [_coding("bad", "Bad")]
    assert answers["colours"] == [
        {"valueCoding": {"system": "http://example.org/colour", "code": "red", "display": "Red"}},
        {"valueCoding": {"system": "http://example.org/colour", "code": "blue"}},
    ]
    assert answers["pet"] == [{"valueString": "hamster"}]
    assert answers["smoker"] == [{"valueBoolean": True}]
    assert answers["cigarettes"] == [{"valueInteger": 12}]
    assert answers["weight"] == [{"valueDecimal": 70.5}]
    assert answers["height"] == [
        {"valueQuantity": {"value": 180, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}}
    ]
    assert answers["name"] == [{"valueString": "Ann"}] and answers["notes"] == [{"valueString": "fine"}]
    assert answers["born"] == [{"valueDate": "1990-02-03"}]
    assert answers["seen"] == [{"valueDateTime": "2026-03-01T14:30:00Z"}]
    assert answers["wake"] == [{"valueTime": "07:15:00"}]
    assert answers["site"] == [{"valueUri": "https://example.org"}]
    assert answers["group"] == [{"linkId": "hours", "answer": [{"valueInteger": 8}]}]
    response = build_response(
        EVERY_TYPE, result.answers, subject="p1", authored="2026-03-01T10:00:00.000Z",
        author="Practitioner/dr", identifier="urn:uuid:5f4b2f0e-8a53-4c39-9f57-8c3f3e1d2a10",
    )  # fmt: skip
    assert response["questionnaire"] == "http://example.org/Questionnaire/every-type|2"
    assert (response["status"], response["subject"], response["author"]) == (
        "completed", {"reference": "Patient/p1"}, {"reference": "Practitioner/dr"},
    )  # fmt: skip
    assert not [issue for issue in validate_response(EVERY_TYPE, response) if issue.is_error]


def test_answers_to_questions_that_do_not_apply_are_dropped() -> None:
    result = read_form(EVERY_TYPE, _form(form_items(EVERY_TYPE), mood="1", smoker="false", cigarettes="5"))
    assert [item["linkId"] for item in result.answers] == ["mood", "smoker"]
    assert not next(item for item in walk(result.items) if item.link_id == "cigarettes").enabled


@pytest.mark.parametrize(
    ("link_id", "value", "message"),
    [
        ("cigarettes", "1.5", "Enter a whole number"),
        ("weight", "heavy", "Enter a number"),
        ("born", "03/02/1990", "Enter a date"),
        ("seen", "yesterday", "Enter a date and time"),
        ("wake", "7am", "Enter a time"),
        ("name", "Annabel", "Use at most 5 characters"),
        ("mood", "7", "Choose one of the options"),
    ],
)
def test_what_cannot_be_read_is_reported_next_to_its_field(link_id: str, value: str, message: str) -> None:
    result = read_form(EVERY_TYPE, _form(form_items(EVERY_TYPE), smoker="true", **{link_id: value}))
    assert [(item.link_id, text.startswith(message)) for item, text in result.errors] == [(link_id, True)]
    (item,) = [item for item in walk(result.items) if item.link_id == link_id]
    assert item.values == [value]  # re-shown as typed
    assert f'id="{item.html_id}-error"' in render(result.items)
    assert 'aria-invalid="true"' in render(result.items)


def test_enable_when_of_the_sdc_test_form_on_the_server() -> None:
    questionnaire = load_fixture("sdc/questionnaire-sdc-test-enablewhen.json")
    items = form_items(questionnaire)
    by_text = {item.label: item for item in walk(items)}
    radio = by_text["Question 3 Radio ( 1 2 3 )"]
    two = next(option.token for option in radio.options if option.label == "Two")
    check = by_text["Question 1 Check"]
    result = read_form(questionnaire, {radio.name: [two], check.name: ["true"]})
    shown = {item.label for item in walk(result.items) if item.enabled}
    assert "Question hidden until Q3 radio 2 Selected" in shown
    assert "Question hidden until Q1 checked" in shown
    result = read_form(questionnaire, {})
    shown = {item.label for item in walk(result.items) if item.enabled}
    assert "Question hidden until Q1 checked" not in shown
    assert "Group present until Q2 checked" not in shown  # enabled only when Q2 is answered false
    scenario = next(item for item in walk(items) if item.link_id == "s3-radio")
    below = by_text["Group visible when value < 2.2"]
    (condition,) = json.loads(below.enable_data or "{}")["conditions"]
    # answerDecimal 2.1 against coded options: only the option coded 1.1 is below it
    assert (condition["op"], condition["field"]) == ("in", scenario.name)
    assert [o.label for o in scenario.options if o.token in condition["values"]] == ["1.1"]


def test_issues_land_next_to_their_fields_by_link_id_or_expression() -> None:
    items = form_items(EVERY_TYPE)
    response = {"item": [{"linkId": "mood", "answer": [{}]}, {"linkId": "group", "item": [{"linkId": "hours"}]}]}
    assert link_id_at(response, "QuestionnaireResponse.item[1].item[0].answer[0]") == "hours"
    assert link_id_at(response, "QuestionnaireResponse.item[7]") is None
    assert link_id_at(response, "Observation.code") is None
    general = attach_issues(
        items,
        response,
        [
            ("name", None, "Too long"),
            (None, "QuestionnaireResponse.item[0].answer[0]", "Not an option"),
            (None, None, "Odd"),
        ],
    )
    assert general == ["Odd"]
    by_link = {item.link_id: item for item in walk(items)}
    assert by_link["name"].errors == ["Too long"] and by_link["mood"].errors == ["Not an option"]
