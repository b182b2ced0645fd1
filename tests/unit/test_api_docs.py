"""docs/api.md, openapi.yaml, the CapabilityStatement and the routes Flask serves all tell the same story."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from service.apidoc import API_DOC, COMMAND, load_openapi, operations, render, served_capability_statement
from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.resources import SERVED

Endpoint = tuple[str, str]  # (METHOD, path with every parameter written {})

# The FHIR REST routes take the resource type as a parameter: each serves one interaction, for the types that allow it.
GENERIC_ROUTES = {
    "fhir_rest.create": "create",
    "fhir_rest.update": "update",
    "fhir_rest.delete": "delete",
    "fhir_rest.read": "read",
    "fhir_rest.vread": "vread",
    "fhir_rest.history_instance": "history-instance",
    "fhir_rest.history_type": "history-type",
    "fhir_rest.search_get": "search-type",
    "fhir_rest.search_post": "search-type",
}
# Interactions as HTTP: (method, path under /fhir/{type}).
INTERACTION_ENDPOINTS = {
    "read": ("GET", "/{}"),
    "vread": ("GET", "/{}/_history/{}"),
    "update": ("PUT", "/{}"),
    "delete": ("DELETE", "/{}"),
    "history-instance": ("GET", "/{}/_history"),
    "history-type": ("GET", "/_history"),
    "create": ("POST", ""),
    "search-type": ("GET", ""),
}
# Served, but no FHIR interaction: the CapabilityStatement itself and SMART discovery.
FHIR_WITHOUT_INTERACTION = {("GET", "/fhir/metadata"), ("GET", "/fhir/.well-known/smart-configuration")}
# Bulk Data's asynchronous request pattern belongs to the $export operation.
EXPORT_FOLLOW_UPS = re.compile(r"^/fhir/\$export-(status|file|error)/")
RESULT_PARAMETERS = {"_count", "_sort", "_summary", "_elements", "_include", "_revinclude", "_format", "_page"}


def normalise(path: str) -> str:
    """Path parameters, Flask's <converter:name> or OpenAPI's {name}, all written {}."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    app = create_app(Settings(database_url="sqlite://", auth_mode="none", log_level="ERROR"))
    yield app
    app.web.services.db.dispose()


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return load_openapi(PROJECT_ROOT / "openapi.yaml")


@pytest.fixture(scope="module")
def statement() -> dict[str, Any]:
    return served_capability_statement()


def contract_endpoints(contract: dict[str, Any]) -> set[Endpoint]:
    return {(method, normalise(path)) for method, path, _ in operations(contract)}


def served_endpoints(app: Flask) -> set[Endpoint]:
    """What the app answers: its URL rules, the generic FHIR ones expanded to the types that allow them."""
    served: set[Endpoint] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith(("smart_app.", "dev_ehr.")):
            continue  # the clinician app's HTML pages, their assets and the development launcher (docs/smart-app.md)
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        interaction = GENERIC_ROUTES.get(rule.endpoint)
        if interaction is None:
            served.update((method, normalise(rule.rule)) for method in methods)
            continue
        for name, served_type in SERVED.items():
            if interaction in served_type.interactions:
                path = normalise(rule.rule.replace("<resource_type>", name))
                served.update((method, path) for method in methods)
    return served


def declared_endpoints(statement: dict[str, Any]) -> set[Endpoint]:
    """The interactions of the CapabilityStatement, as the requests that perform them."""
    declared: set[Endpoint] = set()
    for resource in statement["rest"][0]["resource"]:
        for interaction in resource.get("interaction", []):
            method, suffix = INTERACTION_ENDPOINTS[interaction["code"]]
            declared.add((method, f"/fhir/{resource['type']}{suffix}"))
    return declared


def declared_operations(statement: dict[str, Any]) -> set[tuple[str | None, str]]:
    """(resource type, or None at system level; operation name)."""
    rest = statement["rest"][0]
    found: set[tuple[str | None, str]] = {(None, op["name"]) for op in rest.get("operation", [])}
    for resource in rest["resource"]:
        found.update((resource["type"], op["name"]) for op in resource.get("operation", []))
    return found


def fhir_meaning(method: str, path: str) -> tuple[str, str | None, str] | None:
    """What a /fhir endpoint of the contract is: ("interaction", type, code) or ("operation", type, name)."""
    if (method, path) in FHIR_WITHOUT_INTERACTION:
        return None
    if EXPORT_FOLLOW_UPS.match(path):
        return ("operation", None, "export")
    parts = path.removeprefix("/fhir/").split("/")
    if parts[0].startswith("$"):
        return ("operation", None, parts[0][1:])
    resource_type, rest = parts[0], parts[1:]
    if rest and rest[-1].startswith("$"):
        return ("operation", resource_type, rest[-1][1:])
    if rest == ["_search"] and method == "POST":
        return ("interaction", resource_type, "search-type")
    suffix = "".join(f"/{part}" for part in rest)
    for code, endpoint in INTERACTION_ENDPOINTS.items():
        if endpoint == (method, suffix):
            return ("interaction", resource_type, code)
    return ("unknown", resource_type, f"{method} {path}")


def test_api_md_is_generated_from_the_contract_and_the_capability_statement(
    contract: dict[str, Any], statement: dict[str, Any]
) -> None:
    expected = render(contract, statement)
    assert API_DOC.read_text(encoding="utf-8") == expected, f"docs/api.md is out of date: run `{COMMAND}`"


def test_api_md_lists_every_endpoint_and_every_search_parameter(
    contract: dict[str, Any], statement: dict[str, Any]
) -> None:
    text = API_DOC.read_text(encoding="utf-8")
    for method, path, _ in operations(contract):
        assert f"| `{method}` | `{path}` |" in text
    for resource in statement["rest"][0]["resource"]:
        assert f"### {resource['type']}\n" in text
        for param in resource.get("searchParam", []):
            assert f"| `{param['name']}` | {param['type']} |" in text


def test_every_endpoint_the_app_serves_is_in_the_contract_and_nothing_else(
    app: Flask, contract: dict[str, Any]
) -> None:
    served, documented = served_endpoints(app), contract_endpoints(contract)
    assert sorted(served - documented) == [], "served but missing from openapi.yaml"
    assert sorted(documented - served) == [], "in openapi.yaml but not served"


def test_every_declared_interaction_and_operation_is_in_the_contract(
    contract: dict[str, Any], statement: dict[str, Any]
) -> None:
    documented = contract_endpoints(contract)
    assert sorted(declared_endpoints(statement) - documented) == [], "declared in /fhir/metadata, not in openapi.yaml"
    paths = {path for _, path in documented}
    for resource_type, name in sorted(declared_operations(statement), key=str):
        prefix = f"/fhir/{resource_type}" if resource_type else "/fhir"
        candidates = {f"{prefix}/${name}", f"{prefix}/{{}}/${name}"}
        assert paths & candidates, f"${name} on {resource_type or 'the system'} is declared but not in openapi.yaml"


def test_every_fhir_endpoint_of_the_contract_is_declared(contract: dict[str, Any], statement: dict[str, Any]) -> None:
    declared = {
        (resource["type"], interaction["code"])
        for resource in statement["rest"][0]["resource"]
        for interaction in resource.get("interaction", [])
    }
    operations_declared = declared_operations(statement)
    for method, path in sorted(contract_endpoints(contract)):
        if not path.startswith("/fhir/"):
            continue
        meaning = fhir_meaning(method, path)
        if meaning is None:
            continue
        kind, resource_type, name = meaning
        assert kind != "unknown", f"{name} is no FHIR interaction or operation"
        if kind == "operation":
            assert (resource_type, name) in operations_declared, f"{method} {path}: ${name} is not declared"
        else:
            assert (resource_type, name) in declared, f"{method} {path}: {name} on {resource_type} is not declared"


def test_search_parameters_are_the_same_in_the_contract_and_the_capability_statement(
    contract: dict[str, Any], statement: dict[str, Any]
) -> None:
    for resource in statement["rest"][0]["resource"]:
        if not any(entry["code"] == "search-type" for entry in resource.get("interaction", [])):
            continue
        search = contract["paths"][f"/fhir/{resource['type']}"]["get"]
        documented = {
            param["name"]
            for param in search.get("parameters", [])
            if param.get("in") == "query" and param["name"] not in RESULT_PARAMETERS
        }
        declared = {param["name"] for param in resource.get("searchParam", [])}
        assert documented == declared, resource["type"]


LINK = re.compile(r"\]\(([^)\s]+)\)")
GUIDES = ("docs/api.md", "docs/integration.md", "docs/deploy.md", "examples/README.md", "README.md")


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("guide", GUIDES)
def test_the_guides_links_lead_somewhere(guide: str) -> None:
    page = PROJECT_ROOT / guide
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{guide} links to {target}, which does not exist"
        if anchor:
            assert anchor in heading_anchors(linked.read_text(encoding="utf-8")), f"{guide}: no heading for {target}"
