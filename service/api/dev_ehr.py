"""A development EHR under /dev-ehr: a patient picker and a SMART authorization server (Authlib), for make run/demo.

It exists only where service.dev_launch.available says so (authentication off, loopback only). It stands in
for an EHR so that the clinician app can be opened without one, through the same SMART App Launch 2.0 flow an
EHR uses: the picker starts an EHR launch (``iss`` and ``launch``); the app discovers
``{iss}/.well-known/smart-configuration``, sends the browser to ``/authorize`` (authorization code, PKCE S256
required), exchanges the code at ``/token`` for an RS256 JWT access token carrying the ``patient`` and an
OpenID id_token carrying ``fhirUser``, then reads ``{iss}/Patient/{id}`` with the access token. The signed-in
user is always the same made-up clinician and access is granted without asking (there is nobody to ask).

Gunicorn runs several worker processes, so launch ids and authorization codes are kept as short-lived
owner-only files (cachelib's file cache) and the signing key is created once in a file every worker reads, all
under PROMS_DEV_EHR_DIR. Files, not the database, because this EHR only ever exists on one development machine
(authentication off, loopback only), and its signing key must be a file there anyway.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error, grants  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.errors import InvalidRequestError  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator  # type: ignore[import-untyped]
from authlib.oidc.core import AuthorizationCodeMixin  # type: ignore[import-untyped]
from authlib.oidc.core.grants import OpenIDCode  # type: ignore[import-untyped]
from cachelib import FileSystemCache
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, redirect, render_template, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from service import dev_launch
from service.api.web import ServiceApp, services
from service.config import Settings
from service.demo import DemoPatient, demo_patients

KID = "dev-ehr-signing-key"
# The outcomes page (service-wide) needs the user/ scopes too: the made-up clinician may read everything, as anyone
# on the machine may while authentication is off.
OUTCOME_SCOPES = ("user/Observation.rs", "user/Group.rs")
SCOPES = " ".join(("launch launch/patient openid fhirUser patient/*.rs patient/*.read", *OUTCOME_SCOPES))
LAUNCH_SECONDS = 5 * 60
CODE_SECONDS = 60
TOKEN_SECONDS = 3600
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

blueprint = Blueprint("dev_ehr", __name__, url_prefix=dev_launch.PREFIX)


# state shared by the gunicorn workers ------------------------------------------------------------------------


def _once(path: Path, make: Callable[[], str]) -> str:
    """The file's text, writing ``make()`` first if it does not exist yet (the first worker to get here wins)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(make())
    try:
        os.link(temporary, path)  # atomic, and fails if another worker was first: nobody reads half a file
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text()


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}, private=True)


class DevState:
    """The development EHR's files: its signing key, the app's session key, pending launches and codes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / "pending").mkdir(mode=0o700, parents=True, exist_ok=True)
        self.records = FileSystemCache(str(directory / "pending"), threshold=1000, mode=0o600)

    def signing_key(self) -> RSAKey:
        path = self.directory / "signing-key.json"
        text = _once(path, lambda: json.dumps(_new_key().as_dict(private=True)))
        key = RSAKey.import_key(json.loads(text))
        if not key.is_private:  # not one this module wrote: start again with a key it can sign with
            path.unlink(missing_ok=True)
            key = RSAKey.import_key(json.loads(_once(path, lambda: json.dumps(_new_key().as_dict(private=True)))))
        return key

    def app_secret(self) -> str:
        """The clinician app's session key when PROMS_APP_SECRET_KEY is not set (development only)."""
        return _once(self.directory / "app-secret", lambda: secrets.token_hex(32)).strip()

    def put(self, kind: str, data: dict[str, Any], seconds: int, token: str | None = None) -> str:
        token = token or secrets.token_urlsafe(24)
        self.records.set(f"{kind}-{token}", data, timeout=seconds)  # expired ones are pruned as others are added
        return token

    def take(self, kind: str, token: str | None) -> dict[str, Any] | None:
        """The record, once: it is deleted as it is read (launch ids and codes are single-use)."""
        if not token or not _TOKEN.match(token):
            return None
        data = self.records.get(f"{kind}-{token}")
        self.records.delete(f"{kind}-{token}")
        return data if isinstance(data, dict) else None

    def peek(self, kind: str, token: str | None) -> dict[str, Any] | None:
        if not token or not _TOKEN.match(token):
            return None
        data = self.records.get(f"{kind}-{token}")
        return data if isinstance(data, dict) else None


def state_for(settings: Settings) -> DevState:
    return DevState(Path(settings.dev_ehr_dir))


def app_settings(settings: Settings) -> Settings:
    """The clinician app's settings with the development EHR trusted (called only where it is available)."""
    asked = settings.smart_scopes.split()
    return settings.with_(
        smart_client_id=settings.smart_client_id or dev_launch.CLIENT_ID,
        app_secret_key=settings.app_secret_key or state_for(settings).app_secret(),
        smart_iss=(*settings.smart_iss, dev_launch.fhir_base(settings)),
        smart_scopes=" ".join([*asked, *(scope for scope in OUTCOME_SCOPES if scope not in asked)]),
    )


# the OAuth 2.0 model -------------------------------------------------------------------------------------------


@dataclass
class AppClient(ClientMixin):  # type: ignore[misc]
    """The clinician app: a public client using PKCE, or confidential if the app is configured with a secret."""

    client_id: str
    redirect_uri: str
    client_secret: str | None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(SCOPES.split())
        return " ".join(word for word in (scope or "").split() if word in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == ("client_secret_basic" if self.client_secret else "none")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class DevUser:
    """The clinician signed in to the development EHR, and the patient the launch is about."""

    id: str
    fhir_user: str
    patient: str | None = None

    def get_user_id(self) -> str:
        return self.id


CLINICIAN = DevUser("dev-clinician", "Practitioner/dev-clinician")


@dataclass
class DevCode(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    patient: str
    code_challenge: str
    code_challenge_method: str
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


class S256Only(CodeChallenge):  # type: ignore[misc]
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # SMART App Launch 2.0: never "plain"


@dataclass(frozen=True)
class DevEhr:
    """What the endpoints need, wired once per app."""

    settings: Settings
    state: DevState
    key: RSAKey
    client: AppClient
    server: Any  # authlib's AuthorizationServer (untyped)

    @property
    def keys(self) -> KeySet:
        return KeySet([self.key])


def _build_server(app: Flask, state: DevState, key: RSAKey, client: AppClient, settings: Settings) -> Any:
    keys = KeySet([key])
    fhir_base = dev_launch.fhir_base(settings)
    issuer = dev_launch.issuer(settings)

    class TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return keys

        def get_audiences(self, client: AppClient, user: DevUser | None, scope: str) -> str:
            return fhir_base

        def get_extra_claims(
            self, client: AppClient, grant_type: str, user: DevUser | None, scope: str
        ) -> dict[str, Any]:
            if user is None:
                return {}
            return {"fhirUser": f"{fhir_base}/{user.fhir_user}", **({"patient": user.patient} if user.patient else {})}

        def generate(
            self, grant_type: str, client: AppClient, user: DevUser | None = None, *args: Any
        ) -> dict[str, Any]:
            token: dict[str, Any] = super().generate(grant_type, client, user, *args)
            if user is not None and user.patient:
                token["patient"] = user.patient  # the SMART launch context, next to the token
            return token

    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic"]

        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            if data.get("aud") != fhir_base:
                raise InvalidRequestError(f"aud must be this EHR's FHIR base, {fhir_base}")
            if not data.get("code_challenge"):
                raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
            launch = state.take("launch", data.get("launch"))
            if launch is None:
                raise InvalidRequestError(
                    f"Open the app from the development launcher ({dev_launch.issuer(settings)}/): "
                    "this launch is unknown or has expired"
                )
            record = {
                "client_id": req.client.client_id,
                "redirect_uri": req.payload.redirect_uri,
                "scope": req.scope,
                "patient": launch["patient"],
                "code_challenge": data["code_challenge"],
                "code_challenge_method": data.get("code_challenge_method") or "S256",
                "nonce": data.get("nonce"),
                "issued": time.time(),
            }
            state.put("code", record, CODE_SECONDS, token=code)

        def query_authorization_code(self, code: str, client: AppClient) -> DevCode | None:
            record = state.peek("code", code)
            if record is None or record.get("client_id") != client.client_id:
                return None
            return DevCode(code, **{key: value for key, value in record.items() if key != "_expires"})

        def delete_authorization_code(self, authorization_code: DevCode) -> None:
            state.take("code", authorization_code.code)

        def authenticate_user(self, authorization_code: DevCode) -> DevUser:
            return DevUser(CLINICIAN.id, CLINICIAN.fhir_user, authorization_code.patient)

    class OpenIdConnect(OpenIDCode):  # type: ignore[misc]
        def resolve_client_private_key(self, client: AppClient) -> KeySet:
            return keys

        def get_client_claims(self, client: AppClient) -> dict[str, Any]:
            return {"iss": issuer, "aud": [client.client_id]}

        def get_encode_header(self, client: AppClient) -> dict[str, str]:
            return {"alg": "RS256", "kid": KID}

        def exists_nonce(self, nonce: str, req: Any) -> bool:
            return False

        def generate_user_info(self, user: DevUser, scope: str) -> dict[str, str]:
            return {"sub": user.id, "fhirUser": f"{fhir_base}/{user.fhir_user}"}

    def save_token(token: dict[str, Any], req: Any) -> None:
        return None  # self-contained JWTs: nothing to look up later

    server = AuthorizationServer(
        app, query_client=lambda client_id: client if client_id == client.client_id else None, save_token=save_token
    )
    server.register_token_generator("default", TokenGenerator(issuer=issuer, expires_generator=TOKEN_SECONDS))
    server.register_grant(CodeGrant, [S256Only(required=True), OpenIdConnect(require_nonce=False)])
    return server


def _dev() -> DevEhr:
    wired = cast(ServiceApp, current_app).dev_ehr
    assert wired is not None, "the blueprint is registered only with the development EHR"
    return wired


@blueprint.before_request
def _loopback_only() -> None:
    # Belt and braces: the launcher is only registered on a loopback-only service, and answers only loopback peers.
    if request.remote_addr not in ("127.0.0.1", "::1"):
        abort(404)


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


# the picker and the launch -------------------------------------------------------------------------------------


def _people() -> list[DemoPatient]:
    return demo_patients(services())


@blueprint.get("/")
def picker() -> Any:
    """The demo people, each a link that launches the app for them (as opening a chart in an EHR would)."""
    return render_template("dev_ehr/picker.html", people=_people(), launch=None, error=None)


@blueprint.get("/launch")
def launch() -> Any:
    """An EHR launch for one patient: a single-use launch id, then the app's launch URL with ``iss`` and ``launch``."""
    patient = request.args.get("patient", "").strip()
    if not _FHIR_ID.match(patient):
        error = "A patient id is letters, digits, '-' and '.' only (at most 64), for example demo-02."
        return render_template("dev_ehr/picker.html", people=_people(), launch=None, error=error), 400
    dev = _dev()
    token = dev.state.put("launch", {"patient": patient}, LAUNCH_SECONDS)
    query = urlencode({"iss": dev_launch.fhir_base(dev.settings), "launch": token})
    return redirect(f"{dev_launch.public_root(dev.settings)}/app/launch?{query}")


# the authorization server --------------------------------------------------------------------------------------


@blueprint.get("/fhir/.well-known/smart-configuration")
def smart_configuration() -> Response:
    settings = _dev().settings
    issuer = dev_launch.issuer(settings)
    return jsonify(
        issuer=issuer,
        jwks_uri=f"{issuer}/jwks",
        authorization_endpoint=f"{issuer}/authorize",
        token_endpoint=f"{issuer}/token",
        grant_types_supported=["authorization_code"],
        response_types_supported=["code"],
        scopes_supported=SCOPES.split(),
        code_challenge_methods_supported=["S256"],
        token_endpoint_auth_methods_supported=["none", "client_secret_basic"],
        capabilities=["launch-ehr", "client-public", "client-confidential-symmetric", "context-ehr-patient",
                      "sso-openid-connect", "permission-v1", "permission-v2"],
    )  # fmt: skip


@blueprint.get("/jwks")
def jwks() -> Response:
    return jsonify(_dev().keys.as_dict(private=False))


@blueprint.get("/authorize")
def authorize() -> Any:
    """Access is granted at once for the made-up clinician: the patient comes from the launch id."""
    dev = _dev()
    try:
        grant = dev.server.get_consent_grant(end_user=CLINICIAN)
    except OAuth2Error as error:
        message = f"The app's authorization request was refused: {error.description or error.error}"
        return render_template("dev_ehr/picker.html", people=_people(), launch=None, error=message), 400
    if dev.state.peek("launch", request.args.get("launch")) is None:
        message = "That launch is unknown, used already or expired: choose the person again."
        return render_template("dev_ehr/picker.html", people=_people(), launch=None, error=message), 400
    return dev.server.create_authorization_response(grant_user=CLINICIAN, grant=grant)


@blueprint.post("/token")
def token() -> Response:
    response: Response = _dev().server.create_token_response()
    return response


@blueprint.get("/fhir/Patient/<patient_id>")
def read_patient(patient_id: str) -> tuple[Response, int] | Response:
    """The launched patient, as an EHR would give it to the app: only with a token for that patient."""
    dev = _dev()
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    try:
        claims = jwt.decode(bearer, dev.keys, algorithms=["RS256"]).claims
        JWTClaimsRegistry(
            iss={"essential": True, "value": dev_launch.issuer(dev.settings)},
            aud={"essential": True, "value": dev_launch.fhir_base(dev.settings)},
            exp={"essential": True},
        ).validate(claims)
    except (JoseError, ValueError):
        return jsonify(resourceType="OperationOutcome", issue=[_issue("login", "A valid access token is needed")]), 401
    if scheme.lower() != "bearer" or claims.get("patient") != patient_id:
        return jsonify(resourceType="OperationOutcome", issue=[_issue("forbidden", "Not this token's patient")]), 403
    name = next((person.name for person in _people() if person.patient_id == patient_id), None)
    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
    if dev.settings.smart_patient_identifier_system:  # so that mapping by identifier works here too
        patient["identifier"] = [{"system": dev.settings.smart_patient_identifier_system, "value": patient_id}]
    if name:
        patient["name"] = [{"text": name}]
    return jsonify(patient)


def _issue(code: str, text: str) -> dict[str, Any]:
    return {"severity": "error", "code": code, "details": {"text": text}}


def init_app(app: ServiceApp) -> None:
    """Registers the development EHR only where it is allowed (authentication off, loopback only). The app's
    settings already trust it (create_app applied ``app_settings``)."""
    settings = app.web.services.settings
    if not dev_launch.available(settings):
        return
    state = state_for(settings)
    key = state.signing_key()
    assert settings.smart_client_id is not None
    client = AppClient(
        settings.smart_client_id, f"{dev_launch.public_root(settings)}/app/callback", settings.smart_client_secret
    )
    app.dev_ehr = DevEhr(settings, state, key, client, _build_server(app, state, key, client, settings))
    app.register_blueprint(blueprint)
