"""Subscriptions through the API: topics as Basic, the backport Subscription profile, validation, access control."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.basic import Basic

from service.subscriptions.topics import QUESTIONNAIRE_TASK, RESPONSE_COMPLETED, SAFETY_FLAG, SCORE_ALERT, TOPIC_BASE
from tests.conftest import Fhir, Keys
from tests.jobs.test_delivery import subscription

ENDPOINT = "https://receiver.example/notify"
XVER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"


def test_topics_are_published_as_basic_resources(fhir: Fhir, keys: Keys) -> None:
    listed = fhir.get("Basic?code=SubscriptionTopic").get_json()
    assert listed["total"] == 4
    urls = set()
    for entry in listed["entry"]:
        topic = entry["resource"]
        Basic.model_validate(topic)
        assert topic["code"]["coding"][0] == {"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}
        urls.add(next(e["valueUri"] for e in topic["extension"] if e["url"] == f"{XVER}.url"))
    assert urls == {RESPONSE_COMPLETED.url, SCORE_ALERT.url, SAFETY_FLAG.url, QUESTIONNAIRE_TASK.url}
    assert all(url.startswith(TOPIC_BASE) for url in urls)
    one = fhir.get("Basic/score-alert").get_json()
    filters = [
        next(part["valueString"] for part in e["extension"] if part["url"] == "filterParameter")
        for e in one["extension"]
        if e["url"] == f"{XVER}.canFilterBy"
    ]
    assert filters == ["patient", "code"]
    assert fhir.get("Basic/unknown").status_code == 404
    assert fhir.get("Basic?code=Something").get_json()["total"] == 0
    assert (
        fhir.get("Basic?code=http://hl7.org/fhir/fhir-types|SubscriptionTopic&_id=safety-flag").get_json()["total"] == 1
    )
    # Definitions, not health data: any authenticated client may read them.
    patient = fhir.as_token(keys.token("patient/Observation.rs", patient="p1"))
    assert patient.get("Basic?code=SubscriptionTopic").status_code == 200
    assert fhir.as_token(None).get("Basic?code=SubscriptionTopic").status_code == 401


def test_create_search_switch_off_and_delete(fhir: Fhir) -> None:
    created = fhir.create(subscription(ENDPOINT))
    assert created["status"] == "requested"
    assert (
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
        in (created["meta"]["profile"])
    )
    found = fhir.get(f"Subscription?status=requested&url={ENDPOINT}&_id={created['id']}").get_json()
    assert [e["resource"]["id"] for e in found["entry"]] == [created["id"]]
    assert fhir.get("Subscription?status=active").get_json()["total"] == 0
    assert fhir.get("Subscription?patient=p1").get_json()["total"] == 1
    # Clients may switch a subscription off; active and error are the server's to set.
    off = fhir.put(f"Subscription/{created['id']}", {**created, "status": "off"}).get_json()
    assert off["status"] == "off"
    again = fhir.put(f"Subscription/{created['id']}", {**off, "status": "active"}).get_json()
    assert again["status"] == "requested"  # back on: a new handshake first
    assert fhir.delete(f"Subscription/{created['id']}").status_code == 200
    assert fhir.get(f"Subscription/{created['id']}").status_code == 410
    assert fhir.get(f"Subscription/{created['id']}/$status").status_code == 410


def _issues(result: Any) -> list[str]:
    return [issue["expression"][0] for issue in result.get_json()["issue"] if "expression" in issue]


def test_what_cannot_be_served_is_refused_with_the_reason(fhir: Fhir) -> None:
    unknown = fhir.post("Subscription", subscription(ENDPOINT, topic="https://elsewhere.example/topic"))
    assert unknown.status_code == 422
    assert _issues(unknown) == ["Subscription.criteria"]
    bad_filter = fhir.post("Subscription", subscription(ENDPOINT, criteria="QuestionnaireResponse?author=x"))
    assert bad_filter.status_code == 422 and "not a filter" in bad_filter.get_data(as_text=True)
    wrong_type = fhir.post("Subscription", subscription(ENDPOINT, criteria="Observation?patient=p1"))
    assert wrong_type.status_code == 422
    plain_http = fhir.post("Subscription", subscription("http://receiver.example/notify"))
    assert plain_http.status_code == 422 and _issues(plain_http) == ["Subscription.channel.endpoint"]
    assert fhir.post("Subscription", subscription("https://user:pw@receiver.example/")).status_code == 422
    websocket = subscription(ENDPOINT)
    websocket["channel"]["type"] = "websocket"
    assert fhir.post("Subscription", websocket).status_code == 422
    assert fhir.post("Subscription", subscription(ENDPOINT, header=["Host: evil.example"])).status_code == 422
    no_reason = {k: v for k, v in subscription(ENDPOINT).items() if k != "reason"}
    assert fhir.post("Subscription", no_reason).status_code == 400
    assert fhir.get("Subscription/nothing/$events?eventsSinceNumber=x").status_code in (400, 404)


def test_a_patient_token_subscribes_only_to_its_own_patient(fhir: Fhir, keys: Keys) -> None:
    scopes = "patient/Subscription.cruds patient/QuestionnaireResponse.rs"
    patient = fhir.as_token(keys.token(scopes, patient="p1"))
    own = patient.post("Subscription", subscription(ENDPOINT, criteria="QuestionnaireResponse?patient=Patient/p1"))
    assert own.status_code == 201
    other = patient.post("Subscription", subscription(ENDPOINT, criteria="QuestionnaireResponse?patient=p2"))
    assert other.status_code == 403
    assert patient.post("Subscription", subscription(ENDPOINT, criteria=None)).status_code == 403
    both = subscription(ENDPOINT, criteria="QuestionnaireResponse?patient=p1,p2")
    assert patient.post("Subscription", both).status_code == 403
    # The backend's subscription about p2 is outside this token's compartment.
    backend = fhir.create(subscription(ENDPOINT, criteria="QuestionnaireResponse?patient=p2"))
    assert patient.get(f"Subscription/{backend['id']}").status_code == 404  # another patient's: not known to it
    assert patient.get(f"Subscription/{backend['id']}/$status").status_code == 404
    assert patient.get("Subscription").get_json()["total"] == 1
    assert patient.get("Subscription?patient=p2").status_code == 403
    # A topic about what the token cannot read at all is refused up front.
    flags = patient.post("Subscription", subscription(ENDPOINT, topic=SAFETY_FLAG.url, criteria="Flag?patient=p1"))
    assert flags.status_code == 403


def test_subscribing_needs_subscription_scopes_and_read_access_to_the_topic(fhir: Fhir, keys: Keys) -> None:
    reader = fhir.as_token(keys.token("system/QuestionnaireResponse.rs"))
    assert reader.post("Subscription", subscription(ENDPOINT)).status_code == 403
    blind = fhir.as_token(keys.token("system/Subscription.cruds"))
    refused = blind.post("Subscription", subscription(ENDPOINT))
    assert refused.status_code == 403
    assert "QuestionnaireResponse" in refused.get_data(as_text=True)
    allowed = fhir.as_token(keys.token("system/Subscription.cruds system/QuestionnaireResponse.rs"))
    assert allowed.post("Subscription", subscription(ENDPOINT)).status_code == 201
