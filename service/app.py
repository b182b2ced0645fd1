"""create_app(settings): the one place where the service is wired together."""

from __future__ import annotations

import logging
import re
import time
import uuid
from importlib.metadata import PackageNotFoundError, version

from flask import Flask, Response, g, request

from service.api import conformance, errors, fhir_rest, operations, ops
from service.audit import Auditor, LogAuditor
from service.auth.access import AccessPolicy, AllowAll
from service.config import Settings
from service.fhir.capability import ResourceCapability, capability_statement
from service.fhir.search import SearchCapabilities, SearchParamDef
from service.interactions import READ_ONLY, ReadOnlyRules, ResourceInteractions
from service.observability import Metrics, configure_logging
from service.questionnaires import QuestionnaireRules, load_library
from service.store.db import Database
from service.store.kinds import OBSERVATION, PROVENANCE, QUESTIONNAIRE, QUESTIONNAIRE_RESPONSE
from service.submissions import QuestionnaireResponseRules

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


OPERATIONS = {
    "QuestionnaireResponse": (
        ("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate"),
        ("extract", "http://hl7.org/fhir/uv/sdc/OperationDefinition/QuestionnaireResponse-extract"),
    )
}


def software_version() -> str:
    try:
        return version("recovery-proms")
    except PackageNotFoundError:
        return "0.0.0"


def _wire_resources(app: Flask, settings: Settings, db: Database) -> None:
    software = f"recovery-proms {software_version()}"
    resources = {
        "Questionnaire": ResourceInteractions(db, QUESTIONNAIRE, QuestionnaireRules(), settings),
        "QuestionnaireResponse": ResourceInteractions(
            db, QUESTIONNAIRE_RESPONSE, QuestionnaireResponseRules(settings.base_url, software), settings
        ),
        "Observation": ResourceInteractions(db, OBSERVATION, ReadOnlyRules(), settings, allowed=READ_ONLY),
        "Provenance": ResourceInteractions(db, PROVENANCE, ReadOnlyRules(), settings, allowed=READ_ONLY),
    }
    app.extensions["proms.resources"] = resources
    app.extensions["proms.capability_statement"] = capability_statement(
        base_url=settings.base_url,
        software_version=software_version(),
        resources=[
            ResourceCapability(
                name,
                f"http://hl7.org/fhir/StructureDefinition/{name}",
                [code for code in INTERACTION_ORDER if code in served.allowed],
                served.kind.capabilities,
                conditional_create="create" in served.allowed,
                operations=OPERATIONS.get(name, ()),
            )
            for name, served in resources.items()
        ]
        + [
            ResourceCapability(
                "StructureDefinition",
                "http://hl7.org/fhir/StructureDefinition/StructureDefinition",
                ["read", "search-type"],
                SearchCapabilities({"url": SearchParamDef("url", "uri", "The extension's canonical URL")}, sorts=()),
                conditional_create=False,
            )
        ],
        system_interactions=[],
        instantiates=[
            "http://hl7.org/fhir/uv/sdc/CapabilityStatement/sdc-form-manager",
            "http://hl7.org/fhir/uv/sdc/CapabilityStatement/sdc-form-receiver",
            "http://hl7.org/fhir/uv/sdc/CapabilityStatement/sdc-form-response-manager",
        ],
    )


def _request_hooks(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def start() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if REQUEST_ID.match(supplied) else uuid.uuid4().hex
        g.started = time.perf_counter()

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


def create_app(
    settings: Settings | None = None,
    *,
    access: AccessPolicy | None = None,
    auditor: Auditor | None = None,
) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    db = Database(settings.database_url)
    metrics = Metrics()
    app.extensions["proms.settings"] = settings
    app.extensions["proms.db"] = db
    app.extensions["proms.metrics"] = metrics
    app.extensions["proms.access"] = access or AllowAll()
    app.extensions["proms.audit"] = auditor or LogAuditor()
    _wire_resources(app, settings, db)
    _request_hooks(app, metrics)
    errors.init_app(app)
    fhir_rest.init_app(app)
    operations.init_app(app)
    conformance.init_app(app)
    ops.init_app(app)
    if settings.load_questionnaires_on_start:
        report = load_library(app.extensions["proms.resources"]["Questionnaire"], settings.questionnaires_dir)
        log.info(
            "questionnaire library loaded",
            extra={"created": len(report.created), "failed": len(report.failed)},
        )
    return app
