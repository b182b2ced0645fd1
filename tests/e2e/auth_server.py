"""A small EHR for browser tests: a SMART authorization server built from Authlib's server components.

It serves what a SMART App Launch 2.0 needs: ``.well-known/smart-configuration`` on its FHIR base, a JWKS,
the authorization-code grant with PKCE (S256 required) and OpenID Connect (an id_token with ``fhirUser``),
RS256 JWT access tokens carrying ``patient`` and ``scope``, a client-credentials grant for backend clients,
the Patient resources of its chart, and an EHR page that launches the app for a patient.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry
from werkzeug.serving import make_server

KID = "ehr-signing-key"
APP_SCOPES = "launch launch/patient openid fhirUser patient/*.rs patient/*.read user/Observation.rs user/Group.rs"


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    redirect_uris: list[str]
    scope: str
    grant_types: list[str]
    audience: str
    client_secret: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split())
        return " ".join(word for word in (scope or "").split() if word in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("client_secret_basic" if self.client_secret else "none")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class User:
    """The clinician signed in to the EHR, and the patient the launch is about."""

    id: str
    fhir_user: str
    patient: str | None = None

    def get_user_id(self) -> str:
        return self.id


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None = None
    issued: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.issued)


class SmartEhr:
    """The EHR, its authorization server and its FHIR Patient endpoint, on one loopback port."""

    def __init__(self, port: int, *, app_base: str, service_fhir_base: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.app_base = app_base
        self.fhir_base = f"{self.base}/fhir"
        self.port = port
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}, private=True)
        self.keys = KeySet([self.key])
        self.user = User("dr-chen", "Practitioner/dr-chen")
        self.patients: dict[str, dict[str, Any]] = {}
        self.launches: dict[str, str] = {}
        self.codes: dict[str, Code] = {}
        self.issued: list[dict[str, Any]] = []  # token responses, so a test can look at what the app received
        self.clients = {
            "proms-clinician-app": Client(
                "proms-clinician-app", [f"{app_base}/app/callback"], APP_SCOPES, ["authorization_code"], self.fhir_base
            ),
            "proms-seeder": Client(
                "proms-seeder", [], "system/*.cruds", ["client_credentials"], service_fhir_base, secrets.token_hex(16)
            ),
        }
        self.app = self._build_app()
        self._server = make_server("127.0.0.1", port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # running -------------------------------------------------------------------------------------------

    def start(self) -> SmartEhr:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def add_patient(self, resource: dict[str, Any]) -> None:
        self.patients[resource["id"]] = resource

    # the authorization server ---------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("smart_ehr")
        ehr = self

        class TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
            def get_jwks(self) -> KeySet:
                return ehr.keys

            def get_audiences(self, client: Client, user: User | None, scope: str) -> str:
                return client.audience

            def get_extra_claims(
                self, client: Client, grant_type: str, user: User | None, scope: str
            ) -> dict[str, Any]:
                claims: dict[str, Any] = {}
                if user is not None:
                    claims["fhirUser"] = user.fhir_user
                    if user.patient:
                        claims["patient"] = user.patient
                return claims

            def generate(self, grant_type: str, client: Client, user: User | None = None, *args: Any) -> dict[str, Any]:
                token: dict[str, Any] = super().generate(grant_type, client, user, *args)
                if user is not None and user.patient:
                    token["patient"] = user.patient  # the SMART launch context, next to the token
                return token

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                if data.get("aud") != ehr.fhir_base:
                    raise InvalidRequestError("aud must be this EHR's FHIR base")
                launch = data.get("launch")
                scopes = req.scope.split()
                if launch is not None:
                    patient = ehr.launches.pop(launch)  # a launch id is used once
                elif "launch/patient" in scopes:
                    patient = next(iter(ehr.patients))  # a standalone launch: the patient picker chose the first
                else:
                    patient = None
                ehr.codes[code] = Code(
                    code, req.client.client_id, req.payload.redirect_uri, req.scope,
                    User(ehr.user.id, ehr.user.fhir_user, patient),
                    data.get("code_challenge"), data.get("code_challenge_method"), data.get("nonce"),
                )  # fmt: skip

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = ehr.codes.get(code)
                if found is None or found.client_id != client.client_id or time.time() - found.issued > 60:
                    return None
                return found

            def delete_authorization_code(self, authorization_code: Code) -> None:
                ehr.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> User:
                return authorization_code.user

        class OpenIdConnect(OpenIDCode):  # type: ignore[misc]
            def resolve_client_private_key(self, client: Client) -> KeySet:
                return ehr.keys

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": ehr.base, "aud": [client.client_id]}

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": KID}

            def exists_nonce(self, nonce: str, req: Any) -> bool:
                return False

            def generate_user_info(self, user: User, scope: str) -> dict[str, str]:
                return {"sub": user.id, "fhirUser": f"{ehr.fhir_base}/{user.fhir_user}"}

        class ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

        def save_token(token: dict[str, Any], req: Any) -> None:
            return None  # JWTs: nothing to look up later; issue_token keeps what was sent, for the tests

        server = AuthorizationServer(app, query_client=self.clients.get, save_token=save_token)
        server.register_token_generator("default", TokenGenerator(issuer=self.base, expires_generator=3600))
        server.register_grant(CodeGrant, [CodeChallenge(required=True), OpenIdConnect(require_nonce=False)])
        server.register_grant(ClientCredentials)

        @app.get("/fhir/.well-known/smart-configuration")
        def smart_configuration() -> Response:
            return jsonify(
                issuer=ehr.base,
                jwks_uri=f"{ehr.base}/jwks",
                authorization_endpoint=f"{ehr.base}/authorize",
                token_endpoint=f"{ehr.base}/token",
                grant_types_supported=["authorization_code", "client_credentials"],
                response_types_supported=["code"],
                scopes_supported=APP_SCOPES.split() + ["system/*.cruds"],
                code_challenge_methods_supported=["S256"],
                token_endpoint_auth_methods_supported=["none", "client_secret_basic"],
                capabilities=["launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                              "sso-openid-connect", "permission-v2"],
            )  # fmt: skip

        @app.get("/jwks")
        def jwks() -> Response:
            return jsonify(ehr.keys.as_dict(private=False))

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            grant = server.get_consent_grant(end_user=ehr.user)
            if request.method == "GET":
                scopes = "".join(f"<li>{escape(scope)}</li>" for scope in grant.request.scope.split())
                return (
                    "<!doctype html><html lang='en'><head><title>Allow access</title></head><body><main>"
                    f"<h1>Allow {escape(grant.client.client_id)} to open this patient's record?</h1>"
                    f"<ul>{scopes}</ul><form method='post'><button name='decision' value='allow'>Allow</button>"
                    "<button name='decision' value='deny'>Deny</button></form></main></body></html>"
                )
            allowed = request.form.get("decision") == "allow"
            return server.create_authorization_response(grant_user=ehr.user if allowed else None, grant=grant)

        @app.post("/token")
        def issue_token() -> Response:
            response: Response = server.create_token_response()
            if response.status_code == 200:
                ehr.issued.append(response.get_json())
            return response

        @app.get("/fhir/Patient/<patient_id>")
        def read_patient(patient_id: str) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            try:
                claims = jwt.decode(token, ehr.keys, algorithms=["RS256"]).claims
                JWTClaimsRegistry(aud={"essential": True, "value": ehr.fhir_base}).validate(claims)
            except (JoseError, ValueError):
                return jsonify(resourceType="OperationOutcome"), 401
            if scheme.lower() != "bearer" or claims.get("patient") != patient_id or patient_id not in ehr.patients:
                return jsonify(resourceType="OperationOutcome"), 403
            return jsonify(ehr.patients[patient_id])

        @app.get("/ehr/patients/<patient_id>")
        def chart(patient_id: str) -> str:
            """The EHR's chart page: its 'Recovery measures' link is an EHR launch for this patient."""
            launch = secrets.token_urlsafe(16)
            ehr.launches[launch] = patient_id
            name = escape(ehr.patients[patient_id]["name"][0]["text"])
            target = f"{ehr.app_base}/app/launch?{urlencode({'iss': ehr.fhir_base, 'launch': launch})}"
            return (
                f"<!doctype html><html lang='en'><head><title>EHR: {name}</title></head><body><main>"
                f"<h1>Chart: {name}</h1><a href='{escape(target)}'>Open Recovery measures</a></main></body></html>"
            )

        return app

    def backend_client(self) -> Client:
        return self.clients["proms-seeder"]
