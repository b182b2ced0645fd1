"""create_app(settings): the one place where the service is wired together."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from service import dev_launch
from service.api import (
    bulk,
    bundles,
    cds_hooks,
    conformance,
    dev_ehr,
    errors,
    fhir_rest,
    health,
    invitations,
    measures,
    response_operations,
    smart,
    smart_app,
    subscriptions,
    terminology,
)
from service.api.throttle import AuthFailureThrottle, LinkFailureThrottle
from service.api.web import ServiceApp, Web
from service.auth.access import AccessPolicy, NoAuthentication, SmartAccess
from service.auth.tokens import TokenVerifier
from service.config import Settings, package_version
from service.fhir.capability import ResourceCapability, capability_statement
from service.fhir.search import SearchCapabilities, SearchParamDef
from service.invitations.tasks import task_counts
from service.observability import Metrics, configure_logging, request_id
from service.outcomes.library import load_measures
from service.questionnaires import load_library
from service.resources import SERVED
from service.services import build_services
from service.subscriptions.topics import TOPICS
from service.terminology import load_terminology

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
log = logging.getLogger("proms.http")

# The order interactions are listed in the CapabilityStatement.
INTERACTION_ORDER = (
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)


BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"
OPERATIONS = {
    "QuestionnaireResponse": (
        ("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate"),
        ("extract", "http://hl7.org/fhir/uv/sdc/OperationDefinition/QuestionnaireResponse-extract"),
    ),
    "Subscription": (
        ("status", f"{BACKPORT}/OperationDefinition/backport-subscription-status"),
        ("events", f"{BACKPORT}/OperationDefinition/backport-subscription-events"),
    ),
    "Group": (("export", f"{BULK_DATA}/OperationDefinition/group-export"),),
    "Measure": (("evaluate-measure", "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"),),
    # The service's own: a single-use completion link for the person the Task asks (docs/invitations.md).
    "Task": (("invite", "https://recovery-proms.org/fhir/OperationDefinition/Task-invite"),),
    "ValueSet": (
        ("expand", "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"),
        ("validate-code", "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code"),
    ),
    "CodeSystem": (("lookup", "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup"),),
}
# What a client should know about a type beyond its interactions and search parameters.
DOCUMENTATION = {
    "Questionnaire": "Create and update make the definition check of `proms questionnaires check`: expressions, "
    "weights, declared ranges and score bands (overlapping, or leaving scores in no band); errors are a 422 listing "
    "each one, warnings (no licence, name or title) pass.",
    "Observation": "Derived from scored responses: a panel and one Observation per score, its band in "
    "interpretation and every band of the score in referenceRange (inclusive low and high, the band's name as text).",
    "ValueSet": "Expanded from what is held here: concept lists, stored CodeSystems with content complete, other "
    "stored ValueSets and the filters is-a, descendent-of, is-not-a and =. $expand takes filter (case-insensitive, "
    "on code and display), count and offset; a value set needing a code system not held (LOINC, SNOMED CT) is a 422 "
    "naming it. Shipped: FHIR core administrative-gender, item-type, jurisdiction (ISO 3166), yesnodontknow and the "
    "answer lists of the built-in instruments. Written by system/ clients only.",
    "CodeSystem": "$lookup gives a held code's display, designations, properties, parent and children. Written by "
    "system/ clients only.",
    "AuditEvent": "Every resource and patient an access named is indexed: entity=Flag/{id} finds who read a safety "
    "flag, patient (or entity=Patient/{id}) every access to a person's data. type and subtype are the interaction.",
}


def build_capability_statement(settings: Settings) -> dict[str, Any]:
    """The CapabilityStatement: what is served (resources.SERVED), with its search parameters and operations."""
    statement = capability_statement(
        base_url=settings.base_url,
        software_version=package_version(),
        resources=[
            ResourceCapability(
                name,
                f"http://hl7.org/fhir/StructureDefinition/{name}",
                [code for code in INTERACTION_ORDER if code in served.interactions],
                served.kind.capabilities,
                conditional_create="create" in served.interactions,
                operations=OPERATIONS.get(name, ()),
                documentation=DOCUMENTATION.get(name),
            )
            for name, served in SERVED.items()
        ]
        + [
            ResourceCapability(
                "StructureDefinition",
                "http://hl7.org/fhir/StructureDefinition/StructureDefinition",
                ["read", "search-type"],
                SearchCapabilities({"url": SearchParamDef("url", "uri", "The extension's canonical URL")}, sorts=()),
                conditional_create=False,
            ),
            ResourceCapability(
                "Basic",
                "http://hl7.org/fhir/StructureDefinition/Basic",
                ["read", "search-type"],
                SearchCapabilities(
                    {
                        "code": SearchParamDef("code", "token", "SubscriptionTopic: the topics this server publishes"),
                        "_id": SearchParamDef("_id", "token", "Logical id of the topic"),
                    },
                    sorts=(),
                ),
                conditional_create=False,
            ),
        ],
        system_interactions=["batch", "transaction"],
        security=smart.security_statement(settings) if settings.auth_mode == "jwt" else None,
        instantiates=[
            "http://hl7.org/fhir/uv/sdc/CapabilityStatement/sdc-form-manager",
            "http://hl7.org/fhir/uv/sdc/CapabilityStatement/sdc-form-receiver",
            "http://hl7.org/fhir/uv/sdc/CapabilityStatement/sdc-form-response-manager",
            f"{BACKPORT}/CapabilityStatement/backport-subscription-server-r4",
            f"{BULK_DATA}/CapabilityStatement/bulk-data",
        ],
    )
    _declare_exports_and_topics(statement)
    return statement


def build_smart_configuration(settings: Settings) -> dict[str, Any] | None:
    """SMART discovery, with the scopes that allow what is served (resources.SERVED); None without authentication."""
    if settings.auth_mode != "jwt":
        return None
    served = {
        name: smart.ScopedType(served.interactions, served.kind.compartment is not None)
        for name, served in SERVED.items()
    }
    return smart.smart_configuration(settings, smart.resource_scopes(served))


def _declare_exports_and_topics(statement: dict[str, Any]) -> None:
    """Bulk export at system and Patient level, and the topics a Subscription can name."""
    rest = statement["rest"][0]
    rest["operation"] = [{"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/export"}]
    rest["resource"].append(
        {
            "type": "Patient",
            "operation": [{"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/patient-export"}],
        }
    )
    for resource in rest["resource"]:
        if resource["type"] == "Subscription":
            resource["extension"] = [
                {"url": f"{BACKPORT}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
                 "valueCanonical": url}
                for url in TOPICS
            ]  # fmt: skip


CORS_REQUEST_HEADERS = (
    "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Exist, If-None-Match, X-Request-ID"
)
CORS_EXPOSED_HEADERS = "Location, Content-Location, ETag, Last-Modified, X-Request-ID"


def _request_hooks(app: ServiceApp, settings: Settings, metrics: Metrics) -> None:
    @app.before_request
    def start() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if REQUEST_ID.match(supplied) else uuid.uuid4().hex
        request_id.set(g.request_id)
        g.started = time.perf_counter()

    @app.teardown_request
    def forget(_error: BaseException | None) -> None:
        request_id.set(None)  # the thread goes on to other requests

    @app.after_request
    def secure(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/fhir") or request.path.startswith("/cds-services"):
            headers.setdefault("Cache-Control", "no-store")  # health data must not sit in shared caches
        if request.path.startswith(("/app", "/answer")):
            headers.setdefault("Cache-Control", "no-store")
            headers.setdefault("Content-Security-Policy", smart_app.CONTENT_SECURITY_POLICY)
        if request.is_secure or settings.base_url.startswith("https://"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        origin = request.headers.get("Origin")
        if origin and origin in settings.cors_origins:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Headers"] = CORS_REQUEST_HEADERS
            headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, DELETE, OPTIONS"
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
            headers["Access-Control-Max-Age"] = "600"
            headers.add("Vary", "Origin")
        return response

    @app.after_request
    def finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.observe(request.method, route, response.status_code, elapsed)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        return response


def access_policy(settings: Settings) -> AccessPolicy:
    if settings.auth_mode == "none":
        log.warning(
            "AUTHENTICATION IS OFF (PROMS_AUTH=none): every caller can read and change all data. "
            "For local development on %s only.",
            settings.host,
        )
        return NoAuthentication()
    verifier = TokenVerifier(
        issuers=settings.auth_issuers,
        audience=settings.audience,
        jwks_url=settings.auth_jwks_url,
        jwks_file=settings.auth_jwks_file,
    )
    return SmartAccess(verifier)


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    settings.check_safe()
    configure_logging(settings.log_level)
    app = ServiceApp(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if dev_launch.available(settings):  # development only: the clinician app trusts the built-in development EHR
        settings = dev_ehr.app_settings(settings)
    services = build_services(settings)
    metrics = Metrics()
    metrics.auth_disabled.set(1 if settings.auth_mode == "none" else 0)
    metrics.watch_tasks(lambda: task_counts(services))
    app.web = Web(
        services=services,
        access=access_policy(settings),
        metrics=metrics,
        capability_statement=build_capability_statement(settings),
        cds_verifier=cds_hooks.cds_verifier(settings),
        throttle=AuthFailureThrottle(settings),
        smart_configuration=build_smart_configuration(settings),
        link_throttle=LinkFailureThrottle(settings),
    )
    if settings.trusted_proxies:
        # The client's address (audit, throttle) from X-Forwarded-For, as set by that many trusted proxies.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    _request_hooks(app, settings, metrics)
    errors.init_app(app)
    fhir_rest.init_app(app)
    bundles.init_app(app)
    response_operations.init_app(app)
    measures.init_app(app)
    terminology.init_app(app)
    conformance.init_app(app)
    smart.init_app(app)
    smart_app.init_app(app)
    subscriptions.init_app(app)
    dev_ehr.init_app(app)  # only with authentication off on loopback (service.dev_launch)
    bulk.init_app(app)
    health.init_app(app)
    cds_hooks.init_app(app)
    invitations.init_app(app)
    if settings.load_questionnaires_on_start:
        report = load_library(services, settings.questionnaires_dir)
        log.info(
            "questionnaire library loaded",
            extra={"created": len(report.created), "failed": len(report.failed)},
        )
        report = load_measures(services, settings.measures_dir)
        log.info("outcome measures loaded", extra={"created": len(report.created), "failed": len(report.failed)})
        report = load_terminology(services, settings.terminology_dir, settings.questionnaires_dir)
        log.info("terminology loaded", extra={"created": len(report.created), "failed": len(report.failed)})
    return app
