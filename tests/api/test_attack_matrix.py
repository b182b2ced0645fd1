"""The attack matrix: every kind of token against every kind of interaction, with the status each must get, on
SQLite and PostgreSQL. Then the holes a red-team review found, each shown closed.

Token kinds: none, a forged one, a patient (p1) with every patient scope, a patient with read scopes only, a
clinician (user/*.cruds), a backend (system/*.cruds), a backend whose response writes are filtered to one
questionnaire, a token with no sub, client_id or azp and no scopes, and one with scopes as an ``scp`` list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from service.auth.access import UNRESTRICTED
from service.resources import parse_search, search
from service.services import Services
from service.subscriptions.delivery import Deliverer
from tests.api.scored import URL, scored_questionnaire, scored_response
from tests.conftest import BASE_URL, ISSUER, Fhir, Keys

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
OTHER_URL = "http://proms.test/Questionnaire/other"


def flagged_questionnaire() -> dict[str, Any]:
    questionnaire = scored_questionnaire()
    questionnaire["item"][2]["extension"] = [
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
    return questionnaire


def raw_token(keys: Keys, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": BASE_URL, "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, keys.private_key, algorithm="RS256", headers={"kid": keys.kid})


def tokens(keys: Keys) -> dict[str, str | None]:
    return {
        "none": None,
        "forged": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "patient": keys.token("patient/*.cruds", patient="p1"),
        "patient-read": keys.token("patient/*.rs", patient="p1"),
        "clinician": keys.token("user/*.cruds", sub="dr-who"),
        "backend": keys.token("system/*.cruds"),
        "filtered": keys.token(f"system/QuestionnaireResponse.crs?questionnaire={OTHER_URL}"),
        "anonymous": raw_token(keys),  # no sub, client_id, azp, nor scope
        "scp-list": raw_token(keys, client_id="lister", scp=["system/Subscription.cruds"]),
    }


@pytest.fixture
def world(fhir: Fhir) -> dict[str, str]:
    """p1's and p2's scored responses, p1's unreviewed safety Flag, and the ids the requests below use."""
    fhir.create(flagged_questionnaire())
    own = fhir.create(scored_response(("often", "never", "always"), patient="p1"))
    other = fhir.create(scored_response(("always", "always", "never"), patient="p2"))
    flag = fhir.get("Flag?patient=p1").get_json()["entry"][0]["resource"]
    return {"own": own["id"], "other": other["id"], "flag": flag["id"]}


Request = Callable[[Fhir, Fhir, dict[str, str]], Any]


def _review_flag(caller: Fhir, admin: Fhir, world: dict[str, str]) -> Any:
    flag = admin.get(f"Flag/{world['flag']}").get_json()
    return caller.put(f"Flag/{world['flag']}", {**flag, "status": "inactive"})


REQUESTS: dict[str, Request] = {
    "read own response": lambda c, a, w: c.get(f"QuestionnaireResponse/{w['own']}"),
    "read other's response": lambda c, a, w: c.get(f"QuestionnaireResponse/{w['other']}"),
    "search other's responses": lambda c, a, w: c.get("QuestionnaireResponse?patient=p2"),
    "submit own response": lambda c, a, w: c.post("QuestionnaireResponse", scored_response(("never",) * 3)),
    "submit other's response": lambda c, a, w: c.post(
        "QuestionnaireResponse", scored_response(("never",) * 3, patient="p2")
    ),
    "delete other's response": lambda c, a, w: c.delete(f"QuestionnaireResponse/{w['other']}"),
    "review own safety flag": _review_flag,
    "system export": lambda c, a, w: c.get("$export", headers=ASYNC),
    "search the audit log": lambda c, a, w: c.get("AuditEvent"),
    "publish a questionnaire": lambda c, a, w: c.post("Questionnaire", {**scored_questionnaire(), "version": "9"}),
    "delete the audit log": lambda c, a, w: c.delete("AuditEvent/anything"),
}

# The status each token kind must get for each request.
EXPECTED: dict[str, dict[str, int]] = {
    "read own response": {
        "none": 401, "forged": 401, "patient": 200, "patient-read": 200, "clinician": 200, "backend": 200,
        "filtered": 404, "anonymous": 403, "scp-list": 403,
    },
    "read other's response": {
        "none": 401, "forged": 401, "patient": 404, "patient-read": 404, "clinician": 200, "backend": 200,
        "filtered": 404, "anonymous": 403, "scp-list": 403,
    },
    "search other's responses": {
        "none": 401, "forged": 401, "patient": 403, "patient-read": 403, "clinician": 200, "backend": 200,
        "filtered": 200, "anonymous": 403, "scp-list": 403,
    },
    "submit own response": {
        "none": 401, "forged": 401, "patient": 201, "patient-read": 403, "clinician": 201, "backend": 201,
        "filtered": 403, "anonymous": 403, "scp-list": 403,
    },
    "submit other's response": {
        "none": 401, "forged": 401, "patient": 403, "patient-read": 403, "clinician": 201, "backend": 201,
        "filtered": 403, "anonymous": 403, "scp-list": 403,
    },
    "delete other's response": {
        "none": 401, "forged": 401, "patient": 404, "patient-read": 403, "clinician": 200, "backend": 200,
        "filtered": 403, "anonymous": 403, "scp-list": 403,
    },
    "review own safety flag": {
        "none": 401, "forged": 401, "patient": 403, "patient-read": 403, "clinician": 200, "backend": 200,
        "filtered": 403, "anonymous": 403, "scp-list": 403,
    },
    "system export": {
        "none": 401, "forged": 401, "patient": 403, "patient-read": 403, "clinician": 202, "backend": 202,
        "filtered": 202, "anonymous": 403, "scp-list": 202,  # a backend: the Questionnaires any client may read
    },
    "search the audit log": {
        "none": 401, "forged": 401, "patient": 403, "patient-read": 403, "clinician": 200, "backend": 200,
        "filtered": 403, "anonymous": 403, "scp-list": 403,
    },
    "publish a questionnaire": {
        "none": 401, "forged": 401, "patient": 403, "patient-read": 403, "clinician": 403, "backend": 201,
        "filtered": 403, "anonymous": 403, "scp-list": 403,
    },
    "delete the audit log": {
        "none": 401, "forged": 401, "patient": 405, "patient-read": 405, "clinician": 405, "backend": 405,
        "filtered": 405, "anonymous": 405, "scp-list": 405,
    },
}  # fmt: skip


@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_attack_matrix(fhir: Fhir, keys: Keys, world: dict[str, str], request_name: str) -> None:
    for token_kind, token in tokens(keys).items():
        caller = fhir.as_token(token)
        result = REQUESTS[request_name](caller, fhir, world)
        expected = EXPECTED[request_name][token_kind]
        assert result.status_code == expected, (request_name, token_kind, result.get_data(as_text=True)[:300])
        if result.status_code >= 400:
            assert result.get_json()["resourceType"] == "OperationOutcome", (request_name, token_kind)
        if request_name == "delete other's response" and result.status_code == 200:
            fhir.post("QuestionnaireResponse", scored_response(("always", "always", "never"), patient="p2"))
            world["other"] = fhir.get("QuestionnaireResponse?patient=p2").get_json()["entry"][0]["resource"]["id"]
        if request_name == "review own safety flag" and result.status_code == 200:
            flag = fhir.get(f"Flag/{world['flag']}").get_json()
            assert fhir.put(f"Flag/{world['flag']}", {**flag, "status": "active"}).status_code == 200


# the holes found, each closed --------------------------------------------------------------------------


def test_a_subscriptions_events_are_shown_as_the_caller_may_see_them(
    fhir: Fhir, keys: Keys, world: dict[str, str], services: Services
) -> None:
    created = fhir.create(
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "all responses",
            "criteria": "https://recovery-proms.org/fhir/SubscriptionTopic/questionnaire-response-completed",
            "channel": {
                "type": "rest-hook",
                "endpoint": "https://receiver.example/notify",
                "payload": "application/fhir+json",
                "_payload": {
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                            "backport-payload-content",
                            "valueCode": "full-resource",
                        }
                    ]
                },
            },
        }
    )
    fhir.create(scored_response(("never", "never", "never"), patient="p2"))
    Deliverer(services, "test-worker").fan_out()
    path = f"Subscription/{created['id']}/$events?content=full-resource"
    owner_view = fhir.get(path).get_json()
    assert any(e.get("resource", {}).get("resourceType") == "QuestionnaireResponse" for e in owner_view["entry"])
    another_client = fhir.as_token(keys.token("system/Subscription.rs", client_id="someone-else"))
    events = another_client.get(path)
    assert events.status_code == 200
    assert all(e.get("resource", {}).get("resourceType") != "QuestionnaireResponse" for e in events.get_json()["entry"])
    assert another_client.get(f"QuestionnaireResponse/{world['other']}").status_code == 403


def test_a_token_with_no_client_and_no_scope_is_never_development_mode(fhir: Fhir, keys: Keys) -> None:
    anonymous = fhir.as_token(raw_token(keys))
    assert anonymous.get("$export", headers=ASYNC).status_code == 403
    lister = fhir.as_token(raw_token(keys, scp=["system/Subscription.cruds"]))
    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "everything",
        "criteria": "https://recovery-proms.org/fhir/SubscriptionTopic/questionnaire-response-completed",
        "channel": {"type": "rest-hook", "endpoint": "https://receiver.example/notify"},
    }
    refused = lister.post("Subscription", subscription)
    assert refused.status_code == 403  # its scopes (recorded from the scp list) do not cover QuestionnaireResponse
    assert "QuestionnaireResponse" in refused.get_json()["issue"][0]["details"]["text"]


def test_reviewing_a_safety_flag_is_a_clinicians_act_recorded_with_who_and_when(
    fhir: Fhir, keys: Keys, world: dict[str, str]
) -> None:
    flag = fhir.get(f"Flag/{world['flag']}").get_json()
    patient = fhir.as_token(keys.token("patient/*.cruds", patient="p1"))
    refused = patient.put(f"Flag/{world['flag']}", {**flag, "status": "inactive"})
    assert refused.status_code == 403
    assert fhir.get(f"Flag/{world['flag']}").get_json()["status"] == "active"
    clinician = fhir.as_token(keys.token("user/Flag.rus", sub="dr-who", client_id="ehr-7"))
    reviewed = clinician.put(f"Flag/{world['flag']}", {**flag, "status": "inactive"})
    assert reviewed.status_code == 200
    stored = reviewed.get_json()
    assert stored["status"] == "inactive"
    assert stored["period"]["end"] >= stored["period"]["start"]
    provenance = fhir.get(f"Provenance?target=Flag/{world['flag']}").get_json()["entry"][0]["resource"]
    assert provenance["target"] == [{"reference": f"Flag/{world['flag']}/_history/2"}]
    agent = provenance["agent"][0]
    assert agent["who"]["identifier"]["value"] == "dr-who"
    assert agent["type"]["coding"][0]["code"] == "verifier"
    audits = fhir.get(f"AuditEvent?entity=Flag/{world['flag']}&type=update&_sort=date").get_json()["entry"]
    refusal, review = (entry["resource"] for entry in audits)
    assert (refusal["outcome"], refusal["agent"][0]["altId"]) == ("4", "user-1")  # the patient app's user, refused
    assert (review["outcome"], review["agent"][0]["altId"]) == ("0", "dr-who")


def test_a_filtered_write_scope_applies_to_what_is_written(fhir: Fhir, keys: Keys, world: dict[str, str]) -> None:
    before = fhir.get("QuestionnaireResponse?_summary=count").get_json()["total"]
    wrong = fhir.as_token(keys.token(f"system/QuestionnaireResponse.c?questionnaire={OTHER_URL}"))
    assert wrong.post("QuestionnaireResponse", scored_response(("never",) * 3)).status_code == 403
    right = fhir.as_token(keys.token(f"system/QuestionnaireResponse.c?questionnaire={URL}"))
    assert right.post("QuestionnaireResponse", scored_response(("never",) * 3)).status_code == 201
    assert fhir.get("QuestionnaireResponse?_summary=count").get_json()["total"] == before + 1
    counting = fhir.as_token(keys.token("system/QuestionnaireResponse.rs?_count=1"))
    result = counting.get("QuestionnaireResponse")
    assert result.status_code == 403  # a filter of result parameters would restrict nothing
    assert "_count" in result.get_json()["issue"][0]["details"]["text"]


def test_a_business_identifier_is_one_response_about_one_subject(fhir: Fhir, keys: Keys) -> None:
    fhir.create(flagged_questionnaire())
    first = scored_response(("never",) * 3, patient="p1")
    first["identifier"] = {"system": "urn:ehr", "value": "form-1"}
    stored = fhir.create(first)
    assert fhir.post("QuestionnaireResponse", first).get_json()["id"] == stored["id"]  # a retry: the same one
    clash = scored_response(("always",) * 3, patient="p2")
    clash["identifier"] = first["identifier"]
    refused = fhir.post("QuestionnaireResponse", clash)
    assert refused.status_code == 409
    assert stored["id"] not in refused.get_data(as_text=True)  # nothing of the other response is told
    assert "Patient/p1" not in refused.get_data(as_text=True)
    patient = fhir.as_token(keys.token("patient/*.cruds", patient="p2"))
    assert patient.post("QuestionnaireResponse", clash).status_code == 409
    assert fhir.get("QuestionnaireResponse?patient=p2").get_json()["total"] == 0


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://10.1.2.3/notify",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/notify",
        "http://127.0.0.1:8080/notify",
        "https://localhost/notify",
    ],
)
def test_subscriptions_never_reach_internal_addresses(fhir: Fhir, endpoint: str) -> None:
    subscription = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "probe",
        "criteria": "https://recovery-proms.org/fhir/SubscriptionTopic/questionnaire-response-completed",
        "channel": {"type": "rest-hook", "endpoint": endpoint},
    }
    refused = fhir.post("Subscription", subscription)
    assert refused.status_code == 422
    assert refused.get_json()["issue"][0]["expression"] == ["Subscription.channel.endpoint"]


def test_the_audit_names_whose_data_a_search_returned_and_what_a_refused_read_asked_for(
    fhir: Fhir, keys: Keys, world: dict[str, str]
) -> None:
    backend = fhir.as_token(keys.token("system/QuestionnaireResponse.rs", client_id="puller"))
    assert backend.get("QuestionnaireResponse?status=completed").status_code == 200
    about_p2 = fhir.get("AuditEvent?patient=p2&agent=puller&type=search-type").get_json()
    assert about_p2["total"] == 1
    patient = fhir.as_token(keys.token("patient/*.rs", patient="p1", client_id="app"))
    assert patient.get(f"QuestionnaireResponse/{world['other']}").status_code == 404
    refused = fhir.get(f"AuditEvent?entity=QuestionnaireResponse/{world['other']}&outcome=4&agent=app").get_json()
    assert refused["total"] == 1
    tamper = fhir.as_token(keys.token("system/*.cruds", client_id="tamperer"))
    assert tamper.delete("AuditEvent/anything").status_code == 405
    assert fhir.get("AuditEvent?agent=tamperer&outcome=4").get_json()["total"] == 1


def test_refused_tokens_are_throttled_and_recorded_in_bulk(fhir: Fhir, keys: Keys) -> None:
    forged = fhir.as_token("not.a.jwt")
    statuses = [forged.get("QuestionnaireResponse").status_code for _ in range(26)]
    assert statuses[:20] == [401] * 20
    assert statuses[20:] == [429] * 6
    assert fhir.as_token(keys.token()).get("metadata").status_code == 429  # the address waits, token or not
    store = fhir.client.application.web.services  # counted straight from the store: this address waits now
    request = parse_search(store, "AuditEvent", [("outcome", "4")], strict=True)
    assert search(store, "AuditEvent", request, UNRESTRICTED).total == 21  # twenty 401s, one record of the rest


@pytest.fixture
def services(fhir: Fhir) -> Services:
    found: Services = fhir.client.application.web.services
    return found
