"""CDS Hooks: discovery, patient-view cards from stored responses, feedback reviewing flags, refusals and audit."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import TestResponse

from service.app import create_app
from service.cds.cards import day_text, long_day_text
from service.config import PROJECT_ROOT, Settings
from tests.api.scored import URL, scored_questionnaire, scored_response
from tests.conftest import BASE_URL, ISSUER, Fhir, Keys, jwt_settings

EHR = "https://ehr.proms.test"
SERVICE_URL = "http://proms.test/cds-services/recovery-proms"
APP_LAUNCH = "http://proms.test/app/launch"
PHQ9 = json.loads((PROJECT_ROOT / "questionnaires" / "phq-9" / "questionnaire.json").read_text())
PHQ9_QUESTIONS = [item for item in PHQ9["item"] if item["type"] == "choice" and item["linkId"] != "/69722-7"]


@pytest.fixture
def settings(database_url: str, keys: Keys) -> Settings:
    """Production-like: SMART tokens for FHIR, and an EHR trusted as CDS client (signing with the same test keys)."""
    return jwt_settings(database_url, keys).with_(cds_issuers=(EHR,), cds_jwks_file=keys.jwks_file)


def cds_token(keys: Keys, **claims: Any) -> str:
    base: dict[str, Any] = {"iss": EHR, "aud": SERVICE_URL, "sub": "ehr-client", "jti": uuid.uuid4().hex}
    return keys.token(scope="", **{**base, **claims})


def _other_key_token() -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": EHR, "aud": SERVICE_URL, "iat": now, "exp": now + 300, "jti": "x"}
    return jwt.encode(claims, other, algorithm="RS256", headers={"kid": "test-key-1"})  # a trusted kid, wrong key


def hook_request(patient: str = "p1", **changes: Any) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "https://ehr.proms.test/fhir",
        "context": {"userId": "Practitioner/dr1", "patientId": patient},
        **changes,
    }


class Cds:
    """A CDS client (the EHR) over the Flask test client."""

    def __init__(self, client: FlaskClient, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def _headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def post(
        self, path: str, body: Any, *, token: str | None = "", content_type: str = "application/json"
    ) -> TestResponse:
        token = cds_token(self.keys) if token == "" else token
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.client.post(
            f"/cds-services/{path}", data=data, headers={"Content-Type": content_type, **self._headers(token)}
        )

    def cards(self, patient: str = "p1") -> list[dict[str, Any]]:
        response = self.post("recovery-proms", hook_request(patient))
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        cards: list[dict[str, Any]] = response.get_json()["cards"]
        return cards

    def feedback(self, card: str, outcome: str = "accepted", **extra: Any) -> TestResponse:
        entry = {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-03-03T10:00:00Z", **extra}
        return self.post("recovery-proms/feedback", {"feedback": [entry]})


@pytest.fixture
def cds(app: Flask, keys: Keys) -> Cds:
    return Cds(app.test_client(), keys)


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_of(authored: str) -> str:
    moment = datetime.strptime(authored, "%Y-%m-%dT%H:%M:%SZ")
    return day_text(moment, datetime.now(UTC).replace(tzinfo=None))


def phq9_response(weights: list[int], *, authored: str, patient: str = "p1") -> dict[str, Any]:
    """A PHQ-9 response; weights are items 1-9 (0-3, the options are in weight order)."""
    items = [
        {
            "linkId": item["linkId"],
            "text": item["text"],
            "answer": [{"valueCoding": item["answerOption"][w]["valueCoding"]}],
        }
        for item, w in zip(PHQ9_QUESTIONS, weights, strict=True)
    ]
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{PHQ9['url']}|{PHQ9['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": authored,
        "item": items,
    }


@pytest.fixture
def instruments(fhir: Fhir) -> None:
    fhir.create({key: value for key, value in PHQ9.items() if key != "id"})
    fhir.create(scored_questionnaire())


def distress(answers: tuple[str, str, str], days: int, patient: str = "p1") -> dict[str, Any]:
    return scored_response(answers, patient=patient, authored=days_ago(days))


def by_indicator(cards: list[dict[str, Any]], indicator: str) -> list[dict[str, Any]]:
    return [card for card in cards if card["indicator"] == indicator]


def assert_well_formed(cards: list[dict[str, Any]]) -> None:
    for card in cards:
        assert uuid.UUID(card["uuid"])
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["detail"] and card["source"]["label"] and card["source"]["url"]
        (link,) = card["links"]
        assert link["type"] == "smart" and link["url"] == APP_LAUNCH
        assert json.loads(link["appContext"])["patient"] == "p1"
    order = {"critical": 0, "warning": 1, "info": 2}
    assert [order[c["indicator"]] for c in cards] == sorted(order[c["indicator"]] for c in cards)
    assert len({c["uuid"] for c in cards}) == len(cards)


# discovery -------------------------------------------------------------------------------------------------


def test_discovery_lists_the_patient_view_service_without_a_token(app: Flask) -> None:
    response = app.test_client().get("/cds-services")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    (service,) = response.get_json()["services"]
    assert service["id"] == "recovery-proms"
    assert service["hook"] == "patient-view"
    assert service["title"] and service["description"]
    assert service["prefetch"] == {"patient": "Patient/{{context.patientId}}"}


# cards -----------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("instruments")
def test_an_unreviewed_safety_flag_is_a_critical_card_first(fhir: Fhir, cds: Cds) -> None:
    stored = fhir.create(phq9_response([1, 1, 1, 1, 0, 0, 0, 0, 1], authored=days_ago(1)))  # item 9 above "Not at all"
    flag = fhir.get("Flag?patient=p1&status=active").get_json()["entry"][0]["resource"]
    cards = cds.cards()
    assert_well_formed(cards)
    first = cards[0]
    assert first["indicator"] == "critical"
    assert first["uuid"] == flag["id"]
    # Which item, how it was answered, when, and that nobody has reviewed it: in the summary itself.
    assert (
        first["summary"]
        == f"Safety: PHQ-9 item 9 answered 'Several days' on {day_of(stored['authored'])}, not reviewed"
    )
    assert "“Thoughts that you would be better off dead or of hurting yourself in some way”" in first["detail"]
    context = json.loads(first["links"][0]["appContext"])
    assert context == {"patient": "p1", "flag": flag["id"], "questionnaireResponse": stored["id"]}
    assert [c["indicator"] for c in cards] == ["critical", "info"]
    # Reading the answer is part of the audited call.
    (event,) = fhir.get("AuditEvent?type=cds-patient-view&outcome=0&patient=p1").get_json()["entry"]
    shown = [entity.get("what", {}).get("reference") for entity in event["resource"]["entity"]]
    assert f"QuestionnaireResponse/{stored['id']}" in shown and f"Flag/{flag['id']}" in shown


@pytest.mark.usefixtures("instruments")
def test_a_reliable_deterioration_is_a_warning_card(fhir: Fhir, cds: Cds) -> None:
    first = distress(("never", "never", "sometimes"), days=20)  # 1
    fhir.create(first)
    fhir.create(distress(("often", "often", "never"), days=2))  # 4 (moderate): +3, the reliable-change threshold
    cards = cds.cards()
    assert_well_formed(cards)
    (warning,) = by_indicator(cards, "warning")
    since = day_of(first["authored"])
    assert warning["summary"] == f"Distress (3 items) 4 (moderate): reliably worse, 3 higher than on {since}"
    long_since = long_day_text(datetime.strptime(first["authored"], "%Y-%m-%dT%H:%M:%SZ"), datetime.now(UTC))
    assert f"3 higher than on {long_since}: reliable deterioration" in warning["detail"]
    assert [c["indicator"] for c in cards] == ["warning", "info"]


@pytest.mark.usefixtures("instruments")
def test_a_score_in_its_most_severe_band_is_a_warning_card(fhir: Fhir, cds: Cds) -> None:
    fhir.create(phq9_response([3, 3, 3, 3, 3, 3, 3, 3, 0], authored=days_ago(3)))  # 24: severe (20-27)
    cards = cds.cards()
    assert_well_formed(cards)
    (warning,) = by_indicator(cards, "warning")
    assert warning["summary"] == "PHQ-9 24 (severe): in the most severe band"
    assert "the most severe band of this score" in warning["detail"]
    assert json.loads(warning["links"][0]["appContext"])["questionnaire"] == PHQ9["url"]


@pytest.mark.usefixtures("instruments")
def test_a_later_response_without_a_score_does_not_hide_the_latest_score(fhir: Fhir, cds: Cds) -> None:
    severe = phq9_response([3, 3, 3, 3, 3, 3, 3, 3, 0], authored=days_ago(6))  # 24: severe (20-27)
    fhir.create(severe)
    partial = phq9_response([0, 0, 0, 0, 0, 0, 0, 0, 0], authored=days_ago(1))
    partial["item"] = partial["item"][:5]  # 5 of 9 answered: the PHQ-9's rule needs 7, so no score
    stored = fhir.create(partial)
    scores = fhir.get(f"Observation?derived-from=QuestionnaireResponse/{stored['id']}").get_json()
    assert scores["total"] == 0  # stored, not scored
    cards = cds.cards()
    assert_well_formed(cards)
    (warning,) = by_indicator(cards, "warning")
    assert warning["summary"] == "PHQ-9 24 (severe): in the most severe band"
    (summary,) = [card for card in by_indicator(cards, "info") if "Latest" in card["detail"]]
    assert "PHQ-9** 24 (severe)" in summary["detail"]
    later = long_day_text(datetime.strptime(partial["authored"], "%Y-%m-%dT%H:%M:%SZ"), datetime.now(UTC))
    assert f"a later PHQ-9, completed {later}, has too few answers to score" in summary["detail"]


@pytest.mark.usefixtures("instruments")
def test_normal_latest_scores_give_one_summary_card_in_words(fhir: Fhir, cds: Cds) -> None:
    earlier = phq9_response([2, 2, 2, 2, 2, 2, 2, 2, 0], authored=days_ago(20))  # 16, moderately severe
    fhir.create(earlier)
    fhir.create(phq9_response([2, 2, 2, 2, 1, 1, 1, 1, 0], authored=days_ago(2)))  # 12, moderate: -4 < 6
    cards = cds.cards()
    assert_well_formed(cards)
    (card,) = cards
    assert card["indicator"] == "info"
    assert card["summary"] == f"PHQ-9 12 (moderate), 4 lower than on {day_of(earlier['authored'])}: no reliable change"
    assert "**PHQ-9** 12 (moderate)" in card["detail"]


@pytest.mark.usefixtures("instruments")
def test_summary_covers_every_instrument_newest_first(fhir: Fhir, cds: Cds) -> None:
    fhir.create(phq9_response([1, 1, 1, 1, 1, 0, 0, 0, 0], authored=days_ago(5)))  # 5, mild
    fhir.create(distress(("never", "sometimes", "never"), days=1))  # 1, low
    (card,) = cds.cards()
    assert card["summary"] == "Latest: Distress (3 items) 1 (low); PHQ-9 5 (mild)"
    assert card["detail"].index("Distress") < card["detail"].index("PHQ-9")
    assert "no earlier score to compare" in card["detail"]


@pytest.mark.usefixtures("instruments")
def test_an_overdue_measure_gets_a_card(fhir: Fhir, cds: Cds) -> None:
    old = distress(("never", "never", "never"), days=40)
    fhir.create(old)
    fhir.create(phq9_response([0, 0, 0, 0, 0, 0, 0, 0, 0], authored=days_ago(3)))
    cards = cds.cards()
    assert_well_formed(cards)
    assert [c["indicator"] for c in cards] == ["info", "info"]
    overdue = cards[0]  # due measures come before the latest scores, as in the app
    assert overdue["summary"] == (
        f"Distress (3 items) is due: last completed {day_of(old['authored'])}, 40 days ago (every 28 days)"
    )
    assert json.loads(overdue["links"][0]["appContext"])["questionnaires"] == [URL]


@pytest.mark.usefixtures("instruments")
def test_the_schedule_is_configurable_per_instrument(fhir: Fhir, settings: Settings, keys: Keys) -> None:
    fhir.create(distress(("never", "never", "never"), days=40))
    relaxed = create_app(settings.with_(schedule=((URL, 90),)))
    try:
        cards = Cds(relaxed.test_client(), keys).cards()
    finally:
        relaxed.web.services.db.dispose()
    assert [c["indicator"] for c in cards] == ["info"]


def test_a_patient_with_no_data_gets_no_cards(cds: Cds) -> None:
    assert cds.cards("nobody") == []


# feedback --------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("instruments")
def test_feedback_on_the_safety_card_marks_the_flag_reviewed(fhir: Fhir, cds: Cds) -> None:
    fhir.create(phq9_response([0, 0, 0, 0, 0, 0, 0, 0, 2], authored=days_ago(1)))
    critical = cds.cards()[0]
    assert critical["indicator"] == "critical"
    response = cds.feedback(critical["uuid"], "overridden", overrideReason={"userComment": "Discussed in session"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"received": 1, "flagsReviewed": 1}
    flag = fhir.get(f"Flag/{critical['uuid']}").get_json()
    assert flag["status"] == "inactive" and flag["period"]["end"] >= flag["period"]["start"]
    # Recorded as a review in the app or through PUT Flag is: the Flag's period ends, a Provenance names the reviewer.
    (provenance,) = [e["resource"] for e in fhir.get(f"Provenance?target=Flag/{flag['id']}").get_json()["entry"]]
    assert provenance["target"] == [{"reference": f"Flag/{flag['id']}/_history/{flag['meta']['versionId']}"}]
    assert provenance["activity"]["text"] == "safety flag reviewed"
    (agent,) = provenance["agent"]
    assert agent["type"]["coding"][0]["code"] == "verifier" and agent["who"]["display"] == "ehr-client"
    assert by_indicator(cds.cards(), "critical") == []
    again = cds.feedback(critical["uuid"])  # already reviewed: received, nothing to change
    assert again.get_json() == {"received": 1, "flagsReviewed": 0}
    # Both calls read the Flag (the first also changed it): both are in the audit log.
    events = fhir.get("AuditEvent?type=cds-feedback&outcome=0&entity=Flag/" + critical["uuid"]).get_json()
    assert events["total"] == 2


def test_feedback_on_other_cards_is_received(cds: Cds) -> None:
    response = cds.feedback(str(uuid.uuid4()), acceptedSuggestions=[{"id": "s1"}])
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "flagsReviewed": 0}


# bad requests ----------------------------------------------------------------------------------------------


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return copy


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_without(hook_request(), "hook"), "hook", "Missing data for required field"),
        (hook_request(hook="order-select"), "hook", "answers the patient-view hook, not 'order-select'"),
        (hook_request(hookInstance="not-a-uuid"), "hookInstance", "Not a valid UUID"),
        (_without(hook_request(), "context", "patientId"), "context.patientId", "Missing data for required field"),
        (hook_request(context={"userId": "Practitioner/1", "patientId": "a b"}), "context.patientId", "FHIR id"),
        (_without(hook_request(), "context"), "context", "Missing data for required field"),
    ],
    ids=["missing hook", "wrong hook", "bad hookInstance", "missing patientId", "bad patientId", "no context"],
)
def test_invalid_hook_requests_are_400_naming_the_member(
    cds: Cds, body: dict[str, Any], field: str, words: str
) -> None:
    response = cds.post("recovery-proms", body)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    error = response.get_json()
    assert error["error"] == "invalid_request"
    assert error["message"].startswith("The hook request is not valid: ")
    assert words in error["message"]
    assert any(d["field"] == field and words in d["message"] for d in error["details"])


@pytest.mark.parametrize(
    ("data", "content_type", "words"),
    [
        ("{not json", "application/json", "not valid JSON"),
        ("[1, 2]", "application/json", "must be a JSON object"),
        ("", "application/json", "not valid JSON"),
        ("hook=patient-view", "application/x-www-form-urlencoded", "send JSON (Content-Type: application/json)"),
    ],
    ids=["malformed", "array", "empty", "form"],
)
def test_a_body_that_is_not_a_json_object_is_400(cds: Cds, data: str, content_type: str, words: str) -> None:
    for path in ("recovery-proms", "recovery-proms/feedback"):
        response = cds.post(path, data, content_type=content_type)
        assert response.status_code == 400
        assert words in response.get_json()["message"]


def test_a_body_over_the_size_limit_is_413_in_json(cds: Cds) -> None:
    response = cds.post("recovery-proms", {**hook_request(), "padding": "x" * 1_100_000})
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"


def test_invalid_feedback_is_400(cds: Cds) -> None:
    response = cds.post("recovery-proms/feedback", {"feedback": [{"card": "x", "outcome": "maybe"}]})
    assert response.status_code == 400
    fields = {d["field"] for d in response.get_json()["details"]}
    assert fields == {"feedback[0].card", "feedback[0].outcome", "feedback[0].outcomeTimestamp"}
    assert cds.post("recovery-proms/feedback", {"feedback": []}).status_code == 400


# access and audit ------------------------------------------------------------------------------------------


def refused_tokens(keys: Keys) -> dict[str, str | None]:
    return {
        "no token": None,
        "wrong audience": cds_token(keys, aud=BASE_URL),
        "issuer not allowed": cds_token(keys, iss=ISSUER),
        "bad signature": _other_key_token(),
        "expired": cds_token(keys, lifetime=-120),
        "no jti": keys.token(scope="", iss=EHR, aud=SERVICE_URL),
        "a FHIR access token": keys.token(),
    }


def test_a_cds_clients_jwt_is_good_for_one_call(fhir: Fhir, cds: Cds, keys: Keys) -> None:
    token = cds_token(keys)
    assert cds.post("recovery-proms", hook_request(), token=token).status_code == 200
    replayed = cds.post("recovery-proms", hook_request(), token=token)
    assert replayed.status_code == 401
    assert "used before" in replayed.get_json()["message"]
    assert (
        replayed.headers["WWW-Authenticate"]
        == 'Bearer error="invalid_token", error_description="the token was refused"'
    )
    other_call = cds.post("recovery-proms/feedback", {"feedback": []}, token=token)
    assert other_call.status_code == 401  # one call, whichever endpoint
    assert cds.post("recovery-proms", hook_request()).status_code == 200  # a new token (new jti) is fine


def test_cds_calls_need_a_trusted_clients_jwt_and_every_call_is_audited(fhir: Fhir, cds: Cds, keys: Keys) -> None:
    tokens = refused_tokens(keys)
    for name, token in tokens.items():
        response = cds.post("recovery-proms", hook_request(), token=token)
        assert response.status_code == 401, name
        assert response.get_json()["error"] == "invalid_token", name
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), name
        assert cds.post("recovery-proms/feedback", {"feedback": []}, token=token).status_code == 401, name
    refused = fhir.get("AuditEvent?type=cds-patient-view&outcome=4&_count=50").get_json()
    assert refused["total"] == len(tokens)
    assert fhir.get("AuditEvent?type=cds-feedback&outcome=4").get_json()["total"] == len(tokens)

    assert cds.post("recovery-proms", hook_request()).status_code == 200
    assert cds.post("recovery-proms", _without(hook_request(), "hook")).status_code == 400
    success = fhir.get("AuditEvent?type=cds-patient-view&outcome=0&patient=p1").get_json()
    assert success["total"] == 1
    event = success["entry"][0]["resource"]
    agent = event["agent"][0]
    assert agent["who"]["identifier"]["value"] == "ehr-client"
    assert agent["altId"] == "Practitioner/dr1"
    assert {"reference": "Patient/p1"} in [entity.get("what") for entity in event["entity"]]
    assert fhir.get("AuditEvent?type=cds-patient-view&outcome=4").get_json()["total"] == len(tokens) + 1


def test_without_trusted_cds_clients_every_call_is_refused(database_url: str, keys: Keys) -> None:
    app = create_app(jwt_settings(database_url, keys))
    try:
        response = Cds(app.test_client(), keys).post("recovery-proms", hook_request())
    finally:
        app.web.services.db.dispose()
    assert response.status_code == 401
    assert "PROMS_CDS_ISSUERS" in response.get_json()["message"]


@pytest.fixture
def open_app(database_url: str) -> Iterator[Flask]:
    app = create_app(Settings(database_url=database_url, base_url=BASE_URL, log_level="WARNING", auth_mode="none"))
    yield app
    app.web.services.db.dispose()


@pytest.mark.parametrize(
    "label", ["GET /cds-services", "POST /cds-services/recovery-proms", "POST /cds-services/recovery-proms/feedback"]
)
@pytest.mark.usefixtures("instruments")
def test_a_trusted_client_gets_what_the_contract_says(app: Flask, fhir: Fhir, keys: Keys, label: str) -> None:
    fhir.create(phq9_response([3, 3, 3, 3, 3, 3, 3, 3, 2], authored=days_ago(40), patient="p"))  # every card kind
    schema = schemathesis.openapi.from_wsgi("/openapi.yaml", app)
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance]  # fmt: skip

    statuses = set()

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        if isinstance(case.body, dict) and isinstance(case.body.get("context"), dict):
            case.body["context"]["patientId"] = "p"  # the patient with data, so that cards are checked too
        response = case.call_and_validate(checks=checks, headers={"Authorization": f"Bearer {cds_token(keys)}"})
        statuses.add(response.status_code)

    check()
    assert 200 in statuses


def test_development_mode_needs_no_token(open_app: Flask, keys: Keys) -> None:
    client = Cds(open_app.test_client(), keys)
    response = client.post("recovery-proms", hook_request(), token=None)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    assert client.feedback(str(uuid.uuid4())).status_code == 200


def test_the_cds_challenge_never_echoes_the_token(cds: Cds) -> None:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    header = {"alg": 'x", realm="evil', "typ": "JWT"}
    token = ".".join([part(header), part({"iss": EHR, "aud": SERVICE_URL}), "c2ln"])
    response = cds.post("recovery-proms", hook_request(), token=token)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert re.fullmatch(r'Bearer error="invalid_token", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*"', challenge)
    assert "evil" not in challenge
