"""The CapabilityStatement, built from what is actually wired so that it cannot claim more than is true."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.fhir.search import SearchCapabilities

SDC = "http://hl7.org/fhir/uv/sdc/CapabilityStatement/"
PARAM_TYPE_ON_WIRE = {"canonical": "reference"}


@dataclass(frozen=True, slots=True)
class ResourceCapability:
    type: str
    profile: str
    interactions: Sequence[str]
    search: SearchCapabilities
    conditional_create: bool = True
    operations: Sequence[tuple[str, str]] = ()  # (name, OperationDefinition canonical)
    documentation: str | None = None  # what a client should know beyond the interactions


def capability_statement(
    *,
    base_url: str,
    software_version: str,
    resources: Sequence[ResourceCapability],
    system_interactions: Sequence[str],
    implementation_guides: Sequence[str] = (),
    instantiates: Sequence[str] = (),
    security: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    rest_resources = []
    for resource in resources:
        entry: dict[str, Any] = {
            "type": resource.type,
            "profile": resource.profile,
            "interaction": [{"code": code} for code in resource.interactions],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": "update" in resource.interactions,
            "conditionalCreate": resource.conditional_create,
            "conditionalRead": "not-supported",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "referencePolicy": ["literal", "local"],
            "searchInclude": list(resource.search.includes),
            "searchRevInclude": list(resource.search.revincludes),
            "searchParam": [
                {
                    "name": param.name,
                    "type": PARAM_TYPE_ON_WIRE.get(param.type, param.type),
                    "documentation": param.description,
                }
                for param in resource.search.params.values()
            ],
        }
        if resource.documentation:
            entry["documentation"] = resource.documentation
        if resource.operations:
            entry["operation"] = [{"name": name, "definition": definition} for name, definition in resource.operations]
        rest_resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Search result parameters: _count, _sort, _include, _revinclude, _summary=count, "
        "_elements. Paging links are keyset-based. Unknown parameters are ignored unless "
        "'Prefer: handling=strict' is sent.",
        "resource": rest_resources,
        "interaction": [{"code": code} for code in system_interactions],
    }
    if security:
        rest["security"] = security
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "Recovery PROM service",
        "kind": "instance",
        "software": {"name": "recovery-proms", "version": software_version},
        "implementation": {"description": "Recovery-focused PROM service", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": [],
        "rest": [rest],
    }
    if instantiates:
        statement["instantiates"] = list(instantiates)
    if implementation_guides:
        statement["implementationGuide"] = list(implementation_guides)
    return statement
