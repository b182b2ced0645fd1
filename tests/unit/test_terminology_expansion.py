"""Expanding a ValueSet from what is held (service.fhir.terminology): compose include/exclude, nested value sets,
hierarchy filters, type-ahead matching, and refusing what is not held. Expected codes are written out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from service.fhir.terminology import NotHeld, Unsupported, children, expand, find_concept, matching

SYSTEM = "http://example.org/CodeSystem/feelings"
CODE_SYSTEM: dict[str, Any] = {
    "resourceType": "CodeSystem",
    "url": SYSTEM,
    "version": "2",
    "content": "complete",
    "concept": [
        {
            "code": "good",
            "display": "Good",
            "concept": [
                {"code": "calm", "display": "Calm"},
                {"code": "glad", "display": "Glad", "concept": [{"code": "joy", "display": "Joyful"}]},
            ],
        },
        {
            "code": "bad",
            "display": "Bad",
            "property": [{"code": "notSelectable", "valueBoolean": True}],
            "concept": [{"code": "sad", "display": "Sad"}],
        },
    ],
}
VALUE_SETS: dict[str, dict[str, Any]] = {}


def held(url: str, version: str | None) -> dict[str, Any] | None:
    return CODE_SYSTEM if url == SYSTEM and version in (None, "2") else None


def value_set(*includes: dict[str, Any], exclude: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "compose": {"include": list(includes), "exclude": exclude or []}}


def codes(found: list[Any]) -> list[str]:
    return [concept.code for concept in found]


def test_a_whole_system_in_its_order_depth_first() -> None:
    found = expand(value_set({"system": SYSTEM}), held, VALUE_SETS.get)
    assert codes(found) == ["good", "calm", "glad", "joy", "bad", "sad"]
    assert [c.abstract for c in found] == [False, False, False, False, True, False]
    assert {c.version for c in found} == {"2"}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("is-a", "glad", ["glad", "joy"]),
        ("descendent-of", "good", ["calm", "glad", "joy"]),
        ("is-not-a", "good", ["bad", "sad"]),
        ("=", "sad", ["sad"]),
    ],
)
def test_hierarchy_filters(op: str, value: str, expected: list[str]) -> None:
    include = {"system": SYSTEM, "filter": [{"property": "concept", "op": op, "value": value}]}
    assert codes(expand(value_set(include), held, VALUE_SETS.get)) == expected


def test_concept_lists_take_the_held_display_when_they_give_none_and_exclude_removes() -> None:
    include = {"system": SYSTEM, "concept": [{"code": "joy"}, {"code": "sad", "display": "Down"}, {"code": "calm"}]}
    found = expand(value_set(include, exclude=[{"system": SYSTEM, "concept": [{"code": "calm"}]}]), held, {}.get)
    assert [(c.code, c.display) for c in found] == [("joy", "Joyful"), ("sad", "Down")]


def test_nested_value_sets_intersect_with_the_system_part() -> None:
    nested = {
        "http://example.org/vs/happy": value_set(
            {"system": SYSTEM, "filter": [{"property": "concept", "op": "is-a", "value": "good"}]}
        )
    }
    include = {
        "system": SYSTEM,
        "concept": [{"code": "joy"}, {"code": "sad"}],
        "valueSet": ["http://example.org/vs/happy"],
    }
    assert codes(expand(value_set(include), held, nested.get)) == ["joy"]
    assert codes(expand(value_set({"valueSet": ["http://example.org/vs/happy"]}), held, nested.get)) == [
        "good",
        "calm",
        "glad",
        "joy",
    ]


def test_what_is_not_held_is_named_every_one() -> None:
    vs = value_set({"system": "http://loinc.org"}, {"system": "http://snomed.info/sct"}, {"valueSet": ["http://x/vs"]})
    with pytest.raises(NotHeld) as caught:
        expand(vs, held, {}.get)
    assert caught.value.missing == [
        "CodeSystem http://loinc.org",
        "CodeSystem http://snomed.info/sct",
        "ValueSet http://x/vs",
    ]
    with pytest.raises(NotHeld, match="version 9|feelings\\|9"):
        expand(value_set({"system": SYSTEM, "version": "9"}), held, {}.get)
    fragment = {**CODE_SYSTEM, "content": "fragment"}
    with pytest.raises(NotHeld, match="fragment"):
        expand(value_set({"system": SYSTEM}), lambda url, version: fragment, {}.get)


def test_an_unknown_filter_is_unsupported() -> None:
    include = {"system": SYSTEM, "filter": [{"property": "concept", "op": "regex", "value": "j.*"}]}
    with pytest.raises(Unsupported):
        expand(value_set(include), held, {}.get)


def test_type_ahead_matches_code_or_display_ignoring_case() -> None:
    found = expand(value_set({"system": SYSTEM}), held, {}.get)
    assert codes(matching(found, "JOY")) == ["joy"]
    assert codes(matching(found, "a")) == ["calm", "glad", "bad", "sad"]
    assert codes(matching(found, None)) == codes(found)


def test_lookup_helpers() -> None:
    found = find_concept(CODE_SYSTEM, "joy")
    assert found is not None and found[0].display == "Joyful" and found[2] == ("glad", "good")
    assert children(CODE_SYSTEM, "good") == ["calm", "glad"]
    assert find_concept(CODE_SYSTEM, "none") is None
