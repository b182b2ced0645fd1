"""Operations endpoints: liveness, readiness (database and migrations), metrics, the OpenAPI contract."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, current_app, jsonify

from service.config import Settings
from service.store.db import Database
from service.store.migrations import current_revision, head_revision

blueprint = Blueprint("ops", __name__)
log = logging.getLogger("proms.ops")


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> Response:
    db: Database = current_app.extensions["proms.db"]
    settings: Settings = current_app.extensions["proms.settings"]
    try:
        current = current_revision(db.engine)
    except Exception as exc:  # any driver error means the same thing here: not ready
        log.warning("database not reachable", extra={"error": type(exc).__name__})
        response = jsonify(status="unavailable", database="unreachable")
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response
    head = head_revision(settings.migrations_dir)
    if current != head:
        response = jsonify(status="unavailable", database="reachable", migrations="pending", current=current, head=head)
        response.status_code = 503
        return response
    return jsonify(status="ready", database="reachable", migrations="current", revision=current)


@blueprint.get("/metrics")
def metrics() -> Response:
    body = current_app.extensions["proms.metrics"].render()
    return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")


@blueprint.get("/openapi.yaml")
def openapi() -> Response:
    settings: Settings = current_app.extensions["proms.settings"]
    return Response(settings.openapi_path.read_bytes(), content_type="application/yaml; charset=utf-8")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
