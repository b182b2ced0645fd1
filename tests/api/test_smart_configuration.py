"""SMART discovery tells the truth in every mode: only what is configured, and every scope the guides ask for."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from service.app import create_app
from service.auth.scopes import parse_scope
from service.config import PROJECT_ROOT, Settings
from tests.conftest import Keys, jwt_settings

AUTHORIZE = "https://auth.proms.test/authorize"
TOKEN = "https://auth.proms.test/token"
LAUNCH_CAPABILITIES = {"launch-ehr", "launch-standalone", "context-ehr-patient", "context-standalone-patient"}
# SMART's scopes that are not about a resource type (App Launch 2.0 "Scopes for requesting context data" and
# "identity data"), as the guides would write them in code.
SMART_WORDS = {"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access"}
RESOURCE_SCOPE = re.compile(r"(?<![\w/])(?:patient|user|system)/(?:\*|[A-Z][A-Za-z]+)\.[a-z*]+(?:\?[^\s`'\"|)]*)?")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _documented_scopes() -> tuple[set[str], set[str]]:
    """The resource scopes (without their filters) and the other SMART scopes the README and docs/ tell a client
    to request: resource scopes anywhere, the other words only inside code."""
    resources: set[str] = set()
    others: set[str] = set()
    for path in [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]:
        text = Path(path).read_text()
        resources |= {found.split("?", 1)[0] for found in RESOURCE_SCOPE.findall(text)}
        for span in CODE_SPAN.findall(text):
            others |= {word for word in span.split() if word in SMART_WORDS}
    return resources, others


def _configuration(settings: Settings) -> tuple[int, dict[str, Any]]:
    app = create_app(settings)
    try:
        response = app.test_client().get("/fhir/.well-known/smart-configuration")
        return response.status_code, response.get_json()
    finally:
        app.web.services.db.dispose()


@pytest.fixture
def modes(database_url: str, keys: Keys) -> Iterator[dict[str, dict[str, Any]]]:
    base = jwt_settings(database_url, keys)
    yield {
        "launch and backend": _configuration(base.with_(auth_authorize_url=AUTHORIZE, auth_token_url=TOKEN))[1],
        "backend only": _configuration(base.with_(auth_token_url=TOKEN))[1],
        "no endpoints": _configuration(base)[1],
    }


def test_a_launch_is_advertised_only_with_both_endpoints(modes: dict[str, dict[str, Any]]) -> None:
    full = modes["launch and backend"]
    assert full["authorization_endpoint"] == AUTHORIZE and full["token_endpoint"] == TOKEN
    assert LAUNCH_CAPABILITIES <= set(full["capabilities"])
    assert full["grant_types_supported"] == ["authorization_code", "client_credentials"]
    assert full["code_challenge_methods_supported"] == ["S256"]
    assert {"launch", "launch/patient", "openid", "fhirUser"} <= set(full["scopes_supported"])

    backend = modes["backend only"]
    assert "authorization_endpoint" not in backend and backend["token_endpoint"] == TOKEN
    assert not LAUNCH_CAPABILITIES & set(backend["capabilities"])
    assert "client-confidential-asymmetric" in backend["capabilities"]
    assert backend["grant_types_supported"] == ["client_credentials"]
    assert backend["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert not {"launch", "launch/patient", "openid", "fhirUser"} & set(backend["scopes_supported"])

    bare = modes["no endpoints"]
    assert "authorization_endpoint" not in bare and "token_endpoint" not in bare
    assert bare["grant_types_supported"] == []
    assert set(bare["capabilities"]) == {"permission-patient", "permission-user", "permission-v1", "permission-v2"}
    for configuration in modes.values():
        assert configuration["issuer"] == "https://auth.proms.test"
        assert "sso-openid-connect" not in configuration["capabilities"]  # the issuer's id_tokens are not checked


def test_every_scope_the_guides_ask_for_is_supported(modes: dict[str, dict[str, Any]]) -> None:
    resources, others = _documented_scopes()
    # What the guides are known to ask for, so that the extraction itself is checked too.
    assert {"system/Flag.rs", "system/Subscription.cruds", "system/Group.rs", "user/Observation.rs"} <= resources
    assert {"launch", "launch/patient", "openid", "fhirUser"} <= others
    for mode, configuration in modes.items():
        missing = resources - set(configuration["scopes_supported"])
        assert not missing, f"{mode}: scopes_supported lacks {sorted(missing)}"
    assert others <= set(modes["launch and backend"]["scopes_supported"])


def test_every_supported_resource_scope_allows_what_it_names(
    database_url: str, keys: Keys, modes: dict[str, dict[str, Any]]
) -> None:
    """A token with just that scope (and a patient, for patient/ scopes) is not refused for the type it names."""
    app: Flask = create_app(jwt_settings(database_url, keys))
    client = app.test_client()
    try:
        for scope in modes["no endpoints"]["scopes_supported"]:
            parsed = parse_scope(scope)
            assert parsed is not None, scope
            if parsed.resource_type == "*":
                continue
            headers = {"Authorization": f"Bearer {keys.token(scope, patient='p1')}"}
            if "s" in parsed.permissions:
                response = client.get(f"/fhir/{parsed.resource_type}?_count=1", headers=headers)
                assert response.status_code == 200, (scope, response.get_json())
                continue
            write = {**headers, "Content-Type": "application/fhir+json"}
            body = {"resourceType": parsed.resource_type, "id": "unknown"}
            response = client.post(f"/fhir/{parsed.resource_type}", json=body, headers=write)
            if response.status_code == 405:  # updated only (a Flag's review)
                response = client.put(f"/fhir/{parsed.resource_type}/unknown", json=body, headers=write)
            assert response.status_code not in (401, 403, 405), (scope, response.get_json())
    finally:
        app.web.services.db.dispose()


def test_discovery_is_not_found_when_authentication_is_off(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", auth_mode="none"))
    response = app.test_client().get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 404
    assert "Authentication is off" in response.get_json()["issue"][0]["details"]["text"]
    app.web.services.db.dispose()
