"""Operations endpoints: liveness, readiness (database and migrations), metrics, the OpenAPI contract."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify

from service.api.web import services, web
from service.health import readiness

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> Response:
    found = readiness(services())
    if not found.reachable:
        response = jsonify(status="unavailable", database="unreachable")
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response
    if not found.ready:
        response = jsonify(
            status="unavailable", database="reachable", migrations="pending", current=found.current, head=found.head
        )
        response.status_code = 503
        return response
    return jsonify(status="ready", database="reachable", migrations="current", revision=found.current)


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(web().metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")


@blueprint.get("/openapi.yaml")
def openapi() -> Response:
    return Response(services().settings.openapi_path.read_bytes(), content_type="application/yaml; charset=utf-8")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
