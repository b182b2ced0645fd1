"""Access control: bearer JWTs, SMART scopes and patient compartments, and the audit of every refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api.scored import scored_questionnaire, scored_response
from tests.conftest import BASE_URL, ISSUER, Fhir, Keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": BASE_URL, "sub": "u", "iat": now, "exp": now + 300, "scope": "system/*.cruds",
            **overrides}  # fmt: skip


def _hs256_with_public_key(keys: Keys) -> str:
    # The classic key-confusion attack: sign with HMAC using the server's public key as the secret.
    public_pem = keys.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keys.kid}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _unknown_key() -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(_claims(), other, algorithm="RS256", headers={"kid": "someone-else"})


def bad_tokens(keys: Keys) -> dict[str, str | None]:
    """Tokens the service must refuse with 401, by what is wrong with them."""
    return {
        "no token": None,
        "expired": keys.token(lifetime=-120),
        "wrong audience": jwt.encode(_claims(aud="https://other.example/fhir"), keys.private_key, "RS256",
                                     headers={"kid": keys.kid}),
        "wrong issuer": jwt.encode(_claims(iss="https://evil.example"), keys.private_key, "RS256",
                                   headers={"kid": keys.kid}),
        "unknown kid": _unknown_key(),
        "alg none": jwt.encode(_claims(), None, algorithm="none"),
        "HS256 with the public key": _hs256_with_public_key(keys),
        "garbage": "not.a.jwt",
    }  # fmt: skip


@pytest.fixture
def setting(fhir: Fhir) -> dict[str, str]:
    """Two patients' scored responses, and the ids the endpoints below refer to."""
    fhir.create(scored_questionnaire())
    own = fhir.create(scored_response(("often", "never", "never"), patient="p1"))
    other = fhir.create(scored_response(("always", "always", "always"), patient="p2"))
    observation = fhir.get(f"Observation?derived-from={other['id']}&_count=1").get_json()["entry"][0]["resource"]
    questionnaire = fhir.get("Questionnaire").get_json()["entry"][0]["resource"]
    return {"own": own["id"], "other": other["id"], "observation": observation["id"], "q": questionnaire["id"]}


Request = Callable[[Fhir, dict[str, str]], Any]
OTHERS_RESPONSE = scored_response(("never",) * 3, patient="p2")
# Every endpoint that touches health data (and the instrument library's writes), aimed at patient p2's data.
ENDPOINTS: dict[str, Request] = {
    "create QuestionnaireResponse": lambda f, ids: f.post("QuestionnaireResponse", OTHERS_RESPONSE),
    "read QuestionnaireResponse": lambda f, ids: f.get(f"QuestionnaireResponse/{ids['other']}"),
    "vread QuestionnaireResponse": lambda f, ids: f.get(f"QuestionnaireResponse/{ids['other']}/_history/1"),
    "update QuestionnaireResponse": lambda f, ids: f.put(
        f"QuestionnaireResponse/{ids['other']}",
        {**OTHERS_RESPONSE, "id": ids["other"], "status": "amended"},
    ),
    "delete QuestionnaireResponse": lambda f, ids: f.delete(f"QuestionnaireResponse/{ids['other']}"),
    "history QuestionnaireResponse": lambda f, ids: f.get(f"QuestionnaireResponse/{ids['other']}/_history"),
    "search QuestionnaireResponse": lambda f, ids: f.get("QuestionnaireResponse?patient=p2"),
    "POST search QuestionnaireResponse": lambda f, ids: f.post_form("QuestionnaireResponse/_search", {"patient": "p2"}),
    "$validate": lambda f, ids: f.post("QuestionnaireResponse/$validate", OTHERS_RESPONSE),
    "$extract": lambda f, ids: f.get(f"QuestionnaireResponse/{ids['other']}/$extract"),
    "read Observation": lambda f, ids: f.get(f"Observation/{ids['observation']}"),
    "search Observation": lambda f, ids: f.get("Observation?patient=p2"),
    "search Provenance": lambda f, ids: f.get(f"Provenance?target=QuestionnaireResponse/{ids['other']}"),
    "search AuditEvent": lambda f, ids: f.get("AuditEvent?patient=p2"),
    "create Questionnaire": lambda f, ids: f.post("Questionnaire", {**scored_questionnaire(), "version": "9.0.0"}),
    "delete Questionnaire": lambda f, ids: f.delete(f"Questionnaire/{ids['q']}"),
}  # fmt: skip
# What a patient-scoped token for p1 that may otherwise do everything is refused on each endpoint.
PATIENT_SCOPE = "patient/*.cruds"
ID_ENDPOINTS = {
    "read QuestionnaireResponse",
    "vread QuestionnaireResponse",
    "delete QuestionnaireResponse",
    "history QuestionnaireResponse",
    "$extract",
    "read Observation",
}


def _denials(fhir: Fhir) -> int:
    result: int = fhir.get("AuditEvent?outcome=4&_summary=count").get_json()["total"]
    return result


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_every_endpoint_refuses_bad_tokens_and_audits_the_refusal(
    fhir: Fhir, keys: Keys, setting: dict[str, str], endpoint: str
) -> None:
    call = ENDPOINTS[endpoint]
    for problem, token in bad_tokens(keys).items():
        before = _denials(fhir)
        result = call(fhir.as_token(token), setting)
        assert result.status_code == 401, (endpoint, problem, result.get_data(as_text=True))
        assert result.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), (endpoint, problem)
        assert result.get_json()["resourceType"] == "OperationOutcome"
        assert _denials(fhir) == before + 1, (endpoint, problem)

    insufficient = fhir.as_token(keys.token("patient/Questionnaire.rs launch/patient openid", patient="p1"))
    before = _denials(fhir)
    assert call(insufficient, setting).status_code == 403, (endpoint, "insufficient scope")
    assert _denials(fhir) == before + 1

    other_patient = fhir.as_token(keys.token(PATIENT_SCOPE, patient="p1"))
    before = _denials(fhir)
    result = call(other_patient, setting)
    # Another patient's resource named by id is unknown to this token (404: nothing tells it the id exists); a
    # search or a body naming another patient, or a type the scope never covers, is refused (403).
    expected = 404 if endpoint in ID_ENDPOINTS else 403
    assert result.status_code == expected, (endpoint, "other patient's compartment", result.get_data(as_text=True))
    assert _denials(fhir) == before + 1
    # Nothing about p2 changed.
    assert fhir.get(f"QuestionnaireResponse/{setting['other']}").get_json()["meta"]["versionId"] == "1"


def test_patient_token_reads_and_submits_only_its_own_patients_data(
    fhir: Fhir, keys: Keys, setting: dict[str, str]
) -> None:
    patient = fhir.as_token(keys.token("patient/QuestionnaireResponse.cruds patient/Observation.rs", patient="p1"))
    assert patient.get(f"QuestionnaireResponse/{setting['own']}").status_code == 200
    implicit = patient.get("QuestionnaireResponse").get_json()
    assert [e["resource"]["id"] for e in implicit["entry"]] == [setting["own"]]
    assert patient.get("QuestionnaireResponse?patient=p1").get_json()["total"] == 1
    assert patient.get("QuestionnaireResponse?subject=Patient/p2").status_code == 403
    assert patient.post("QuestionnaireResponse", scored_response(("never",) * 3, patient="p1")).status_code == 201
    assert patient.get("Observation").get_json()["total"] == 4  # two responses x (panel + total)
    included = patient.get("QuestionnaireResponse?_revinclude=Observation:derived-from").get_json()
    assert {e["resource"]["subject"]["reference"] for e in included["entry"]} == {"Patient/p1"}
    history = patient.get("QuestionnaireResponse/_history").get_json()
    assert {e["resource"]["subject"]["reference"] for e in history["entry"]} == {"Patient/p1"}
    assert patient.get("AuditEvent").status_code == 403
    assert patient.get("Questionnaire").status_code == 200  # definitions are not health data


def test_v1_scopes_and_missing_launch_context(fhir: Fhir, keys: Keys, setting: dict[str, str]) -> None:
    read_only = fhir.as_token(keys.token("patient/QuestionnaireResponse.read", patient="p1"))
    assert read_only.get(f"QuestionnaireResponse/{setting['own']}").status_code == 200
    assert read_only.post("QuestionnaireResponse", scored_response(("never",) * 3)).status_code == 403
    no_patient = fhir.as_token(keys.token("patient/QuestionnaireResponse.read"))
    refused = no_patient.get(f"QuestionnaireResponse/{setting['own']}")
    assert refused.status_code == 403
    assert "patient" in refused.get_json()["issue"][0]["details"]["text"]


def test_v2_scope_filters(fhir: Fhir, keys: Keys, setting: dict[str, str]) -> None:
    surveys = fhir.as_token(keys.token("user/Observation.rs?category=survey"))
    assert surveys.get("Observation").get_json()["total"] == 4
    vitals = fhir.as_token(keys.token("user/Observation.rs?category=vital-signs"))
    assert vitals.get("Observation").get_json()["total"] == 0
    assert vitals.get(f"Observation/{setting['observation']}").status_code == 404  # outside the filter: unknown


def test_backend_service_pulls_everything_its_scopes_allow(fhir: Fhir, keys: Keys, setting: dict[str, str]) -> None:
    backend = fhir.as_token(keys.token("system/Observation.rs system/QuestionnaireResponse.rs"))
    assert backend.get("QuestionnaireResponse").get_json()["total"] == 2
    assert backend.get("Observation?code=distress-total").get_json()["total"] == 2
    assert backend.post("QuestionnaireResponse", scored_response(("never",) * 3)).status_code == 403
    assert backend.get("AuditEvent").status_code == 403
    clinician = fhir.as_token(keys.token("user/*.cruds"))
    assert clinician.post("Questionnaire", {**scored_questionnaire(), "version": "2.0.0"}).status_code == 403


def test_every_access_is_audited_with_who_what_and_outcome(fhir: Fhir, keys: Keys, setting: dict[str, str]) -> None:
    reader = fhir.as_token(keys.token("user/QuestionnaireResponse.rs", client_id="ehr-42", sub="dr-who"))
    assert reader.get(f"QuestionnaireResponse/{setting['other']}").status_code == 200
    events = fhir.get(f"AuditEvent?entity=QuestionnaireResponse/{setting['other']}&type=read").get_json()
    (event,) = [e["resource"] for e in events["entry"]]
    assert event["action"] == "R"
    assert event["outcome"] == "0"
    assert event["agent"][0]["who"]["identifier"]["value"] == "ehr-42"
    assert event["agent"][0]["altId"] == "dr-who"
    assert {"reference": "Patient/p2"} in [entity["what"] for entity in event["entity"]]
    reader.get("QuestionnaireResponse?patient=p2&status=completed")
    searches = fhir.get("AuditEvent?type=search-type&agent=ehr-42").get_json()
    query = base64.b64decode(searches["entry"][0]["resource"]["entity"][-1]["query"]).decode()
    assert query == "patient=p2&status=completed"
    writes = fhir.get(f"AuditEvent?entity=QuestionnaireResponse/{setting['own']}&type=create").get_json()
    assert writes["total"] == 1
    assert fhir.get("AuditEvent?patient=p2").get_json()["total"] >= 2


def test_a_failed_audit_fails_the_read(fhir: Fhir, setting: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    auditor = fhir.client.application.web.services.auditor

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(auditor, "record", broken)
    result = fhir.get(f"QuestionnaireResponse/{setting['own']}")
    assert result.status_code == 500
    assert "valueCoding" not in result.get_data(as_text=True)


def test_discovery_needs_no_token(fhir: Fhir) -> None:
    anonymous = fhir.as_token(None)
    assert anonymous.get("metadata").status_code == 200
    assert anonymous.get("StructureDefinition/score-band").status_code == 200
    assert anonymous.get("Questionnaire").status_code == 401  # the library itself needs a client


def _token_with_header(header: dict[str, Any]) -> str:
    """A JWT-shaped token with any header at all (never signed: it is refused before any key is looked up)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part(header)}.{part(_claims())}.c2lnbmF0dXJl"


# What RFC 6750 allows between the quotes of error_description: printable ASCII but '"' and '\'.
CHALLENGE = re.compile(r'Bearer error="invalid_token", error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*"')


@pytest.mark.parametrize(
    "header",
    [
        {"alg": 'x", realm="evil', "typ": "JWT"},
        {"alg": 'RS256", error="insufficient_scope', "kid": "k"},
        {"alg": 'x\\" realm=\\"evil', "typ": "JWT"},
        {"alg": "é\u2028x", "typ": "JWT"},
        {"alg": "RS256", "kid": 'k", realm="evil'},
    ],
)
def test_the_challenge_never_echoes_the_token(fhir: Fhir, header: dict[str, Any]) -> None:
    result = fhir.as_token(_token_with_header(header)).get("QuestionnaireResponse")
    assert result.status_code == 401
    challenge = result.headers["WWW-Authenticate"]
    assert CHALLENGE.fullmatch(challenge), challenge
    assert "evil" not in challenge and header["alg"] not in challenge
    # What was wrong, token text included, is told in the OperationOutcome (JSON-escaped), not in a header.
    text = result.get_json()["issue"][0]["details"]["text"]
    assert "The bearer token was refused" in text
    if header["alg"] != "RS256":
        assert repr(header["alg"]) in text


def test_every_challenge_is_fixed_text(fhir: Fhir, keys: Keys) -> None:
    for problem, token in bad_tokens(keys).items():
        challenge = fhir.as_token(token).get("QuestionnaireResponse").headers["WWW-Authenticate"]
        assert CHALLENGE.fullmatch(challenge), (problem, challenge)
