"""Search parameters parsed by type, with strict and lenient handling of unknown ones."""

from __future__ import annotations

import pytest

from service.fhir.errors import BadRequest
from service.fhir.search import CanonicalValue, DateValue, ReferenceValue, TokenValue, parse_search
from service.store.kinds import QUESTIONNAIRE_RESPONSE

CAPS = QUESTIONNAIRE_RESPONSE.capabilities


def parse(*pairs: tuple[str, str], strict: bool = False):  # type: ignore[no-untyped-def]
    return parse_search(list(pairs), CAPS, base_url="http://x/fhir", default_count=20, max_count=500, strict=strict)


def test_each_type_of_value() -> None:
    request = parse(
        ("patient", "http://x/fhir/Patient/7"),
        ("identifier", "urn:sys|A|B"),
        ("status", "completed,amended"),
        ("questionnaire", "http://q/1|2.0"),
        ("authored", "ge2024-03"),
    )
    values = {c.param.name: c.values for c in request.criteria}
    assert values["patient"] == (ReferenceValue("Patient", "7"),)
    assert values["identifier"] == (TokenValue("urn:sys", "A|B"),)
    assert values["status"] == (TokenValue(None, "completed"), TokenValue(None, "amended"))
    assert values["questionnaire"] == (CanonicalValue("http://q/1", "2.0"),)
    (authored,) = values["authored"]
    assert isinstance(authored, DateValue)
    assert authored.prefix == "ge"


def test_escaped_comma_is_part_of_the_value() -> None:
    request = parse(("identifier", r"urn:sys|a\,b"))
    assert request.criteria[0].values == (TokenValue("urn:sys", "a,b"),)


def test_plain_reference_id_takes_the_parameter_target() -> None:
    assert parse(("patient", "42")).criteria[0].values == (ReferenceValue("Patient", "42"),)
    assert parse(("subject", "42")).criteria[0].values == (ReferenceValue(None, "42"),)


def test_count_sort_and_unknown_parameters() -> None:
    request = parse(("_count", "900"), ("_sort", "-authored,_lastUpdated"), ("shoe", "size"))
    assert request.count == 500
    assert request.sort == [("authored", True), ("_lastUpdated", False)]
    assert request.ignored == ["shoe"]
    with pytest.raises(BadRequest, match="shoe"):
        parse(("shoe", "size"), strict=True)


def test_version_specific_reference_is_refused() -> None:
    with pytest.raises(BadRequest):
        parse(("patient", "Patient/1/_history/2"))
