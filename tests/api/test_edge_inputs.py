"""Inputs at the edges of what the service can hold: each is a 400 with an OperationOutcome (or stored), never a
500, on SQLite and PostgreSQL alike.

Dates at the ends of the calendar, hand-made ``_page`` tokens, U+0000 (NUL) in bodies and searches, and
request bodies gunicorn cannot read.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from werkzeug.test import TestResponse

from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import Fhir


def _refused(result: TestResponse, *words: str) -> dict[str, Any]:
    assert result.status_code == 400, result.get_data(as_text=True)
    outcome: dict[str, Any] = result.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = " ".join(issue["details"]["text"] for issue in outcome["issue"])
    for word in words:
        assert word in text
    return outcome


def _total(fhir: Fhir, path: str) -> int:
    result = fhir.get(path)
    assert result.status_code == 200, result.get_data(as_text=True)
    total: int = result.get_json()["total"]
    return total


# ---- dates at the ends of the calendar ------------------------------------------------------------------

LAST_DAY = "9999-12-31"
PAST_THE_END = "9999-12-31T23:59:59-14:00"  # 10000-01-01T13:59:59Z
BEFORE_THE_START = "0001-01-01T00:00:00+14:00"  # 0000-12-31T10:00:00Z
PREFIXES = ["", "eq", "ne", "lt", "le", "gt", "ge", "sa", "eb"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("parameter", ["QuestionnaireResponse?authored", "QuestionnaireResponse?_lastUpdated"])
def test_the_last_day_of_the_calendar_is_searchable(fhir: Fhir, parameter: str, prefix: str) -> None:
    fhir.create(scored_questionnaire())
    fhir.create(scored_response(("never",) * 3, authored="2024-05-01T10:00:00Z"))
    expected = 1 if prefix in ("ne", "lt", "le", "eb") else 0
    assert _total(fhir, f"{parameter}={prefix}{LAST_DAY}") == expected
    assert _total(fhir, f"{parameter}={prefix}{LAST_DAY}T23:59:59Z") == expected
    assert _total(fhir, f"{parameter}={prefix}9999") == expected


@pytest.mark.parametrize("value", [PAST_THE_END, BEFORE_THE_START])
@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    "parameter", ["QuestionnaireResponse?authored", "QuestionnaireResponse?_lastUpdated", "Observation?date"]
)
def test_instants_outside_the_calendar_are_refused_in_searches(
    fhir: Fhir, parameter: str, prefix: str, value: str
) -> None:
    _refused(fhir.get(f"{parameter}={prefix}{quote(value)}"), "outside the dates this server handles")


@pytest.mark.parametrize("value", [PAST_THE_END, BEFORE_THE_START])
def test_instants_outside_the_calendar_are_refused_in_since(fhir: Fhir, value: str) -> None:
    _refused(fhir.get(f"QuestionnaireResponse/_history?_since={quote(value)}"), "_since", "outside the dates")


def test_the_last_day_is_accepted_in_since(fhir: Fhir) -> None:
    fhir.create(scored_questionnaire())
    assert _total(fhir, f"Questionnaire/_history?_since={LAST_DAY}") == 0
    assert _total(fhir, "Questionnaire/_history?_since=0001-01-01") == 1


@pytest.mark.parametrize("value", [PAST_THE_END, BEFORE_THE_START])
def test_a_response_authored_outside_the_calendar_is_refused(fhir: Fhir, value: str) -> None:
    fhir.create(scored_questionnaire())
    result = fhir.post("QuestionnaireResponse", scored_response(("never",) * 3, authored=value))
    outcome = _refused(result, "QuestionnaireResponse.authored", "outside the dates this server handles")
    assert outcome["issue"][0]["expression"] == ["QuestionnaireResponse.authored"]
    assert _total(fhir, "QuestionnaireResponse") == 0 and _total(fhir, "Observation") == 0


@pytest.mark.parametrize("value", [LAST_DAY, "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00", "0001-01-01"])
def test_a_response_authored_at_the_ends_of_the_calendar_is_stored(fhir: Fhir, value: str) -> None:
    fhir.create(scored_questionnaire())
    created = fhir.create(scored_response(("never",) * 3, authored=value))
    assert created["authored"] == value
    assert _total(fhir, f"QuestionnaireResponse?authored={quote(value)}") == 1
    assert _total(fhir, "Observation?derived-from=QuestionnaireResponse/" + created["id"]) >= 1


# ---- _page tokens ---------------------------------------------------------------------------------------


def _token(key_values: Any, forward: Any = True) -> str:
    raw = json.dumps({"k": key_values, "f": forward}).encode()  # json: orjson refuses integers past 64 bits
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


WHEN = "2024-05-01T10:00:00"


@pytest.mark.parametrize(
    ("path", "key_values"),
    [
        ("QuestionnaireResponse?_count=1", [WHEN, [1]]),
        ("QuestionnaireResponse?_count=1", [WHEN, {"pk": 1}]),
        ("QuestionnaireResponse?_count=1", [[WHEN], 1]),
        ("QuestionnaireResponse?_count=1", [{"at": WHEN}, 1]),
        ("QuestionnaireResponse?_count=1", [WHEN, True]),
        ("QuestionnaireResponse?_count=1", [WHEN, None]),
        ("QuestionnaireResponse?_count=1", [None, 1]),
        ("QuestionnaireResponse?_count=1", [WHEN, "1"]),
        ("QuestionnaireResponse?_count=1", [WHEN, 10**30]),
        ("QuestionnaireResponse?_count=1", [WHEN, 1.5]),
        ("QuestionnaireResponse?_count=1", [WHEN + "+01:00", 1]),
        ("QuestionnaireResponse?_count=1&_sort=-authored", [[WHEN], 1]),
        ("Questionnaire?_count=1&_sort=name", [["distress"], 1]),
        ("Questionnaire?_count=1&_sort=name", [{"name": "distress"}, 1]),
        ("Questionnaire?_count=1&_sort=name", [1, 1]),
        ("Questionnaire?_count=1&_sort=name", ["a\u0000", 1]),
        ("Questionnaire?_count=1&_sort=title", [None, 1]),
    ],
)
def test_a_page_token_with_keys_of_the_wrong_kind_is_refused(fhir: Fhir, path: str, key_values: Any) -> None:
    fhir.create(scored_questionnaire())
    _refused(fhir.get(f"{path}&_page={_token(key_values)}"), "_page token is not valid")


@pytest.mark.parametrize("token", [_token([WHEN, 1], forward="yes"), _token({"k": 1}), "bm90IGpzb24", "%%%"])
def test_a_page_token_that_is_not_one_is_refused(fhir: Fhir, token: str) -> None:
    _refused(fhir.get(f"QuestionnaireResponse?_page={token}"), "_page token is not valid")


def test_pages_go_through_questionnaires_without_a_name(fhir: Fhir) -> None:
    names = ["b", None, "a", None]
    for number, name in enumerate(names):
        questionnaire = scored_questionnaire()
        questionnaire["url"] += f"-{number}"
        if name is None:
            del questionnaire["name"]
        else:
            questionnaire["name"] = name
        fhir.create(questionnaire)
    seen: list[str | None] = []
    path: str | None = "Questionnaire?_sort=name&_count=1"
    while path is not None:
        result = fhir.get(path)
        assert result.status_code == 200, result.get_data(as_text=True)
        bundle = result.get_json()
        seen.extend(entry["resource"].get("name") for entry in bundle.get("entry", []))
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        path = following[0].split("/fhir/", 1)[1] if following else None
    assert seen == [None, None, "a", "b"]


@pytest.mark.parametrize("page", ["1" * 30, "²", "-1", "1e3"])
def test_a_history_page_that_is_not_a_version_key_is_refused(fhir: Fhir, page: str) -> None:
    _refused(fhir.get(f"QuestionnaireResponse/_history?_page={quote(page)}"), "_page token is not valid")


# ---- U+0000 (NUL) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "element"),
    [
        (lambda r: r.update(identifier={"system": "http://x", "value": "a\u0000b"}), "identifier.value"),
        (lambda r: r.update(subject={"reference": "Patient/p\u0000"}), "subject.reference"),
        (lambda r: r["item"][1].update(text="low\u0000"), "item[1].text"),
        (lambda r: r["item"][0]["answer"][0]["valueCoding"].update(code="never\u0000"), "valueCoding.code"),
        (lambda r: r.update({"language": "en", "_language": {"id": "\u0000"}}), "_language.id"),
    ],
)
def test_a_nul_in_a_submitted_string_is_refused_naming_the_element(fhir: Fhir, change: Any, element: str) -> None:
    fhir.create(scored_questionnaire())
    body = scored_response(("never",) * 3)
    change(body)
    outcome = _refused(fhir.post("QuestionnaireResponse", body), "U+0000")
    (expression,) = outcome["issue"][0]["expression"]
    assert expression.startswith("QuestionnaireResponse.") and expression.endswith(element)
    assert _total(fhir, "QuestionnaireResponse") == 0


def test_a_nul_in_a_questionnaire_is_refused(fhir: Fhir) -> None:
    questionnaire = scored_questionnaire()
    questionnaire["title"] = "Distress\u0000"
    _refused(fhir.post("Questionnaire", questionnaire), "Questionnaire.title", "U+0000")
    updated = fhir.create(scored_questionnaire())
    updated["publisher"] = "\u0000"
    _refused(fhir.put(f"Questionnaire/{updated['id']}", updated), "Questionnaire.publisher", "U+0000")


@pytest.mark.parametrize(
    "query",
    [
        "QuestionnaireResponse?identifier=a%00b",
        "QuestionnaireResponse?identifier=http://x|%00",
        "QuestionnaireResponse?patient=Patient/a%00",
        "QuestionnaireResponse?subject=a%00",
        "QuestionnaireResponse?questionnaire=http://x%00|1",
        "QuestionnaireResponse?_id=a%00b",
        "QuestionnaireResponse?status=completed,%00",
        "Observation?code=a%00b",
        "Observation?derived-from=QuestionnaireResponse/%00",
        "Questionnaire?name=a%00b",
        "Questionnaire?url=a%00b",
        "Questionnaire?title:contains=%00",
        "QuestionnaireResponse?ident%00ifier=a",
    ],
)
def test_a_nul_in_a_search_is_refused(fhir: Fhir, query: str) -> None:
    _refused(fhir.get(query), "U+0000")


def test_a_nul_in_a_conditional_create_is_refused(fhir: Fhir) -> None:
    fhir.create(scored_questionnaire())
    result = fhir.post(
        "QuestionnaireResponse", scored_response(("never",) * 3), headers={"If-None-Exist": "identifier=a%00"}
    )
    _refused(result, "U+0000")
    assert _total(fhir, "QuestionnaireResponse") == 0


# ---- bodies gunicorn cannot read -------------------------------------------------------------------------


def _post_through_gunicorn(fhir: Fhir, chunked_body: bytes) -> TestResponse:
    """POST a chunked body as gunicorn hands it to the app: read through gunicorn's own HTTP parser, which
    reports a malformed chunk from the read (the Flask test client does not decode chunked bodies)."""
    head = b"POST /fhir/QuestionnaireResponse HTTP/1.1\r\nHost: proms.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    request = next(RequestParser(Config(), [head + chunked_body], ("127.0.0.1", 50000)))
    return fhir.client.post(
        "/fhir/QuestionnaireResponse",
        headers={"Content-Type": "application/fhir+json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": request.body, "wsgi.input_terminated": True},
    )


def _chunk(data: bytes, size: bytes | None = None) -> bytes:
    return (size if size is not None else b"%x" % len(data)) + b"\r\n" + data + b"\r\n"


def test_a_well_formed_chunked_body_is_read(fhir: Fhir) -> None:
    fhir.create(scored_questionnaire())
    body = orjson.dumps(scored_response(("never",) * 3))
    result = _post_through_gunicorn(fhir, _chunk(body[:50]) + _chunk(body[50:]) + b"0\r\n\r\n")
    assert result.status_code == 201, result.get_data(as_text=True)


@pytest.mark.parametrize(
    ("chunked_body", "words"),
    [
        (_chunk(b"{}", size=b"zz") + b"0\r\n\r\n", ("chunked transfer coding is malformed", "chunk size")),
        (_chunk(b"{}", size=b"-2") + b"0\r\n\r\n", ("chunked transfer coding is malformed",)),
        (_chunk(b"{}", size=b"") + b"0\r\n\r\n", ("chunked transfer coding is malformed",)),
        (_chunk(b"{}", size=b"2;\rx") + b"0\r\n\r\n", ("chunked transfer coding is malformed",)),
        (b"2\r\n{}XX0\r\n\r\n", ("chunked transfer coding is malformed",)),  # no CRLF after the chunk
        (b"ff\r\n{}", ()),  # cut short: werkzeug's own 400
    ],
)
def test_a_malformed_chunked_body_is_refused(fhir: Fhir, chunked_body: bytes, words: tuple[str, ...]) -> None:
    fhir.create(scored_questionnaire())
    outcome = _refused(_post_through_gunicorn(fhir, chunked_body), *words)
    assert outcome["issue"][0]["code"] == ("structure" if words else "processing")
    assert _total(fhir, "QuestionnaireResponse") == 0


# ---- Questionnaire logic that would exhaust a worker -----------------------------------------------------

ANSWERS = "%resource.item.answer.value"


def test_a_runaway_calculated_expression_is_a_422_naming_it(fhir: Fhir) -> None:
    questionnaire = scored_questionnaire()
    total = next(item for item in questionnaire["item"] if item["linkId"] == "total")
    runaway = f"{ANSWERS}.select({ANSWERS}.select({ANSWERS}.select(1.repeat($this + 1)))).count()"
    total["extension"][0]["valueExpression"]["expression"] = runaway
    fhir.create(questionnaire)
    result = fhir.post("QuestionnaireResponse", scored_response(("never",) * 3))
    assert result.status_code == 422, result.get_data(as_text=True)
    (issue,) = result.get_json()["issue"]
    assert issue["severity"] == "error" and "more than 50,000 items" in issue["details"]["text"]
    assert runaway in issue["details"]["text"]
    assert _total(fhir, "QuestionnaireResponse") == 0
    validated = fhir.post("QuestionnaireResponse/$validate", scored_response(("never",) * 3))
    assert validated.status_code == 200
    assert any(runaway in issue["details"]["text"] for issue in validated.get_json()["issue"])


def test_a_pattern_re2_cannot_run_is_refused_with_the_questionnaire(fhir: Fhir) -> None:
    questionnaire = scored_questionnaire()
    questionnaire["item"][0]["extension"] = [
        {"url": "http://hl7.org/fhir/StructureDefinition/regex", "valueString": "(a)\\1"}
    ]
    result = fhir.post("Questionnaire", questionnaire)
    assert result.status_code == 422
    assert "RE2" in result.get_json()["issue"][0]["details"]["text"]
