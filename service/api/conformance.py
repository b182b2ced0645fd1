"""The service's own conformance resources: the StructureDefinitions of its extensions (read and search by url)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from service.api.http import fhir_interaction, fhir_response
from service.api.web import services
from service.fhir import jsonio
from service.fhir.bundle import Entry, bundle
from service.fhir.errors import NotFound
from service.fhir.profiles import STRUCTURE_DEFINITIONS

blueprint = Blueprint("conformance", __name__, url_prefix="/fhir/StructureDefinition")
SD = "StructureDefinition"


@blueprint.get("")
@fhir_interaction("search-type", SD)
def search() -> Response:
    settings = services().settings
    wanted = request.args.getlist("url")
    matches = [sd for sd in STRUCTURE_DEFINITIONS.values() if not wanted or sd["url"] in wanted]
    entries = [Entry(f"{settings.base_url}/{SD}/{sd['id']}", jsonio.dumps(sd), search_mode="match") for sd in matches]
    return fhir_response(bundle("searchset", entries, total=len(entries), links=[("self", request.url)]))


@blueprint.get("/<fhirid:resource_id>")
@fhir_interaction("read", SD)
def read(resource_id: str) -> Response:
    if resource_id not in STRUCTURE_DEFINITIONS:
        raise NotFound(f"{SD}/{resource_id} is not known; GET /fhir/{SD} lists the service's extensions")
    return fhir_response(STRUCTURE_DEFINITIONS[resource_id])


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
