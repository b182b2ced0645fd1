"""SMART discovery: /fhir/.well-known/smart-configuration describes the authorization server this service trusts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response

from service.api.http import fhir_response
from service.api.web import web
from service.auth.access import (
    CLINICIAN_WRITES,
    NOT_FOR_PATIENT_SCOPES,
    OPEN_CONFORMANCE,
    PUBLIC_DEFINITIONS,
    SYSTEM_ONLY_WRITES,
)
from service.config import Settings
from service.fhir.errors import NotFound

blueprint = Blueprint("smart", __name__)

# The scopes a user-facing launch asks for besides resource scopes (SMART App Launch 2.0, section "Scopes").
LAUNCH_SCOPES = ("openid", "fhirUser", "launch", "launch/patient")
CONTEXTS = ("patient", "user", "system")
V2_ORDER = "cruds"
LETTERS = {"create": "c", "read": "r", "update": "u", "delete": "d", "search-type": "s"}
# What this service, as the resource server, enforces whatever the authorization server is.
RESOURCE_SERVER_CAPABILITIES = ("permission-patient", "permission-user", "permission-v1", "permission-v2")
# What needs the authorization server's authorize and token endpoints: a user signs in (an EHR or standalone launch).
USER_LAUNCH_CAPABILITIES = (
    "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
    "context-ehr-patient", "context-standalone-patient",
)  # fmt: skip
# What needs the token endpoint only: backend services (client_credentials with a signed JWT assertion).
BACKEND_CAPABILITIES = ("client-confidential-asymmetric",)


def _ordered(letters: set[str]) -> str:
    return "".join(letter for letter in V2_ORDER if letter in letters)


@dataclass(frozen=True, slots=True)
class ScopedType:
    """What the service offers on one resource type, as scopes need to know it."""

    interactions: frozenset[str]  # read, search-type, create, update, delete ...
    in_patient_compartment: bool  # patient/ scopes reach it (a patient's own resources of the type)


def _type_scopes(resource_type: str, offered: ScopedType) -> list[str]:
    """The scopes that allow what the service offers on one type, in each context the access rules accept."""
    letters = {LETTERS[name] for name in offered.interactions if name in LETTERS}
    scopes = []
    for context in CONTEXTS:
        if context == "patient" and (resource_type in NOT_FOR_PATIENT_SCOPES or not offered.in_patient_compartment):
            continue
        writes = letters & set("cud")
        if (resource_type in SYSTEM_ONLY_WRITES and context != "system") or (
            resource_type in CLINICIAN_WRITES and context == "patient"
        ):
            writes = set()
        reads = letters & set("rs") if resource_type not in PUBLIC_DEFINITIONS else set()
        if reads:  # definitions are read without a scope
            scopes += [f"{context}/{resource_type}.{_ordered(reads)}", f"{context}/{resource_type}.read"]
        if writes:
            scopes += [f"{context}/{resource_type}.{_ordered(writes | (letters & set('rs')))}"]
            scopes += [f"{context}/{resource_type}.c"] if "c" in writes else []
            scopes += [f"{context}/{resource_type}.write"]
    return scopes


def resource_scopes(served: Mapping[str, ScopedType]) -> list[str]:
    """Every resource scope a client may usefully request here, from what is served and the access rules
    (service.auth.access): SMART v2 (``.rs``, ``.cruds``, create only ``.c``) and v1 (``.read``, ``.write``), per
    type and as wildcards. A v2 scope may also carry a filter (``?category=survey``)."""
    scopes = [f"{context}/*.{permissions}" for context in CONTEXTS for permissions in ("rs", "cruds", "read", "write")]
    for resource_type, offered in served.items():
        if resource_type not in OPEN_CONFORMANCE:
            scopes += _type_scopes(resource_type, offered)
    return list(dict.fromkeys(scopes))


def smart_configuration(settings: Settings, scopes: Sequence[str]) -> dict[str, Any]:
    """What a client needs to get a token this service accepts: only what is configured is advertised (a launch
    needs the authorization server's authorize and token endpoints; a backend service its token endpoint)."""
    user_launch = bool(settings.auth_authorize_url and settings.auth_token_url)
    backend = bool(settings.auth_token_url)
    capabilities = [*RESOURCE_SERVER_CAPABILITIES]
    grant_types = []
    auth_methods = []
    if user_launch:
        capabilities += USER_LAUNCH_CAPABILITIES
        grant_types.append("authorization_code")
        auth_methods.append("client_secret_basic")
    if backend:
        capabilities += BACKEND_CAPABILITIES
        grant_types.append("client_credentials")
        auth_methods.append("private_key_jwt")
    configuration: dict[str, Any] = {"issuer": settings.auth_issuers[0]}
    if settings.auth_jwks_url:
        configuration["jwks_uri"] = settings.auth_jwks_url
    if user_launch:
        configuration["authorization_endpoint"] = settings.auth_authorize_url
        configuration["response_types_supported"] = ["code"]
        configuration["code_challenge_methods_supported"] = ["S256"]
    if backend:
        configuration["token_endpoint"] = settings.auth_token_url
        configuration["token_endpoint_auth_methods_supported"] = auth_methods
    configuration["grant_types_supported"] = grant_types
    configuration["scopes_supported"] = [
        *(LAUNCH_SCOPES if user_launch else ()),
        *scopes,
    ]
    configuration["capabilities"] = capabilities
    return configuration


def security_statement(settings: Settings) -> dict[str, Any]:
    """CapabilityStatement.rest.security: SMART on FHIR, with the authorization server's endpoints."""
    uris = [
        {"url": name, "valueUri": uri}
        for name, uri in (("authorize", settings.auth_authorize_url), ("token", settings.auth_token_url))
        if uri
    ]
    security: dict[str, Any] = {
        "cors": bool(settings.cors_origins),
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": "Bearer JWTs (RS256/RS384/ES256/ES384) from the configured issuer; SMART v1 and v2 scopes, "
        "patient/ scopes confined to the token's patient, system/ scopes for backend services. See "
        ".well-known/smart-configuration.",
    }
    if uris:
        security["extension"] = [
            {"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris", "extension": uris}
        ]
    return security


@blueprint.get("/fhir/.well-known/smart-configuration")
def discovery() -> Response:
    configuration = web().smart_configuration
    if configuration is None:
        raise NotFound("Authentication is off (PROMS_AUTH=none): there is no authorization server to describe")
    response = fhir_response(configuration)
    response.content_type = "application/json"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
