"""Task/$invite, and the completion page a link opens (/answer/{token}): mobile-first, no third-party assets.

The page is server-rendered from the Questionnaire exactly as published (the clinician app's form model and
templates). Each step stores the answers so far as an ``in-progress`` response; finishing stores it ``completed``,
which completes the Task. An unknown token is 404 and counts against the caller's address; a link that has done its
work (answered, cancelled, expired) is 410; both are friendly pages.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for

from service.api.http import audited, fhir_interaction, fhir_response, grant, request_body
from service.api.web import services, web
from service.app_ui.forms import (
    FormItem,
    attach_issues,
    build_response,
    form_items,
    read_form,
    refresh_enablement,
    walk,
)
from service.audit import AuditContext
from service.auth.access import Interaction
from service.fhir.dates import instant_text
from service.fhir.errors import BadRequest, FhirError
from service.invitations import links
from service.invitations.mail import DEFAULT_LANGUAGE
from service.invitations.page import carried_fields, fill_from_response, scores_of, screens

blueprint = Blueprint("invitations", __name__)
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
REQUIRED_TEXT = "This question needs an answer"
NOTHING_ANSWERED = "Nothing has been answered yet. Answer the questions, then choose Finish."


# Task/$invite -----------------------------------------------------------------------------------------------


def _parameter(body: dict[str, Any], name: str) -> Any:
    for parameter in body.get("parameter") or ():
        if isinstance(parameter, dict) and parameter.get("name") == name:
            return next((v for k, v in parameter.items() if k.startswith("value")), None)
    return None


@blueprint.post("/fhir/Task/<fhirid:resource_id>/$invite")
@fhir_interaction("operation-invite", "Task")
def invite(resource_id: str) -> Response:
    days, email, language = None, None, DEFAULT_LANGUAGE
    if request.get_data():
        body = request_body()
        if body.get("resourceType") != "Parameters":
            raise BadRequest("Send a Parameters resource (validDays), or no body")
        days = _parameter(body, "validDays")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int)):
            raise BadRequest("validDays must be a valueInteger")
        email = _parameter(body, "email")
        language = _parameter(body, "language") or DEFAULT_LANGUAGE
        if email is not None and not isinstance(email, str) or not isinstance(language, str):
            raise BadRequest("email must be a valueString and language a valueCode")
    made = links.invite(services(), resource_id, grant(), days=days, email=email, language=language)
    parameters: list[dict[str, Any]] = [
        {"name": "link", "valueUrl": made.url},
        {"name": "expires", "valueInstant": instant_text(made.expires_at)},
        {"name": "task", "valueReference": {"reference": f"Task/{made.task_id}"}},
    ]
    if made.emailed is not None:
        parameters.append({"name": "emailed", "valueBoolean": made.emailed})
    return fhir_response({"resourceType": "Parameters", "parameter": parameters})


# the completion page ----------------------------------------------------------------------------------------


def _page(template: str, status: int, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def _open(token: str) -> links.OpenLink | Response:
    """The link a token opens, or the page saying why it opens nothing (counted against the address when unknown)."""
    address = request.remote_addr or "unknown"
    throttle = web().link_throttle
    if throttle.blocked(address):
        response = _page("answer/closed.html", 429, reason="limited")
        response.headers["Retry-After"] = "60"
        return response
    try:
        if not TOKEN.match(token):
            raise links.LinkUnknown
        return links.open_link(services(), token)
    except links.LinkUnknown:
        throttle.failed(address)
        return _page("answer/closed.html", 404, reason="unknown")
    except links.LinkClosed:
        return _page("answer/closed.html", 410, reason="closed")


def _audit_context(link: links.OpenLink, name: str) -> AuditContext:
    """The invitee's own AuditEvent: the link's client, the person it was sent to."""
    context = AuditContext(Interaction(name, "Task", link.task_id), request.remote_addr, None, grant=link.grant)
    context.entities.append(f"Task/{link.task_id}")
    context.patients.add(link.patient)
    return context


def _render(link: links.OpenLink, items: list[FormItem], screen: int, status: int = 200, **extra: Any) -> Response:
    pages = screens(items)
    screen = max(0, min(screen, len(pages) - 1))
    shown = {id(item) for item in walk(pages[screen])}
    carried = carried_fields([item for item in items if id(item) not in shown])
    return _page(
        "answer/form.html",
        status,
        questionnaire=link.questionnaire,
        items=pages[screen],
        carried=carried,
        screen=screen,
        screens=len(pages),
        expires=link.expires_at.strftime("%-d %B %Y"),
        errors=extra.pop("errors", []),
        general=extra.pop("general", []),
        **extra,
    )


@blueprint.get("/answer/<token>")
def answer_page(token: str) -> Response:
    opened = _open(token)
    if isinstance(opened, Response):
        return opened
    link = opened
    with audited(_audit_context(link, "read")) as outcome:
        items = form_items(link.questionnaire)
        if link.draft is not None:
            fill_from_response(items, link.draft)
        refresh_enablement(items)
        response = _render(link, items, request.args.get("screen", 0, type=int))
        outcome.status = response.status_code
    return response


@blueprint.post("/answer/<token>")
def answer_submit(token: str) -> Response:
    opened = _open(token)
    if isinstance(opened, Response):
        return opened
    link = opened
    screen = request.form.get("screen", 0, type=int)
    action = request.form.get("action", "next")
    with audited(_audit_context(link, "operation-answer")) as outcome:
        response = _step(token, link, screen, action)
        outcome.status = response.status_code
    return response


def _step(token: str, link: links.OpenLink, screen: int, action: str) -> Response:
    submitted = read_form(link.questionnaire, request.form.to_dict(flat=False))
    if submitted.errors:
        return _render(link, submitted.items, screen, 422, errors=submitted.errors)
    finishing = action == "finish"
    if not submitted.answers:
        if finishing:
            return _render(link, submitted.items, screen, 422, general=[NOTHING_ANSWERED])
        return _next(token, screen, action)
    response = build_response(
        link.questionnaire,
        submitted.answers,
        subject=link.patient,
        authored=instant_text(datetime.now(UTC).replace(tzinfo=None)),
        author=f"Patient/{link.patient}",
        identifier=None,
    )
    response["status"] = "completed" if finishing else "in-progress"
    try:
        result = links.save_answers(services(), link, response)
    except FhirError as exc:
        if exc.status not in (400, 422):
            raise
        found = [
            (issue.link_id, issue.expression, REQUIRED_TEXT if issue.code == "required" else issue.text)
            for issue in exc.issues
            if issue.is_error
        ]
        general = attach_issues(submitted.items, response, found)
        errors = [(item, message) for item in walk(submitted.items) if item.enabled for message in item.errors]
        return _render(link, submitted.items, _first_screen_with_errors(submitted.items), 422, errors=errors,
                       general=general)  # fmt: skip
    if finishing and services().settings.link_show_score:
        # Shown once, in answer to the finishing POST: a score never travels in a URL.
        return _page("answer/thanks.html", 200, scores=scores_of(link.questionnaire, result.stored.resource()))
    if finishing:
        return redirect(url_for("invitations.thanks"), code=303)  # type: ignore[return-value]
    return _next(token, screen, action)


def _first_screen_with_errors(items: list[FormItem]) -> int:
    for index, page in enumerate(screens(items)):
        if any(item.errors for item in walk(page)):
            return index
    return 0


def _next(token: str, screen: int, action: str) -> Response:
    step = {"next": 1, "back": -1}.get(action, 0)
    target = url_for("invitations.answer_page", token=token, screen=max(0, screen + step))
    return redirect(target, code=303)  # type: ignore[return-value]


@blueprint.get("/answer/thank-you")
def thanks() -> Response:
    return _page("answer/thanks.html", 200)


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
