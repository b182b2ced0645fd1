"""SMART on FHIR scopes (v1 and v2, with v2 query filters) parsed into plain data, and matched to requests."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

V2_PERMISSIONS = "cruds"
V1_PERMISSIONS = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset(V2_PERMISSIONS)}
_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$")


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope: ``patient/Observation.rs?category=survey`` -> context, type, permissions, filter."""

    context: str  # patient | user | system
    resource_type: str  # a type or '*'
    permissions: frozenset[str]  # subset of c r u d s
    filters: tuple[tuple[str, str], ...] = ()

    def covers(self, resource_type: str, permission: str) -> bool:
        return self.resource_type in ("*", resource_type) and permission in self.permissions


def parse_scope(text: str) -> Scope | None:
    """A resource scope, or None for anything else (openid, launch, fhirUser, malformed...)."""
    match = _SCOPE.match(text)
    if match is None:
        return None
    context, resource_type, action, query = match.groups()
    if action in V1_PERMISSIONS:
        permissions = V1_PERMISSIONS[action]
    elif (
        action
        and all(letter in V2_PERMISSIONS for letter in action)
        and list(action) == sorted(action, key=V2_PERMISSIONS.index)
    ):
        permissions = frozenset(action)
    else:
        return None
    filters = tuple(parse_qsl(query[1:], keep_blank_values=False)) if query else ()
    return Scope(context, resource_type, permissions, filters)


def parse_scopes(claim: str | Iterable[str] | None) -> list[Scope]:
    """The resource scopes of a token's ``scope`` claim (space-separated string) or ``scp`` list."""
    if claim is None:
        return []
    words = claim.split() if isinstance(claim, str) else [str(word) for word in claim]
    return [scope for word in words if (scope := parse_scope(word)) is not None]


def matching(scopes: Iterable[Scope], resource_type: str, permission: str, contexts: Iterable[str]) -> list[Scope]:
    allowed = set(contexts)
    return [s for s in scopes if s.context in allowed and s.covers(resource_type, permission)]
