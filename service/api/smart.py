"""SMART discovery: /fhir/.well-known/smart-configuration describes the authorization server this service trusts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response

from service.api.http import fhir_response
from service.api.web import services
from service.config import Settings
from service.fhir.errors import NotFound

blueprint = Blueprint("smart", __name__)

SCOPES_SUPPORTED = (
    "openid", "fhirUser", "launch", "launch/patient", "offline_access",
    "patient/QuestionnaireResponse.cruds", "patient/Observation.rs", "patient/Questionnaire.rs",
    "user/QuestionnaireResponse.cruds", "user/Observation.rs", "user/Questionnaire.rs", "user/AuditEvent.rs",
    "system/QuestionnaireResponse.cruds", "system/Observation.rs", "system/Questionnaire.cruds",
    "system/Provenance.rs", "system/AuditEvent.rs",
    "patient/QuestionnaireResponse.read", "patient/QuestionnaireResponse.write", "user/*.read", "system/*.read",
)  # fmt: skip
CAPABILITIES = (
    "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
    "client-confidential-asymmetric", "context-ehr-patient", "context-standalone-patient",
    "permission-patient", "permission-user", "permission-v1", "permission-v2",
)  # fmt: skip


def smart_configuration(settings: Settings) -> dict[str, Any]:
    configuration: dict[str, Any] = {
        "issuer": settings.auth_issuers[0],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "response_types_supported": ["code"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "capabilities": list(CAPABILITIES),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
    }
    if settings.auth_jwks_url:
        configuration["jwks_uri"] = settings.auth_jwks_url
    if settings.auth_authorize_url:
        configuration["authorization_endpoint"] = settings.auth_authorize_url
    if settings.auth_token_url:
        configuration["token_endpoint"] = settings.auth_token_url
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
    settings = services().settings
    if settings.auth_mode != "jwt":
        raise NotFound("Authentication is off (PROMS_AUTH=none): there is no authorization server to describe")
    response = fhir_response(smart_configuration(settings))
    response.content_type = "application/json"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
