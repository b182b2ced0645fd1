"""SMART App Launch 2.0 for the clinician app: discovery, authorization code with PKCE (Authlib), launch context.

Only EHRs named in PROMS_SMART_ISS may launch the app: the patient in the launch context decides whose
data is shown, so an authorization server the service does not trust must never get to name one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]

from service.auth.tokens import InvalidToken, TokenVerifier
from service.config import LOOPBACK_HOSTS, Settings
from service.validation.references import R4_RESOURCE_TYPES

TIMEOUT_SECONDS = 10
AUTHOR_TYPES = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Organization", "Device")


class LaunchError(Exception):
    """The launch cannot go on; the message is safe to show the clinician."""


@dataclass(frozen=True)
class SmartEndpoints:
    authorize: str
    token: str
    issuer: str | None  # the OpenID issuer, for checking an id_token
    jwks_uri: str | None


def trusted_endpoint(url: str) -> bool:
    """HTTPS, or plain HTTP only to this machine (development and tests)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS)


def requested_scopes(configured: str, *, ehr_launch: bool) -> str:
    """The scopes to ask for: an EHR launch asks for ``launch``, a standalone one for ``launch/patient``."""
    words = [word for word in configured.split() if word not in ("launch", "launch/patient")]
    return " ".join(["launch" if ehr_launch else "launch/patient", *words])


def _get_json(url: str, session: requests.Session | None = None) -> dict[str, Any]:
    try:
        response = (session or requests).get(url, headers={"Accept": "application/json"}, timeout=TIMEOUT_SECONDS)
    except requests.RequestException:
        raise LaunchError(f"The EHR could not be reached at {url}") from None
    if response.status_code != 200:
        raise LaunchError(f"The EHR answered {response.status_code} for {url}")
    try:
        body = response.json()
    except ValueError:
        raise LaunchError(f"The EHR's answer from {url} is not JSON") from None
    if not isinstance(body, dict):
        raise LaunchError(f"The EHR's answer from {url} is not a JSON object")
    return body


def discover(iss: str) -> SmartEndpoints:
    """The authorization server of an EHR, from its FHIR base's ``.well-known/smart-configuration``."""
    configuration = _get_json(f"{iss}/.well-known/smart-configuration")
    authorize, token = configuration.get("authorization_endpoint"), configuration.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str):
        raise LaunchError("The EHR's SMART configuration names no authorization or token endpoint")
    if not trusted_endpoint(authorize) or not trusted_endpoint(token):
        raise LaunchError("The EHR's authorization endpoints must use HTTPS")
    methods = configuration.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise LaunchError("The EHR's authorization server does not support PKCE with S256, which SMART 2.0 requires")
    issuer, jwks_uri = configuration.get("issuer"), configuration.get("jwks_uri")
    return SmartEndpoints(
        authorize,
        token,
        issuer if isinstance(issuer, str) else None,
        jwks_uri if isinstance(jwks_uri, str) and trusted_endpoint(jwks_uri) else None,
    )


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str


class SmartClient:
    """The app as an OAuth 2.0 client of the EHR (public with PKCE, or confidential with a secret too)."""

    def __init__(self, settings: Settings) -> None:
        self.client_id = settings.smart_client_id
        self.client_secret = settings.smart_client_secret
        self.scopes = settings.smart_scopes

    def _session(self, redirect_uri: str, scope: str | None = None, token: Any = None) -> Any:
        return OAuth2Session(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token=token,
        )

    def authorization_request(
        self, endpoints: SmartEndpoints, iss: str, launch: str | None, redirect_uri: str
    ) -> AuthorizationRequest:
        scope = requested_scopes(self.scopes, ehr_launch=launch is not None)
        verifier = generate_token(64)
        extra = {"aud": iss, **({"launch": launch} if launch is not None else {})}
        with self._session(redirect_uri, scope) as client:
            url, state = client.create_authorization_url(endpoints.authorize, code_verifier=verifier, **extra)
        return AuthorizationRequest(url, state, verifier)

    def exchange(self, token_endpoint: str, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token response for an authorization code (with the launch context: ``patient`` and more)."""
        try:
            with self._session(redirect_uri) as client:
                token = client.fetch_token(
                    token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    timeout=TIMEOUT_SECONDS,
                )
        except OAuthError as exc:
            raise LaunchError(f"The EHR refused the sign-in: {exc.description or exc.error}") from None
        except requests.RequestException:
            raise LaunchError("The EHR's token endpoint could not be reached") from None
        return dict(token)

    def read_patient(self, iss: str, patient: str, token: Mapping[str, Any]) -> dict[str, Any] | None:
        """The EHR's Patient resource, read with the access token (None when the EHR will not give it)."""
        try:
            with self._session("", token=dict(token)) as client:
                response = client.get(
                    f"{iss}/Patient/{patient}", headers={"Accept": "application/fhir+json"}, timeout=TIMEOUT_SECONDS
                )
        except (requests.RequestException, OAuthError):
            return None
        if response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) and body.get("resourceType") == "Patient" else None

    def user_of(self, token: Mapping[str, Any], endpoints: SmartEndpoints) -> str | None:
        """The signed-in user's FHIR reference from a verified id_token's ``fhirUser`` (None without one)."""
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or endpoints.issuer is None or endpoints.jwks_uri is None:
            return None
        assert self.client_id is not None
        verifier = TokenVerifier(issuers=[endpoints.issuer], audience=self.client_id, jwks_url=endpoints.jwks_uri)
        try:
            claims = verifier.verify(id_token)
        except InvalidToken as exc:
            raise LaunchError(f"The EHR's identity token was refused: {exc.detail}") from None
        return author_reference(claims.get("fhirUser"))


def author_reference(fhir_user: Any) -> str | None:
    """A ``fhirUser`` as a QuestionnaireResponse.author reference, when it names a resource that can author."""
    if not isinstance(fhir_user, str):
        return None
    parts = fhir_user.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] not in AUTHOR_TYPES or parts[-2] not in R4_RESOURCE_TYPES:
        return None
    return fhir_user
