"""When the development launcher exists, and where: only with authentication off on a loopback address (no Flask).

`make run` and `make demo` serve without authentication on 127.0.0.1. There, and only there, the service
also serves a small development EHR (service.api.dev_ehr): a patient picker and a SMART authorization server
that launch the clinician app through the real SMART App Launch flow. With PROMS_AUTH=jwt, or a host or
public base URL that is not loopback, it does not exist at all.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from service.config import LOOPBACK_HOSTS, Settings

PREFIX = "/dev-ehr"
CLIENT_ID = "proms-dev-app"  # the app's client id at the development EHR, unless PROMS_SMART_CLIENT_ID names one


def available(settings: Settings) -> bool:
    """Authentication off, listening on loopback, and reached on loopback: nothing else gets the launcher."""
    public_host = urlsplit(settings.base_url).hostname or ""
    return settings.auth_mode == "none" and settings.host in LOOPBACK_HOSTS and public_host in LOOPBACK_HOSTS


def public_root(settings: Settings) -> str:
    """The service's public address without /fhir (as the clinician app computes it)."""
    return settings.base_url.removesuffix("/fhir").rstrip("/")


def issuer(settings: Settings) -> str:
    """The development EHR's authorization server (its OpenID issuer)."""
    return f"{public_root(settings)}{PREFIX}"


def fhir_base(settings: Settings) -> str:
    """The development EHR's FHIR base: the ``iss`` it launches the app with."""
    return f"{issuer(settings)}/fhir"


def launcher_url(settings: Settings) -> str | None:
    """The patient picker's address, or None where there is no launcher."""
    return f"{issuer(settings)}/" if available(settings) else None
