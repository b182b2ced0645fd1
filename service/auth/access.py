"""The one access-check seam every route passes through: who is asking, and what their token allows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from service.auth.scopes import Scope, matching, parse_scopes
from service.auth.tokens import InvalidToken, TokenVerifier
from service.fhir.errors import Forbidden, Unauthorized

# FHIR interaction -> SMART v2 permission letter.
PERMISSIONS = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "history-type": "r",
    "search-type": "s",
    "create": "c",
    "update": "u",
    "delete": "d",
}
# Definitions, not health data: any authenticated client may read them.
PUBLIC_DEFINITIONS = frozenset(
    {"Questionnaire", "Measure", "ValueSet", "CodeSystem", "StructureDefinition", "Basic"}  # Basic: topics
)
# Operations on a definition that read health data, whether or not they name an instance: they need only read
# permission on the definition here (their use case checks what they read), and they are always audited.
HEALTH_DATA_OPERATIONS = frozenset({"operation-evaluate-measure"})
# Operations that change what an instance allows (a new completion link): they need update permission on it.
CHANGING_OPERATIONS = frozenset({"operation-invite"})
# Operations that only read definitions, whether or not they name an instance (terminology): read permission.
DEFINITION_READ_OPERATIONS = frozenset({"operation-expand", "operation-validate-code", "operation-lookup"})
# Conformance resources anyone may read, token or not.
OPEN_CONFORMANCE = frozenset({"StructureDefinition"})
# Only backend (system/) clients may change the instrument library.
SYSTEM_ONLY_WRITES = frozenset({"Questionnaire", "ValueSet", "CodeSystem"})
# Not in a patient's compartment as the service serves them: never to patient-scoped tokens.
NOT_FOR_PATIENT_SCOPES = frozenset({"AuditEvent", "Provenance"})
# A patient may read these but only a clinician (user/) or a backend (system/) may change them: reviewing a safety
# Flag is a clinician's act, and its card must not disappear because the person's own app said so.
CLINICIAN_WRITES = frozenset({"Flag"})


@dataclass(frozen=True, slots=True)
class Interaction:
    """What a request is about to do: a FHIR interaction on a resource type (and instance)."""

    name: str  # read | vread | update | delete | history-instance | history-type | create | search-type | ...
    resource_type: str | None = None
    resource_id: str | None = None

    @property
    def permission(self) -> str | None:
        if self.name in PERMISSIONS:
            return PERMISSIONS[self.name]
        if self.name in HEALTH_DATA_OPERATIONS or self.name in DEFINITION_READ_OPERATIONS:
            return "r"
        if self.name in CHANGING_OPERATIONS:
            return "u"
        if self.name.startswith("operation-"):
            # An operation on a stored instance reads it; one on a submitted body is akin to creating.
            return "r" if self.resource_id else "c"
        return None


@dataclass(frozen=True, slots=True)
class Grant:
    """What the caller may see and do for this request.

    ``patient``: confined to that patient's compartment. ``filters``: SMART v2 scope filters every
    resource must also match (alternatives within one parameter are comma-separated).
    """

    unrestricted: bool
    patient: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    client_id: str | None = None
    user: str | None = None
    scopes: tuple[str, ...] = ()
    # No authentication in force (PROMS_AUTH=none, development on loopback): the caller is not limited by any token.
    # Only NoAuthentication hands this out; a token, whatever it lacks, never makes a grant open.
    open: bool = False
    # Whose act this is, from the scopes that allowed it: "patient" (the person, or an app acting for them),
    # "user" (a clinician), "system" (a backend service). Some acts are a clinician's only (reviewing a safety flag).
    acting_as: str = "system"

    @property
    def is_patient(self) -> bool:
        return self.acting_as == "patient"


UNRESTRICTED = Grant(unrestricted=True)  # the service acting on its own behalf (loading the library, the demo)
OPEN = Grant(unrestricted=True, open=True, acting_as="user")  # development: the one caller may act as a clinician

# RFC 6750 3: error_description is printable ASCII without '"' and '\\'.
_NOT_IN_A_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def www_authenticate(description: str) -> dict[str, str]:
    """The challenge header of a 401: fixed text only. What the token said goes in the OperationOutcome, never
    here, where a quote in it would add parameters of its own (or a CR/LF, headers)."""
    safe = _NOT_IN_A_DESCRIPTION.sub("", description)
    return {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{safe}"'}


class AccessPolicy(Protocol):
    def authorize(self, interaction: Interaction, authorization: str | None) -> Grant:
        """The caller's grant for this interaction; raises Unauthorized (401) or Forbidden (403)."""

    def identify(self, authorization: str | None) -> Grant:
        """Who is calling, allowed nothing (for the audit of a request refused for another reason); raises
        Unauthorized (401) for a missing or invalid token."""


class NoAuthentication:
    """Development mode: everyone may do everything. Refused unless the service listens on loopback."""

    def authorize(self, interaction: Interaction, authorization: str | None) -> Grant:
        return OPEN

    def identify(self, authorization: str | None) -> Grant:
        return OPEN


def _merge_filters(scopes: list[Scope]) -> tuple[tuple[str, str], ...]:
    """Scopes are alternatives: any unfiltered one wins; filters on one parameter combine as OR."""
    if any(not scope.filters for scope in scopes):
        return ()
    names = {name for scope in scopes for name, _ in scope.filters}
    if len(names) == 1 and all(len(scope.filters) == 1 for scope in scopes):
        (name,) = names
        return ((name, ",".join(value for scope in scopes for _, value in scope.filters)),)
    if len({scope.filters for scope in scopes}) == 1:
        return scopes[0].filters
    raise Forbidden("The token's scope filters for this resource type cannot be combined; request one scope")


def _scope_words(claim: object) -> tuple[str, ...]:
    """The scopes a token names, as ``scope`` (space-separated) or ``scp`` (a list of strings) carries them."""
    if isinstance(claim, str):
        return tuple(claim.split())
    if isinstance(claim, list):
        return tuple(word for word in claim if isinstance(word, str))
    return ()


class SmartAccess:
    """SMART on FHIR resource server: bearer JWTs, v1/v2 scopes, patient compartments, system clients."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    def _claims(self, authorization: str | None) -> dict[str, object]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "A bearer token is required (Authorization: Bearer <token>)",
                headers=www_authenticate("no bearer token"),
            )
        try:
            return self.verifier.verify(token.strip())
        except InvalidToken as exc:
            detail = f"The bearer token was refused: {exc.detail}"
            raise Unauthorized(detail, headers=www_authenticate(str(exc))) from None

    def identify(self, authorization: str | None) -> Grant:
        claims = self._claims(authorization)
        client_id = str(claims.get("client_id") or claims.get("azp") or "") or None
        user = str(claims.get("sub") or "") or None
        return Grant(unrestricted=False, client_id=client_id, user=user, scopes=_scope_words(claims.get("scope")))

    def authorize(self, interaction: Interaction, authorization: str | None) -> Grant:
        if interaction.name == "capabilities" or interaction.resource_type in OPEN_CONFORMANCE:
            return UNRESTRICTED  # discovery must work before a client has a token
        claims = self._claims(authorization)
        scope_claim = claims.get("scope", claims.get("scp"))
        scopes = parse_scopes(scope_claim if isinstance(scope_claim, str | list) else None)
        client_id = str(claims.get("client_id") or claims.get("azp") or "") or None
        user = str(claims.get("sub") or "") or None
        granted = _scope_words(scope_claim)

        def grant(
            patient: str | None = None, filters: tuple[tuple[str, str], ...] = (), acting_as: str = "system"
        ) -> Grant:
            return Grant(
                unrestricted=patient is None and not filters,
                patient=patient,
                filters=filters,
                client_id=client_id,
                user=user,
                scopes=granted,
                acting_as=acting_as,
            )

        resource_type, permission = interaction.resource_type, interaction.permission
        if resource_type is None or permission is None:
            return grant()
        if resource_type in PUBLIC_DEFINITIONS and permission in "rs":
            return grant()
        if resource_type in SYSTEM_ONLY_WRITES:
            contexts: tuple[str, ...] = ("system",)
        elif resource_type in NOT_FOR_PATIENT_SCOPES or (resource_type in CLINICIAN_WRITES and permission in "cud"):
            contexts = ("user", "system")
        else:
            contexts = ("patient", "user", "system")
        found = matching(scopes, resource_type, permission, contexts)
        if not found:
            example = f"{contexts[-1]}/{resource_type}.{permission}"
            raise Forbidden(
                f"The token's scopes do not allow {interaction.name} on {resource_type} (a scope such as "
                f"{example} is needed)"
            )
        broad = [scope for scope in found if scope.context != "patient"]
        if broad:
            acting_as = "system" if any(scope.context == "system" for scope in broad) else "user"
            return grant(filters=_merge_filters(broad), acting_as=acting_as)
        patient = claims.get("patient")
        if not isinstance(patient, str) or not patient:
            raise Forbidden("patient/ scopes need the token's patient (launch context) claim")
        return grant(patient=patient, filters=_merge_filters(found), acting_as="patient")
