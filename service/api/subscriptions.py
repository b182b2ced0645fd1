"""Subscription topics as R4 Basic resources, and the backport operations Subscription/$status and $events."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from service.api.http import fhir_interaction, fhir_response, grant
from service.api.web import services
from service.fhir import jsonio
from service.fhir.bundle import Entry, bundle
from service.fhir.errors import BadRequest, NotFound
from service.subscriptions.backport import PAYLOAD_CONTENTS
from service.subscriptions.manage import subscription_events as events_of
from service.subscriptions.manage import subscription_status as status_of
from service.subscriptions.topics import FHIR_TYPES, TOPICS_BY_ID, topic_resource

blueprint = Blueprint("subscriptions", __name__, url_prefix="/fhir")


def _code_matches(values: list[str]) -> bool:
    """``code=SubscriptionTopic`` (or with its system) selects the topics; any other code selects nothing."""
    for value in values:
        for alternative in value.split(","):
            system, bar, code = alternative.rpartition("|")
            if code == "SubscriptionTopic" and (not bar or system == FHIR_TYPES):
                break
        else:
            return False
    return True


@blueprint.get("/Basic")
@fhir_interaction("search-type", "Basic")
def search_topics() -> Response:
    base = services().settings.base_url
    ids = {part for value in request.args.getlist("_id") for part in value.split(",")}
    topics = [topic for topic in TOPICS_BY_ID.values() if not ids or topic.id in ids]
    if not _code_matches(request.args.getlist("code")):
        topics = []
    entries = [
        Entry(f"{base}/Basic/{topic.id}", jsonio.dumps(topic_resource(topic)), search_mode="match") for topic in topics
    ]
    return fhir_response(bundle("searchset", entries, total=len(entries), links=[("self", request.url)]))


@blueprint.get("/Basic/<fhirid:resource_id>")
@fhir_interaction("read", "Basic")
def read_topic(resource_id: str) -> Response:
    topic = TOPICS_BY_ID.get(resource_id)
    if topic is None:
        raise NotFound(f"Basic/{resource_id} is not known; GET /fhir/Basic?code=SubscriptionTopic lists the topics")
    return fhir_response(topic_resource(topic))


@blueprint.get("/Subscription/<fhirid:resource_id>/$status")
@fhir_interaction("operation-status", "Subscription")
def subscription_status(resource_id: str) -> Response:
    return fhir_response(status_of(services(), resource_id, grant()))


def _event_number(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 15:
        raise BadRequest(f"{name} must be an event number (a whole number), got {raw!r}", code="value")
    return int(raw)


@blueprint.get("/Subscription/<fhirid:resource_id>/$events")
@fhir_interaction("operation-events", "Subscription")
def subscription_events(resource_id: str) -> Response:
    content = request.args.get("content")
    if content is not None and content not in PAYLOAD_CONTENTS:
        raise BadRequest(f"content must be one of {', '.join(PAYLOAD_CONTENTS)}", code="value")
    since, until = _event_number("eventsSinceNumber"), _event_number("eventsUntilNumber")
    return fhir_response(events_of(services(), resource_id, grant(), since=since, until=until, content=content))


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
