"""QuestionnaireResponse over HTTP: writes, conditional create, Prefer, and every search parameter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.builders import QUESTIONNAIRE_URL, questionnaire, response
from tests.conftest import Fhir, load_fixture


@pytest.fixture
def stored_questionnaire(fhir: Fhir) -> dict[str, Any]:
    return fhir.create(questionnaire())


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _follow(fhir: Fhir, bundle: dict[str, Any], relation: str) -> dict[str, Any] | None:
    for link in bundle.get("link", []):
        if link["relation"] == relation:
            result: dict[str, Any] = fhir.get(link["url"].removeprefix("http://proms.test/fhir/")).get_json()
            return result
    return None


def test_create_read_update_delete(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    created = fhir.create(response())
    path = f"QuestionnaireResponse/{created['id']}"
    assert fhir.get(path).get_json()["item"][0]["answer"][0]["valueInteger"] == 3
    amended = {**created, "status": "amended"}
    updated = fhir.put(path, amended, headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200
    assert updated.get_json()["meta"]["versionId"] == "2"
    assert fhir.delete(path).status_code == 200
    assert fhir.get(path).status_code == 410
    history = fhir.get(f"{path}/_history").get_json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]


def test_response_to_unknown_questionnaire_is_422_and_not_stored(
    fhir: Fhir, stored_questionnaire: dict[str, Any]
) -> None:
    unknown = fhir.post("QuestionnaireResponse", response(questionnaire=f"{QUESTIONNAIRE_URL}|9.9.9"))
    assert unknown.status_code == 422
    issue = unknown.get_json()["issue"][0]
    assert issue["expression"] == ["QuestionnaireResponse.questionnaire"]
    assert "9.9.9" in issue["details"]["text"]
    no_questionnaire = response()
    del no_questionnaire["questionnaire"]
    assert fhir.post("QuestionnaireResponse", no_questionnaire).status_code == 422
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 0


def test_questionnaire_resolves_by_url_alone_and_by_local_reference(
    fhir: Fhir, stored_questionnaire: dict[str, Any]
) -> None:
    assert fhir.post("QuestionnaireResponse", response(questionnaire=QUESTIONNAIRE_URL)).status_code == 201
    local = f"Questionnaire/{stored_questionnaire['id']}"
    assert fhir.post("QuestionnaireResponse", response(questionnaire=local)).status_code == 201


def test_invalid_status_is_400(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    bad = fhir.post("QuestionnaireResponse", response(status="done"))
    assert bad.status_code == 400
    assert bad.get_json()["issue"][0]["expression"] == ["QuestionnaireResponse.status"]


def test_us_core_phq9_example_is_accepted_unchanged(fhir: Fhir) -> None:
    fhir.create(load_fixture("us-core/Questionnaire-phq-9-example.json"))
    stored = fhir.create(load_fixture("us-core/QuestionnaireResponse-phq-9-example.json"))
    assert stored["subject"] == {"reference": "Patient/example"}
    found = fhir.get("QuestionnaireResponse?patient=example&author=Practitioner/practitioner-1").get_json()
    assert _ids(found) == [stored["id"]]


def test_conditional_create(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    identifier = {"system": "urn:ehr:forms", "value": "A-1"}
    condition = {"If-None-Exist": "identifier=urn:ehr:forms|A-1"}
    first = fhir.post("QuestionnaireResponse", response(identifier=identifier), headers=condition)
    assert first.status_code == 201
    again = fhir.post("QuestionnaireResponse", response(identifier=identifier), headers=condition)
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 1
    fhir.create(response(identifier={"system": "urn:ehr:forms", "value": "B-2"}, patient="p9"))
    fhir.create(response(identifier={"system": "urn:ehr:forms", "value": "B-3"}, patient="p9"))
    several = fhir.post("QuestionnaireResponse", response(), headers={"If-None-Exist": "patient=p9"})
    assert several.status_code == 412
    assert fhir.get("QuestionnaireResponse").get_json()["total"] == 3
    bad_query = fhir.post("QuestionnaireResponse", response(), headers={"If-None-Exist": "nonsense=1"})
    assert bad_query.status_code == 400


def test_prefer_return(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    minimal = fhir.post("QuestionnaireResponse", response(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201
    assert minimal.get_data() == b""
    assert minimal.headers["Location"]
    outcome = fhir.post("QuestionnaireResponse", response(), headers={"Prefer": "return=OperationOutcome"})
    assert outcome.status_code == 201
    assert outcome.get_json()["resourceType"] == "OperationOutcome"
    representation = fhir.post("QuestionnaireResponse", response(), headers={"Prefer": "return=representation"})
    assert representation.get_json()["resourceType"] == "QuestionnaireResponse"


AUTHORED = {
    "R1": "2024-01-15T10:00:00Z",
    "R2": "2024-02-10",
    "R3": "2024-03",
    "R4": "2025-06-01T00:00:00Z",
}

# Worked by hand from the FHIR date-search rules, each value being a range (a day, a month...).
DATE_CASES = {
    "authored=2024": {"R1", "R2", "R3"},
    "authored=eq2024-02": {"R2"},
    "authored=ne2024-02": {"R1", "R3", "R4"},
    "authored=lt2024-02-10": {"R1"},
    "authored=le2024-02-10": {"R1", "R2"},
    "authored=gt2024-02-10": {"R3", "R4"},
    "authored=ge2024-02-10": {"R2", "R3", "R4"},
    "authored=sa2024-02": {"R3", "R4"},
    "authored=eb2024-03-15": {"R1", "R2"},
    "authored=gt2024-03-15": {"R3", "R4"},
    "authored=2024-01-15T10:00:00Z": {"R1"},
    "authored=2024-01-15T11:00:00%2B01:00": {"R1"},
    "authored=ge2024&authored=lt2025": {"R1", "R2", "R3"},
    "authored=2024-02,2025": {"R2", "R4"},
}


def test_authored_date_search_with_every_prefix(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    names = {}
    for name, authored in AUTHORED.items():
        names[fhir.create(response(authored=authored))["id"]] = name
    fhir.create(response(authored=None))  # no authored date: matches no date search
    for query, expected in DATE_CASES.items():
        result = fhir.get(f"QuestionnaireResponse?{query}")
        assert result.status_code == 200, query
        assert {names[i] for i in _ids(result.get_json())} == expected, query


def test_search_by_reference_token_and_canonical(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    fhir.create(questionnaire(version="2.0.0"))
    a = fhir.create(
        response(
            patient="p1",
            identifier={"system": "urn:x", "value": "1"},
            author={"reference": "Practitioner/dr1"},
        )
    )["id"]
    b = fhir.create(response(patient="p2", status="in-progress", questionnaire=f"{QUESTIONNAIRE_URL}|2.0.0"))["id"]
    c = fhir.create(response(patient="p1", status="amended", questionnaire=f"{QUESTIONNAIRE_URL}|2.0.0"))["id"]
    cases = {
        "patient=p1": {a, c},
        "patient=Patient/p2": {b},
        "patient=http://proms.test/fhir/Patient/p2": {b},
        "subject=Patient/p1": {a, c},
        "subject=p2": {b},
        "subject=Group/p1": set(),
        f"questionnaire={QUESTIONNAIRE_URL}": {a, b, c},
        f"questionnaire={QUESTIONNAIRE_URL}|2.0.0": {b, c},
        f"questionnaire={QUESTIONNAIRE_URL}|1.0.0": {a},
        "status=completed": {a},
        "status=in-progress,amended": {b, c},
        "status:not=completed": {b, c},
        "author=Practitioner/dr1": {a},
        "author=dr1": {a},
        "identifier=urn:x|1": {a},
        "identifier=1": {a},
        "identifier=urn:y|1": set(),
        f"_id={b}": {b},
        "_lastUpdated=ge2020": {a, b, c},
        "patient=p1&status=amended": {c},
    }
    for query, expected in cases.items():
        result = fhir.get(f"QuestionnaireResponse?{query}")
        assert result.status_code == 200, query
        assert set(_ids(result.get_json())) == expected, query


def test_paging_walks_every_page_both_ways(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    created = [fhir.create(response(authored=f"2024-01-{day:02d}T09:00:00Z"))["id"] for day in range(1, 8)]
    page = fhir.get("QuestionnaireResponse?_count=3&_sort=authored").get_json()
    assert page["total"] == 7
    pages = [_ids(page)]
    # A response inserted while the client pages (earlier than the cursor) must not shift later pages.
    fhir.create(response(authored="2023-12-31T09:00:00Z"))
    while (page := _follow(fhir, page, "next")) is not None:
        pages.append(_ids(page))
    assert pages == [created[0:3], created[3:6], created[6:7]]
    last = fhir.get("QuestionnaireResponse?_count=3&_sort=-authored").get_json()
    assert _ids(last)[:3] == [created[6], created[5], created[4]]
    second = _follow(fhir, last, "next")
    assert second is not None
    back = _follow(fhir, second, "previous")
    assert back is not None
    assert _ids(back) == [created[6], created[5], created[4]]
    assert _follow(fhir, last, "previous") is None


def test_sort_by_last_updated_descending(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    ids = [fhir.create(response())["id"] for _ in range(3)]
    result = fhir.get("QuestionnaireResponse?_sort=-_lastUpdated").get_json()
    assert _ids(result) == list(reversed(ids))


def test_include_summary_count_and_elements(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    fhir.create(response())
    fhir.create(response())
    included = fhir.get("QuestionnaireResponse?_include=QuestionnaireResponse:questionnaire").get_json()
    modes = [e["search"]["mode"] for e in included["entry"]]
    assert modes == ["match", "match", "include"]
    assert included["entry"][2]["resource"]["id"] == stored_questionnaire["id"]
    counted = fhir.get("QuestionnaireResponse?_summary=count").get_json()
    assert counted["total"] == 2
    assert "entry" not in counted
    subset = fhir.get("QuestionnaireResponse?_elements=status").get_json()
    resource = subset["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "status"}
    assert resource["meta"]["tag"][0]["code"] == "SUBSETTED"


def test_post_search_matches_get_search(fhir: Fhir, stored_questionnaire: dict[str, Any], client: Any) -> None:
    wanted = fhir.create(response(patient="p7"))["id"]
    fhir.create(response(patient="p8"))
    result = client.post("/fhir/QuestionnaireResponse/_search", data={"patient": "p7"})
    assert result.status_code == 200
    assert _ids(result.get_json()) == [wanted]


def test_unknown_search_parameters(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    fhir.create(response())
    lenient = fhir.get("QuestionnaireResponse?colour=blue").get_json()
    assert lenient["total"] == 1
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["resource"]["issue"][0]["details"]["text"]
    assert "colour" not in lenient["link"][0]["url"]
    strict = fhir.get("QuestionnaireResponse?colour=blue", headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert "colour" in strict.get_json()["issue"][0]["details"]["text"]


@pytest.mark.parametrize(
    "query",
    [
        "authored=ap2024",
        "authored=2024-13",
        "authored=2024-01-01T10:00",
        "authored=yesterday",
        "_count=-1",
        "_count=ten",
        "_sort=colour",
        "_include=QuestionnaireResponse:author",
        "_summary=text",
        "_page=not-a-token",
        "status:above=completed",
        "patient=",
    ],
)
def test_bad_search_values_are_400(fhir: Fhir, query: str) -> None:
    result = fhir.get(f"QuestionnaireResponse?{query}")
    assert result.status_code == 400, query
    assert result.get_json()["issue"][0]["details"]["text"]


def test_count_is_capped(fhir: Fhir, stored_questionnaire: dict[str, Any]) -> None:
    fhir.create(response())
    result = fhir.get("QuestionnaireResponse?_count=100000").get_json()
    assert result["total"] == 1


def test_reference_validator_case_with_an_unresolvable_questionnaire_is_rejected(fhir: Fhir) -> None:
    # The one brianpos case the pure validator cannot judge: resolving the Questionnaire is the server's job.
    suite = load_fixture("fhir-test-cases/brianpos-qr-validation-suite.json")
    case = next(c for c in suite["test-cases"] if c["manifest"]["name"] == "questionnaire-not-resolved-qr")
    assert case["manifest"]["description"].rstrip().endswith("success: False")
    result = fhir.post("QuestionnaireResponse", case["questionnaireResponse"])
    assert result.status_code == 422
    assert result.get_json()["issue"][0]["expression"] == ["QuestionnaireResponse.questionnaire"]
