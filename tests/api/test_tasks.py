"""Task as a stored resource: SDC's shape on write, search, compartments, and completion by a response."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api import builders
from tests.api.tasks import SDC_TEMP, task
from tests.conftest import Fhir, Keys


@pytest.fixture
def library(fhir: Fhir) -> None:
    fhir.create(builders.questionnaire())


def _outputs(resource: dict[str, Any]) -> list[str]:
    return [o["valueReference"]["reference"] for o in resource.get("output", [])]


@pytest.mark.usefixtures("library")
def test_a_task_is_stored_versioned_and_searchable(fhir: Fhir) -> None:
    created = fhir.create(task())
    assert created["meta"]["versionId"] == "1"
    assert fhir.get(f"Task/{created['id']}").get_json()["status"] == "requested"
    for query in (
        "patient=Patient/p1",
        "subject=p1",
        "status=requested",
        f"code={SDC_TEMP}|complete-questionnaire",
        "requester=Practitioner/dr-1",
        "authored-on=2024-01-01",
    ):
        found = fhir.get(f"Task?{query}").get_json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [created["id"]], query
    assert fhir.get("Task?patient=p2").get_json()["total"] == 0
    assert fhir.get("Task?status=completed").get_json()["total"] == 0

    cancelled = {**created, "status": "cancelled"}
    response = fhir.put(f"Task/{created['id']}", cancelled)
    assert response.status_code == 200
    history = fhir.get(f"Task/{created['id']}/_history").get_json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["cancelled", "requested"]


@pytest.mark.usefixtures("library")
@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"code": {"coding": [{"system": SDC_TEMP, "code": "something-else"}]}}, "Task.code"),
        ({"input": []}, "Task.input"),
        ({"for": {"reference": "Group/g1"}}, "Task.for"),
        ({"requester": None}, "Task.requester"),
        ({"status": "completed"}, "Task.output"),
    ],
)
def test_a_task_not_shaped_as_sdc_says_is_refused_and_nothing_stored(
    fhir: Fhir, change: dict[str, Any], expression: str
) -> None:
    resource = {k: v for k, v in {**task(), **change}.items() if v is not None}
    if not resource.get("input"):
        resource.pop("input", None)
    response = fhir.post("Task", resource)
    assert response.status_code == 422, response.get_data(as_text=True)
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert expression in [e for issue in outcome["issue"] for e in issue.get("expression", [])]
    assert fhir.get("Task").get_json()["total"] == 0


@pytest.mark.usefixtures("library")
def test_a_task_for_a_questionnaire_not_held_is_refused(fhir: Fhir) -> None:
    response = fhir.post("Task", task(questionnaire="http://elsewhere.test/Questionnaire/x|1"))
    assert response.status_code == 422
    assert "does not resolve" in response.get_data(as_text=True)


@pytest.mark.usefixtures("library")
def test_another_patients_task_is_not_known_to_a_patient_token(fhir: Fhir, keys: Keys) -> None:
    mine = fhir.create(task(patient="p1"))
    theirs = fhir.create(task(patient="p2"))
    patient = fhir.as_token(keys.token("patient/*.cruds", patient="p1"))
    assert patient.get(f"Task/{mine['id']}").status_code == 200
    assert patient.get(f"Task/{theirs['id']}").status_code == 404
    found = patient.get("Task").get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [mine["id"]]
    assert patient.post("Task", task(patient="p2")).status_code == 403


@pytest.mark.usefixtures("library")
def test_a_response_based_on_the_task_completes_it_with_the_response_as_output(fhir: Fhir) -> None:
    created = fhir.create(task(due=None, start=None))
    response = fhir.create(builders.response(basedOn=[{"reference": f"Task/{created['id']}"}]))
    done = fhir.get(f"Task/{created['id']}").get_json()
    assert done["status"] == "completed"
    assert _outputs(done) == [f"QuestionnaireResponse/{response['id']}"]
    assert done["output"][0]["type"]["coding"][0] == {"system": SDC_TEMP, "code": "questionnaire-response"}
    assert done["meta"]["versionId"] == "2"
    # The submission's one AuditEvent names the response and the Task it completed.
    events = fhir.get(f"AuditEvent?entity=QuestionnaireResponse/{response['id']}&action=C").get_json()
    assert events["total"] == 1
    named = {e["what"]["reference"] for e in events["entry"][0]["resource"]["entity"] if "what" in e}
    assert {f"Task/{created['id']}", f"QuestionnaireResponse/{response['id']}", "Patient/p1"} <= named


@pytest.mark.usefixtures("library")
def test_a_response_in_the_tasks_period_completes_it_and_one_outside_does_not(fhir: Fhir) -> None:
    created = fhir.create(task(start="2024-01-01", due="2024-02-01"))
    other_patient = fhir.create(task(patient="p2", start="2024-01-01", due="2024-02-01"))
    fhir.create(builders.response(authored="2024-03-01T10:00:00Z"))  # after the due date
    assert fhir.get(f"Task/{created['id']}").get_json()["status"] == "requested"
    fhir.create(builders.response(status="in-progress", authored="2024-01-15T10:00:00Z"))  # not finished
    assert fhir.get(f"Task/{created['id']}").get_json()["status"] == "requested"
    answered = fhir.create(builders.response(authored="2024-01-15T10:00:00Z"))
    done = fhir.get(f"Task/{created['id']}").get_json()
    assert done["status"] == "completed"
    assert _outputs(done) == [f"QuestionnaireResponse/{answered['id']}"]
    assert fhir.get(f"Task/{other_patient['id']}").get_json()["status"] == "requested"
    # Completed once: the next response completes nothing more.
    fhir.create(builders.response(authored="2024-01-20T10:00:00Z"))
    assert fhir.get(f"Task/{created['id']}").get_json()["meta"]["versionId"] == "2"


@pytest.mark.usefixtures("library")
def test_an_in_progress_response_completed_by_update_completes_the_task(fhir: Fhir) -> None:
    created = fhir.create(task())
    draft = fhir.create(builders.response(status="in-progress", basedOn=[{"reference": f"Task/{created['id']}"}]))
    assert fhir.get(f"Task/{created['id']}").get_json()["status"] == "requested"
    finished = {**draft, "status": "completed"}
    assert fhir.put(f"QuestionnaireResponse/{draft['id']}", finished).status_code == 200
    done = fhir.get(f"Task/{created['id']}").get_json()
    assert done["status"] == "completed"
    assert _outputs(done) == [f"QuestionnaireResponse/{draft['id']}"]
