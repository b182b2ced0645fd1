"""Notifications reach a real endpoint: handshake, events in order and numbered, heartbeats, outages survived."""

from __future__ import annotations

import time
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from service.subscriptions.topics import RESPONSE_COMPLETED, SAFETY_FLAG, SCORE_ALERT
from tests.api.builders import questionnaire, response
from tests.api.scored import URL, scored_questionnaire, scored_response
from tests.conftest import Fhir
from tests.jobs.receiver import Receiver, event_numbers

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


def subscription(
    endpoint: str,
    *,
    topic: str = RESPONSE_COMPLETED.url,
    criteria: str | None = "QuestionnaireResponse?patient=Patient/p1",
    payload: str | None = "full-resource",
    heartbeat: int | None = None,
    header: list[str] | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload is not None:
        channel["payload"] = "application/fhir+json"
        channel["_payload"] = {"extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": payload}]}
    if heartbeat is not None:
        channel["extension"] = [{"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": heartbeat}]
    if header:
        channel["header"] = header
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Recovery outcomes for the care record",
        "criteria": topic,
        "channel": channel,
    }
    if criteria is not None:
        resource["_criteria"] = {
            "extension": [{"url": f"{BACKPORT}/backport-filter-criteria", "valueString": criteria}]
        }
    return resource


def wait_status(fhir: Fhir, subscription_id: str, status: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (current := fhir.get(f"Subscription/{subscription_id}").get_json()["status"]) != status:
        assert time.monotonic() < deadline, f"subscription stayed {current}, expected {status}"
        time.sleep(0.05)


def parameter(bundle: dict[str, Any], name: str) -> Any:
    for p in bundle["entry"][0]["resource"]["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value"))
    return None


def test_handshake_then_events_in_order_with_consecutive_numbers(fhir: Fhir, receiver: Receiver, worker: Any) -> None:
    fhir.create(questionnaire())
    created = fhir.create(subscription(receiver.url))
    assert created["status"] == "requested"
    receiver.wait_for(lambda: len(receiver.bundles("handshake")) == 1)
    handshake = receiver.bundles("handshake")[0]
    assert parameter(handshake, "status") == "requested"
    assert parameter(handshake, "events-since-subscription-start") == "0"
    wait_status(fhir, created["id"], "active")

    stored = [fhir.create(response(authored=f"2024-02-0{day}T09:00:00Z")) for day in (1, 2, 3)]
    fhir.create(response(patient="p2"))  # filtered out: another patient
    receiver.wait_for(lambda: len(receiver.event_numbers()) >= 3)
    time.sleep(0.2)
    assert receiver.event_numbers() == [1, 2, 3]
    for number, bundle in enumerate(receiver.bundles("event-notification"), start=1):
        Bundle.model_validate(bundle)
        assert bundle["type"] == "history"
        status = bundle["entry"][0]["resource"]
        assert status["resourceType"] == "Parameters"
        assert status["meta"]["profile"] == [f"{BACKPORT}/backport-subscription-status-r4"]
        assert parameter(bundle, "events-since-subscription-start") == str(number)
        assert parameter(bundle, "topic") == RESPONSE_COMPLETED.url
        focus = bundle["entry"][1]
        assert focus["resource"]["id"] == stored[number - 1]["id"]
        assert focus["resource"]["subject"] == {"reference": "Patient/p1"}
        assert receiver.headers[0]["Content-Type"].startswith("application/fhir+json")

    status = fhir.get(f"Subscription/{created['id']}/$status").get_json()
    assert status["type"] == "searchset"
    assert parameter(status, "events-since-subscription-start") == "3"
    assert parameter(status, "status") == "active"
    events = fhir.get(f"Subscription/{created['id']}/$events?eventsSinceNumber=2").get_json()
    assert event_numbers(events) == [2, 3]
    assert parameter(events, "type") == "query-event"
    assert [e["resource"]["id"] for e in events["entry"][1:]] == [stored[1]["id"], stored[2]["id"]]
    only_ids = fhir.get(f"Subscription/{created['id']}/$events?eventsUntilNumber=1&content=id-only").get_json()
    assert event_numbers(only_ids) == [1]
    assert "resource" not in only_ids["entry"][1]


def test_receiver_down_for_a_while_then_back_gets_every_event(fhir: Fhir, receiver: Receiver, worker: Any) -> None:
    fhir.create(questionnaire())
    created = fhir.create(subscription(receiver.url, payload="id-only", header=["Authorization: Bearer s3cret"]))
    wait_status(fhir, created["id"], "active")
    fhir.create(response(authored="2024-03-01T09:00:00Z"))
    receiver.wait_for(lambda: receiver.event_numbers() == [1])

    receiver.stop()
    for day in (2, 3):
        fhir.create(response(authored=f"2024-03-0{day}T09:00:00Z"))
    wait_status(fhir, created["id"], "error")  # after PROMS_WORKER_MAX_FAILURES attempts
    status = fhir.get(f"Subscription/{created['id']}/$status").get_json()
    assert "error" in [p["name"] for p in status["entry"][0]["resource"]["parameter"]]
    fhir.create(response(authored="2024-03-04T09:00:00Z"))  # while in error: queued too

    receiver.start()
    receiver.wait_for(lambda: receiver.event_numbers()[-1:] == [4])
    assert receiver.event_numbers() == [1, 2, 3, 4]  # at least once, in order: none lost
    wait_status(fhir, created["id"], "active")
    assert all(h["Authorization"] == "Bearer s3cret" for h in receiver.headers)
    id_only = receiver.bundles("event-notification")[-1]["entry"][1]
    assert "resource" not in id_only and id_only["request"]["method"] == "POST"


def test_heartbeats_and_empty_payloads(fhir: Fhir, receiver: Receiver, worker: Any) -> None:
    fhir.create(questionnaire())
    created = fhir.create(subscription(receiver.url, payload=None, heartbeat=1))
    wait_status(fhir, created["id"], "active")
    fhir.create(response())
    receiver.wait_for(lambda: receiver.event_numbers() == [1])
    empty = receiver.bundles("event-notification")[0]
    assert len(empty["entry"]) == 1 and parameter(empty, "topic") is None
    receiver.wait_for(lambda: len(receiver.bundles("heartbeat")) >= 1, timeout=5)
    heartbeat = receiver.bundles("heartbeat")[0]
    assert parameter(heartbeat, "events-since-subscription-start") == "1"
    Bundle.model_validate(heartbeat)


def test_failed_handshake_marks_error_until_the_endpoint_answers(fhir: Fhir, receiver: Receiver, worker: Any) -> None:
    receiver.status = 503
    created = fhir.create(subscription(receiver.url))
    wait_status(fhir, created["id"], "error")
    receiver.status = 200
    wait_status(fhir, created["id"], "active")  # probed at the slow rate, then recovered


def test_score_and_safety_topics_filter_by_code_and_patient(fhir: Fhir, receiver: Receiver, worker: Any) -> None:
    flagged = scored_questionnaire()
    flagged["item"][2]["extension"] = [
        {
            "url": "https://recovery-proms.org/fhir/StructureDefinition/safety-flag",
            "extension": [
                {
                    "url": "condition",
                    "valueExpression": {
                        "language": "text/fhirpath",
                        "expression": "%resource.item.where(linkId = 'c').answer.value.weight() >= 3",
                    },
                },
                {"url": "message", "valueString": "Could not sleep at all"},
            ],
        }
    ]
    fhir.create(flagged)
    other = Receiver()
    try:
        scores = fhir.create(
            subscription(
                receiver.url,
                topic=SCORE_ALERT.url,
                criteria="Observation?patient=Patient/p1&code=http://proms.test/scores|distress-total",
            )
        )
        flags = fhir.create(subscription(other.url, topic=SAFETY_FLAG.url, criteria="Flag?patient=p1"))
        wait_status(fhir, scores["id"], "active")
        wait_status(fhir, flags["id"], "active")
        fhir.create(scored_response(("never", "never", "never"), authored="2024-01-01T10:00:00Z"))  # low: enters it
        fhir.create(scored_response(("never", "sometimes", "never"), authored="2024-01-08T10:00:00Z"))  # still low
        fhir.create(scored_response(("often", "often", "always"), authored="2024-01-15T10:00:00Z"))  # high, worse
        receiver.wait_for(lambda: len(receiver.event_numbers()) >= 2)
        other.wait_for(lambda: len(other.event_numbers()) >= 1)
        time.sleep(0.3)
        assert receiver.event_numbers() == [1, 2]
        bands = [
            bundle["entry"][1]["resource"]["interpretation"][0]["coding"][0]["code"]
            for bundle in receiver.bundles("event-notification")
        ]
        assert bands == ["low", "high"]
        assert other.event_numbers() == [1]
        flag = other.bundles("event-notification")[0]["entry"][1]["resource"]
        assert flag["resourceType"] == "Flag" and flag["code"]["text"] == "Could not sleep at all"
    finally:
        other.stop()
    assert URL in fhir.get("Questionnaire").get_data(as_text=True)


def test_full_resource_carries_only_what_the_owners_scopes_allow(
    fhir: Fhir, keys: Any, receiver: Receiver, worker: Any
) -> None:
    fhir.create(questionnaire())
    owner = fhir.as_token(keys.token("system/Subscription.cruds system/QuestionnaireResponse.rs?status=amended"))
    created = owner.post("Subscription", subscription(receiver.url)).get_json()
    wait_status(fhir, created["id"], "active")
    stored = fhir.create(response())
    receiver.wait_for(lambda: receiver.event_numbers() == [1])
    hidden = receiver.bundles("event-notification")[0]
    assert len(hidden["entry"]) == 1  # that something happened, not what
    assert "focus" not in str(hidden["entry"][0]["resource"])
    fhir.put(f"QuestionnaireResponse/{stored['id']}", {**stored, "status": "amended"})
    receiver.wait_for(lambda: receiver.event_numbers() == [1, 2])
    shown = receiver.bundles("event-notification")[1]
    assert shown["entry"][1]["resource"]["status"] == "amended"
    deadline = time.monotonic() + 5  # recorded once the endpoint's answer is in
    while (audits := fhir.get("AuditEvent?type=notify").get_json())["total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert audits["total"] == 1  # the disclosure is audited; the empty notification disclosed nothing
    entity = {e["what"]["reference"] for e in audits["entry"][0]["resource"]["entity"] if "what" in e}
    assert f"QuestionnaireResponse/{stored['id']}" in entity


def test_two_workers_deliver_each_event_once_and_in_order(
    fhir: Fhir, receiver: Receiver, worker: Any, settings: Any
) -> None:
    from tests.jobs.conftest import RunningWorker

    second = RunningWorker(settings)  # on PostgreSQL both work; on SQLite the second waits its turn
    try:
        fhir.create(questionnaire())
        created = fhir.create(subscription(receiver.url, payload="id-only"))
        wait_status(fhir, created["id"], "active")
        for day in range(1, 9):
            fhir.create(response(authored=f"2024-05-0{day}T09:00:00Z"))
        receiver.wait_for(lambda: len(receiver.event_numbers()) >= 8)
        time.sleep(0.3)
        assert receiver.event_numbers() == list(range(1, 9))
        assert len(receiver.bundles("handshake")) == 1
    finally:
        second.stop()


def test_the_questionnaire_task_topic_notifies_what_happens_to_a_task(
    fhir: Fhir, receiver: Receiver, worker: Any
) -> None:
    from service.subscriptions.topics import QUESTIONNAIRE_TASK
    from tests.api.tasks import task

    fhir.create(questionnaire())
    created = fhir.create(
        subscription(
            receiver.url, topic=QUESTIONNAIRE_TASK.url, criteria="Task?patient=Patient/p1&event=requested,completed"
        )
    )
    wait_status(fhir, created["id"], "active")
    asked = fhir.create(task(due=None, start=None))
    fhir.create(task(patient="p2", due=None, start=None))  # another patient: filtered out
    assert fhir.post(f"Task/{asked['id']}/$invite", {"resourceType": "Parameters"}).status_code == 200
    fhir.create(response(basedOn=[{"reference": f"Task/{asked['id']}"}]))
    receiver.wait_for(lambda: len(receiver.event_numbers()) >= 2)
    time.sleep(0.2)
    assert receiver.event_numbers() == [1, 2]
    focus = [bundle["entry"][1] for bundle in receiver.bundles("event-notification")]
    assert all(f"/Task/{asked['id']}" in entry["fullUrl"] for entry in focus)
    # Delivered after the Task was completed: the requested event names its version, the completed one carries it.
    assert focus[1]["resource"]["status"] == "completed"
    assert parameter(receiver.bundles("event-notification")[0], "topic") == QUESTIONNAIRE_TASK.url
