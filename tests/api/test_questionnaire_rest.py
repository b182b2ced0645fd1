"""Questionnaire: create, read, vread, update, delete, history and search over HTTP."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.api.builders import QUESTIONNAIRE_URL, questionnaire, response
from tests.api.scored import scored_questionnaire
from tests.conftest import Fhir, load_fixture


def test_create_returns_201_with_location_etag_and_server_meta(fhir: Fhir) -> None:
    created = fhir.post("Questionnaire", {**questionnaire(), "id": "client-chosen"})
    assert created.status_code == 201
    body = created.get_json()
    assert body["id"] != "client-chosen"  # ids are assigned by the server on create
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"] == f"http://proms.test/fhir/Questionnaire/{body['id']}/_history/1"
    assert created.headers["Last-Modified"].endswith("GMT")
    assert created.headers["Content-Type"].startswith("application/fhir+json")


def test_read_and_vread_return_the_stored_version(fhir: Fhir) -> None:
    body = fhir.create(questionnaire(status="draft"))
    fhir.put(f"Questionnaire/{body['id']}", {**body, "title": "Mood check v2"})
    read = fhir.get(f"Questionnaire/{body['id']}")
    assert read.status_code == 200
    assert read.get_json()["title"] == "Mood check v2"
    assert read.headers["ETag"] == 'W/"2"'
    first = fhir.get(f"Questionnaire/{body['id']}/_history/1")
    assert first.status_code == 200
    assert first.get_json()["title"] == "Mood check"
    assert first.get_json()["meta"]["versionId"] == "1"
    assert fhir.get(f"Questionnaire/{body['id']}/_history/9").status_code == 404
    assert fhir.get(f"Questionnaire/{body['id']}/_history/x").status_code == 404


def test_read_unknown_id_is_404_operation_outcome(fhir: Fhir) -> None:
    missing = fhir.get("Questionnaire/nope")
    assert missing.status_code == 404
    outcome = missing.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Questionnaire/nope" in outcome["issue"][0]["details"]["text"]


def test_update_with_if_match(fhir: Fhir) -> None:
    body = fhir.create(questionnaire(status="draft"))
    path = f"Questionnaire/{body['id']}"
    stale = fhir.put(path, {**body, "title": "x"}, headers={"If-Match": 'W/"7"'})
    assert stale.status_code == 412
    assert fhir.get(path).get_json()["meta"]["versionId"] == "1"
    fresh = fhir.put(path, {**body, "title": "x"}, headers={"If-Match": 'W/"1"'})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == 'W/"2"'
    assert fhir.put(path, {**body, "title": "y"}, headers={"If-Match": "garbage"}).status_code == 400


def test_update_id_must_match_url(fhir: Fhir) -> None:
    body = fhir.create(questionnaire(status="draft"))
    mismatch = fhir.put(f"Questionnaire/{body['id']}", {**body, "id": "other"})
    assert mismatch.status_code == 400
    assert mismatch.get_json()["issue"][0]["expression"] == ["Questionnaire.id"]


def test_update_as_create_uses_the_client_id(fhir: Fhir) -> None:
    created = fhir.put("Questionnaire/k10-au", {**questionnaire(), "id": "k10-au"})
    assert created.status_code == 201
    assert fhir.get("Questionnaire/k10-au").get_json()["id"] == "k10-au"


def test_active_questionnaire_items_cannot_change_in_place(fhir: Fhir) -> None:
    body = fhir.create(questionnaire())
    path = f"Questionnaire/{body['id']}"
    changed = {**body, "item": [{"linkId": "1", "text": "Changed wording", "type": "integer"}]}
    refused = fhir.put(path, changed)
    assert refused.status_code == 409
    text = refused.get_json()["issue"][0]["details"]["text"]
    assert "new version" in text
    assert fhir.get(path).get_json()["item"][0]["text"] == "How is your mood?"
    assert fhir.put(path, {**body, "version": "2.0.0"}).status_code == 409
    retired = fhir.put(path, {**body, "status": "retired"})
    assert retired.status_code == 200


def test_url_and_version_are_unique(fhir: Fhir) -> None:
    fhir.create(questionnaire())
    duplicate = fhir.post("Questionnaire", questionnaire())
    assert duplicate.status_code == 422
    assert "already exists" in duplicate.get_json()["issue"][0]["details"]["text"]
    assert fhir.post("Questionnaire", questionnaire(version="2.0.0")).status_code == 201
    assert fhir.get("Questionnaire?url=" + QUESTIONNAIRE_URL).get_json()["total"] == 2


def test_unversioned_questionnaires_are_unique_by_url(fhir: Fhir) -> None:
    assert fhir.post("Questionnaire", questionnaire(version=None)).status_code == 201
    assert fhir.post("Questionnaire", questionnaire(version=None)).status_code == 422


def test_questionnaire_needs_a_url_and_a_valid_status(fhir: Fhir) -> None:
    no_url = questionnaire()
    del no_url["url"]
    assert fhir.post("Questionnaire", no_url).status_code == 422
    bad_status = fhir.post("Questionnaire", questionnaire(status="published"))
    assert bad_status.status_code == 400
    assert bad_status.get_json()["issue"][0]["expression"] == ["Questionnaire.status"]
    assert fhir.get("Questionnaire").get_json()["total"] == 0


def test_delete_keeps_history_and_reads_give_410(fhir: Fhir) -> None:
    body = fhir.create(questionnaire(status="draft"))
    path = f"Questionnaire/{body['id']}"
    deleted = fhir.delete(path)
    assert deleted.status_code == 200
    assert deleted.get_json()["resourceType"] == "OperationOutcome"
    assert fhir.get(path).status_code == 410
    assert fhir.delete(path).status_code == 200  # deleting again changes nothing
    history = fhir.get(f"{path}/_history").get_json()
    assert history["type"] == "history"
    assert history["total"] == 2
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    assert fhir.get(f"{path}/_history/1").status_code == 200
    assert fhir.get(f"{path}/_history/2").status_code == 410
    assert fhir.get("Questionnaire").get_json()["total"] == 0
    assert fhir.delete("Questionnaire/never-there").status_code == 404


def test_answered_questionnaire_cannot_be_deleted(fhir: Fhir) -> None:
    body = fhir.create(questionnaire())
    fhir.create(response())
    refused = fhir.delete(f"Questionnaire/{body['id']}")
    assert refused.status_code == 409
    assert "retired" in refused.get_json()["issue"][0]["details"]["text"]
    assert fhir.get(f"Questionnaire/{body['id']}").status_code == 200


def test_type_history_lists_every_version_newest_first(fhir: Fhir) -> None:
    first = fhir.create(questionnaire(status="draft"))
    fhir.create(questionnaire(version="2.0.0"))
    fhir.put(f"Questionnaire/{first['id']}", {**first, "title": "Renamed"})
    history = fhir.get("Questionnaire/_history").get_json()
    assert history["total"] == 3
    assert [e["request"]["method"] for e in history["entry"]] == ["PUT", "POST", "POST"]
    paged = fhir.get("Questionnaire/_history?_count=2").get_json()
    assert len(paged["entry"]) == 2
    next_url = next(link["url"] for link in paged["link"] if link["relation"] == "next")
    rest = fhir.get(next_url.removeprefix("http://proms.test/fhir/")).get_json()
    assert len(rest["entry"]) == 1
    assert rest["entry"][0]["request"]["method"] == "POST"


def _ids(bundle: dict) -> set[str]:  # type: ignore[type-arg]
    return {entry["resource"]["id"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"}


def test_search_questionnaires_by_each_parameter(fhir: Fhir) -> None:
    mood = fhir.create(questionnaire())
    other = fhir.create(
        questionnaire(
            url="http://proms.test/Questionnaire/k10",
            name="Kessler10",
            title="Kessler Distress Scale",
            status="draft",
            code=[{"system": "http://loinc.org", "code": "93479-4"}],
        )
    )
    us_core = fhir.create(load_fixture("us-core/Questionnaire-phq-9-example.json"))
    cases = {
        f"url={QUESTIONNAIRE_URL}": {mood["id"]},
        "version=1.0.0": {mood["id"], other["id"]},
        "name=mood": {mood["id"]},
        "name:exact=mood": set(),
        "name:exact=MoodCheck": {mood["id"]},
        "title:contains=distress": {other["id"]},
        "title=phq": {us_core["id"]},
        "status=draft": {other["id"]},
        "status=active": {mood["id"], us_core["id"]},
        "status:not=active": {other["id"]},
        "code=http://loinc.org|44249-1": {mood["id"], us_core["id"]},
        "code=93479-4": {other["id"]},
        "code=http://snomed.info/sct|44249-1": set(),
        f"_id={mood['id']},{other['id']}": {mood["id"], other["id"]},
        "_lastUpdated=gt2000-01-01": {mood["id"], other["id"], us_core["id"]},
        "_lastUpdated=lt2000-01-01": set(),
    }
    for query, expected in cases.items():
        result = fhir.get(f"Questionnaire?{query}")
        assert result.status_code == 200, query
        assert _ids(result.get_json()) == expected, query


def test_questionnaire_whose_scores_cannot_be_computed_is_422(fhir: Fhir) -> None:
    from tests.api.scored import scored_questionnaire

    broken = scored_questionnaire()
    broken["item"][3]["extension"][0]["valueExpression"]["expression"] = "%resource.item.answer.value.weight(("
    result = fhir.post("Questionnaire", broken)
    assert result.status_code == 422
    issue = result.get_json()["issue"][0]
    assert issue["expression"][0].startswith("Questionnaire.item[3]")
    assert fhir.get("Questionnaire").get_json()["total"] == 0


def _overlapping_and_unweighted() -> dict[str, Any]:
    broken = scored_questionnaire()
    total = broken["item"][3]
    band = next(e for e in total["extension"] if e["url"].endswith("/score-band"))
    band["extension"][1]["valueDecimal"] = 5  # 'low' now 0 to 5, over 'moderate' (4 to 6)
    del broken["item"][1]["answerOption"][2]["extension"]  # 'b' often: no weight while the other options have one
    return broken


def test_a_definition_the_check_rejects_is_refused_with_each_problem(fhir: Fhir) -> None:
    broken = _overlapping_and_unweighted()
    created = fhir.post("Questionnaire", broken)
    assert created.status_code == 422
    texts = [issue["details"]["text"] for issue in created.get_json()["issue"]]
    assert any("Item 'b': options often have no itemWeight" in text for text in texts), texts
    assert "Item 'total': the score bands 'low' (0 to 5) and 'moderate' (4 to 6) overlap" in texts
    assert all(issue["severity"] == "error" for issue in created.get_json()["issue"])
    assert fhir.put("Questionnaire/q-broken", {**broken, "id": "q-broken"}).status_code == 422
    assert fhir.get("Questionnaire").get_json()["total"] == 0

    stored = fhir.create({**scored_questionnaire(), "status": "draft"})
    changed = fhir.put(f"Questionnaire/{stored['id']}", {**broken, "id": stored["id"], "status": "draft"})
    assert changed.status_code == 422
    assert fhir.get(f"Questionnaire/{stored['id']}").get_json()["meta"]["versionId"] == "1"


def test_a_declared_range_the_answers_cannot_reach_is_refused(fhir: Fhir) -> None:
    broken = scored_questionnaire()
    broken["item"][3]["extension"].append(
        {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 12}
    )
    refused = fhir.post("Questionnaire", broken)
    assert refused.status_code == 422
    (issue,) = refused.get_json()["issue"]
    assert issue["details"]["text"] == "Score 'total': the highest answers give 9 but the item declares maxValue 12"


def test_a_definition_without_a_licence_is_stored_with_a_warning(fhir: Fhir) -> None:
    unlicensed = scored_questionnaire()
    assert "copyright" not in unlicensed
    created = fhir.post("Questionnaire", unlicensed, headers={"Prefer": "return=OperationOutcome"})
    assert created.status_code == 201
    (warning,) = created.get_json()["issue"]
    assert warning["severity"] == "warning"
    assert warning["details"]["text"] == "Questionnaire.copyright is missing: state the instrument's licence"


def test_a_definition_stored_before_the_check_can_still_be_retired(app: Flask, fhir: Fhir) -> None:
    from service.auth.access import UNRESTRICTED
    from service.store.kinds import QUESTIONNAIRE
    from service.writes import insert

    broken = {**_overlapping_and_unweighted(), "id": "old-one", "status": "active"}
    services = app.web.services
    with services.db.transaction() as session:  # as an earlier release stored it, before the check
        insert(session, services, QUESTIONNAIRE, broken, UNRESTRICTED, resource_id="old-one")
    retired = fhir.put("Questionnaire/old-one", {**broken, "status": "retired"}, {"Prefer": "return=OperationOutcome"})
    assert retired.status_code == 200
    issues = retired.get_json()["issue"]
    assert any("overlap" in issue["details"]["text"] for issue in issues)
    assert {issue["severity"] for issue in issues} == {"warning"}  # there before, and not made worse
    # A change to what the check reads is refused until the definition is put right.
    fhir.put("Questionnaire/old-one", {**broken, "status": "draft"})
    changed = fhir.put("Questionnaire/old-one", {**broken, "status": "draft", "item": broken["item"][1:]})
    assert changed.status_code == 422
