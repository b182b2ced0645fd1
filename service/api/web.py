"""What the HTTP layer is handed when the app is built, reached one typed way from any view: ``web()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app

from service.api.throttle import AuthFailureThrottle, LinkFailureThrottle
from service.auth.access import AccessPolicy
from service.auth.tokens import TokenVerifier
from service.observability import Metrics
from service.services import Services

if TYPE_CHECKING:
    from service.api.dev_ehr import DevEhr


@dataclass(frozen=True)
class Web:
    """The services every use case takes, and what only the HTTP layer needs."""

    services: Services
    access: AccessPolicy  # bearer token -> the caller's grant
    metrics: Metrics
    capability_statement: dict[str, Any]
    cds_verifier: TokenVerifier | None  # the CDS clients trusted to call CDS Hooks (None: none)
    throttle: AuthFailureThrottle  # refused authentications, per client address
    link_throttle: LinkFailureThrottle  # completion links that open nothing, per client address
    smart_configuration: dict[str, Any] | None = None  # SMART discovery (None: authentication is off)


class ServiceApp(Flask):
    """The Flask app of this service: a Flask app that carries its ``Web``."""

    web: Web
    dev_ehr: DevEhr | None = None  # the development EHR, where it exists (service.dev_launch)


def web() -> Web:
    return cast(ServiceApp, current_app).web


def services() -> Services:
    return web().services
