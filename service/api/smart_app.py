"""The SMART on FHIR clinician app under /app: launch, dashboard, completing a measure, a response, a safety item."""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from service import dev_launch
from service.api import app_data
from service.api.app_data import Clinician
from service.api.app_sessions import EXPIRES, DatabaseSessionInterface
from service.api.smart_launch import LaunchError, SmartClient, SmartEndpoints, discover
from service.api.web import ServiceApp, services
from service.app_ui.charts import distance_bar
from service.app_ui.dashboard import build_dashboard, results_of_response
from service.app_ui.forms import (
    FormItem,
    FormResult,
    attach_issues,
    build_response,
    form_items,
    missing_answers,
    read_form,
    refresh_enablement,
    walk,
)
from service.app_ui.history import (
    CHANGE_WORDS,
    LatestResult,
    canonical_url,
    format_date,
    format_number,
    instrument_histories,
    parse_when,
)
from service.app_ui.outcomes import OutcomesView, build_outcomes_view, outcomes_csv
from service.app_ui.patients import PatientMappingError, map_patient
from service.app_ui.response_view import response_view as build_response_view
from service.app_ui.response_view import shortfall_texts
from service.app_ui.safety import flag_view, raised_by
from service.app_ui.schedule import describe_due, due_detail
from service.cds.measures import instrument_label
from service.config import Settings
from service.fhir.dates import instant_text
from service.fhir.errors import BadRequest, DatabaseUnavailable, FhirError, Forbidden, Gone, NotFound
from service.fhir.issues import Issue
from service.invitations.shape import request_text
from service.outcomes.evaluate import Period, parse_period

blueprint = Blueprint("smart_app", __name__, url_prefix="/app")
log = logging.getLogger("proms.app")

# No inline script or style anywhere under /app: scripts and styles come from /static only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MAX_SESSION_SECONDS = 8 * 60 * 60
REQUIRED_TEXT = "This question needs an answer"
NOTHING_ANSWERED = (
    "Nothing was answered, so nothing was stored: a measure with no answers would stand in the record as completed "
    "with nothing in it. Answer the questions, or cancel."
)
JUST_SAVED = "just_saved"  # the session's note of the response the clinician has just saved (shown once)
JUST_REVIEWED = "just_reviewed"  # ... and of the safety item they have just marked reviewed
PENDING_SECONDS = 10 * 60
_GROUP_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
OUTCOMES_DAYS = 365  # the default period: the year up to today
_SUBMISSION_ID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR's id
V = TypeVar("V", bound=Callable[..., Any])


class AppNotConfigured(Exception):
    """The app needs PROMS_SMART_CLIENT_ID, PROMS_APP_SECRET_KEY and PROMS_SMART_ISS."""


def _settings() -> Settings:
    return services().settings


def _app_root(settings: Settings) -> str:
    """The public address the app is served at, from the FHIR base (so it is right behind a proxy too)."""
    return settings.base_url.removesuffix("/fhir").rstrip("/")


def _redirect_uri(settings: Settings) -> str:
    return f"{_app_root(settings)}/app/callback"


def _check_configured() -> Settings:
    settings = _settings()
    if not settings.clinician_app_enabled:
        raise AppNotConfigured()
    return settings


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    expected, given = session.get("csrf"), request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        abort(400, "The form has expired or did not come from this app; open it again and resubmit.")


def _launched() -> dict[str, Any] | None:
    launch = session.get("launch")
    if not isinstance(launch, dict) or float(launch.get("expires_at", 0)) < time.time():
        return None
    return launch


def launched_view(view: V) -> V:
    """Views that need a completed launch: without one (or once it expired) go back to the launch page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_configured()
        launch = _launched()
        if launch is None:
            session.clear()
            return redirect(url_for("smart_app.launch"))
        g.launch = launch
        g.clinician = Clinician(
            subject=launch["subject"],
            client_id=_settings().smart_client_id,
            user=launch.get("user"),
            scopes=tuple(launch.get("scopes", ())),
        )
        return view(*args, **kwargs)

    return cast(V, wrapper)


def _render(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    launch = g.get("launch")
    return render_template(template, launch=launch, csrf_token=_csrf_token() if launch else None, **context), status


@blueprint.context_processor
def _helpers() -> dict[str, Any]:
    """What the templates format with (the SVG is built escaped by service.app_ui.charts, hence Markup)."""
    return {
        "format_date": format_date,
        "format_number": format_number,
        "parse_when": parse_when,
        "describe_due": describe_due,
        "due_detail": due_detail,
        "distance_bar": distance_bar,
        "change_words": {**CHANGE_WORDS, "unknown": "not assessed"},
        "svg": Markup,
    }


# launch ------------------------------------------------------------------------------------------------


@blueprint.get("/")
def index() -> WerkzeugResponse:
    return redirect(url_for("smart_app.dashboard"))


@blueprint.get("/launch")
def launch() -> Any:
    """EHR launch (iss and launch) or standalone launch (iss only); without iss, how to open the app."""
    settings = _check_configured()
    iss = request.args.get("iss", "").rstrip("/")
    if not iss:
        launcher = dev_launch.launcher_url(settings)
        ehrs = [url for url in settings.smart_iss if launcher is None or url != dev_launch.fhir_base(settings)]
        return _render("app/launch.html", ehrs=ehrs, launcher=launcher)
    if iss not in settings.smart_iss:
        raise LaunchError("This EHR is not one this service is set up to trust (PROMS_SMART_ISS)")
    endpoints = discover(iss)
    launch_token = request.args.get("launch") or None
    authorization = SmartClient(settings).authorization_request(endpoints, iss, launch_token, _redirect_uri(settings))
    session.clear()
    session["pending"] = {
        "iss": iss,
        "state": authorization.state,
        "code_verifier": authorization.code_verifier,
        "token_endpoint": endpoints.token,
        "issuer": endpoints.issuer,
        "jwks_uri": endpoints.jwks_uri,
    }
    session[EXPIRES] = time.time() + PENDING_SECONDS
    return redirect(authorization.url)


@blueprint.get("/callback")
def callback() -> Any:
    settings = _check_configured()
    pending = session.get("pending")
    state = request.args.get("state", "")
    if not isinstance(pending, dict) or not hmac.compare_digest(str(pending.get("state")), state):
        raise LaunchError("This sign-in does not match one the app started; launch the app again from the EHR")
    if request.args.get("error"):
        description = request.args.get("error_description") or request.args["error"]
        raise LaunchError(f"The EHR did not authorize the app: {description}")
    client = SmartClient(settings)
    token = client.exchange(
        pending["token_endpoint"], request.args.get("code", ""), pending["code_verifier"], _redirect_uri(settings)
    )
    ehr_patient = token.get("patient")
    if not isinstance(ehr_patient, str) or not ehr_patient:
        raise LaunchError("The EHR gave no patient context: open the app from a patient's record")
    endpoints = SmartEndpoints("", pending["token_endpoint"], pending.get("issuer"), pending.get("jwks_uri"))
    user = client.user_of(token, endpoints)
    patient = client.read_patient(pending["iss"], ehr_patient, token)
    try:
        context = map_patient(ehr_patient, patient, settings.smart_patient_identifier_system)
    except PatientMappingError as exc:
        raise LaunchError(str(exc)) from None
    lifetime = token.get("expires_in")
    seconds = min(float(lifetime), MAX_SESSION_SECONDS) if isinstance(lifetime, int | float) else 3600.0
    expires_at = time.time() + seconds
    # A new session id at sign-in: the id from before (which a third party could have planted) stops working.
    interface = current_app.session_interface
    assert isinstance(interface, DatabaseSessionInterface)
    interface.regenerate(session)
    session.clear()
    session.update(
        {
            "launch": {
                "iss": pending["iss"],
                "ehr_patient": context.ehr_patient,
                "subject": context.subject,
                "name": context.name,
                "identifier": context.identifier,
                "user": user,
                "scopes": str(token.get("scope") or "").split(),
                "expires_at": expires_at,
            },
            # Kept only here, on the server: the browser never sees the EHR's tokens.
            "token": token,
            "csrf": secrets.token_urlsafe(32),
            EXPIRES: expires_at,
        }
    )
    log.info("clinician app launched", extra={"iss": pending["iss"], "mapped": context.identifier is not None})
    return redirect(_landing(token.get("appContext"), context.subject) or url_for("smart_app.dashboard"))


def _landing(app_context: Any, subject: str) -> str | None:
    """Where a CDS card's link asked the app to open, from the appContext the EHR passed on with the token: the
    safety item (or response) the card was about, when it is about the patient launched; else None."""
    if not isinstance(app_context, str):
        return None
    try:
        context = json.loads(app_context)
    except ValueError:
        return None
    if not isinstance(context, dict) or context.get("patient") != subject:
        return None
    flag, response = context.get("flag"), context.get("questionnaireResponse")
    if isinstance(flag, str) and _RESOURCE_ID.match(flag):
        return url_for("smart_app.flag_page", flag_id=flag)
    if isinstance(response, str) and _RESOURCE_ID.match(response):
        return url_for("smart_app.response_view", response_id=response)
    return None


@blueprint.post("/sign-out")
def sign_out() -> WerkzeugResponse:
    _check_csrf()
    session.clear()
    return redirect(url_for("smart_app.launch"))


# the dashboard -----------------------------------------------------------------------------------------


def _questionnaires(clinician: Clinician, responses: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The definitions by url: the version each instrument was last answered with, else the active one."""
    active = app_data.search_all(clinician, "Questionnaire", [("status", "active"), ("_sort", "title")])
    by_url = {str(q.get("url")): q for q in active}
    latest: dict[str, str] = {}
    for response in responses:  # oldest first: the last one seen is the latest
        latest[canonical_url(response.get("questionnaire"))] = str(response.get("questionnaire"))
    answered = app_data.definitions_named(latest.values())
    for url, canonical in latest.items():
        if canonical in answered:
            by_url[url] = answered[canonical]
    return by_url


def _patient_data(clinician: Clinician) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    responses = app_data.search_all(
        clinician,
        "QuestionnaireResponse",
        [("patient", clinician.subject), ("status", "completed,amended"), ("_sort", "authored")],
    )
    observations = app_data.search_all(
        clinician,
        "Observation",
        [("patient", clinician.subject), ("category", "survey"), ("status", "final,amended"), ("_sort", "date")],
    )
    return responses, observations


@blueprint.get("/patient")
@launched_view
def dashboard() -> Any:
    clinician: Clinician = g.clinician
    settings = _settings()
    flags = app_data.search_all(clinician, "Flag", [("patient", clinician.subject), ("status", "active")])
    responses, observations = _patient_data(clinician)
    questionnaires = _questionnaires(clinician, responses)
    view = build_dashboard(
        questionnaires, responses, observations, flags, dict(settings.schedule), datetime.now(UTC).date()
    )
    due = {measure.questionnaire_id: measure for measure in view.schedule if measure.questionnaire_id}
    available = sorted(
        ((str(q["id"]), str(q.get("title") or q.get("name") or q["id"]), due.get(str(q["id"])))
         for q in questionnaires.values() if q.get("status") == "active" and q.get("id")),
        key=lambda entry: entry[1].lower(),
    )  # fmt: skip
    requests = app_data.open_requests(clinician)
    now = datetime.now(UTC).replace(tzinfo=None)
    return _render(
        "app/dashboard.html", view=view, available=available, requests=requests, now=now, request_text=request_text
    )


# completing a measure ----------------------------------------------------------------------------------


def _active_questionnaire(clinician: Clinician, questionnaire_id: str) -> dict[str, Any]:
    try:
        questionnaire = app_data.read(clinician, "Questionnaire", questionnaire_id)
    except FhirError:
        abort(404, "There is no such questionnaire")
    if questionnaire.get("status") != "active":
        abort(404, "This questionnaire is not in use (not active)")
    return questionnaire


def _render_form(
    questionnaire: dict[str, Any],
    items: list[FormItem],
    *,
    status: int = 200,
    errors: list[tuple[FormItem, str]] | None = None,
    general: list[str] | None = None,
    submission_id: str | None = None,
    missing: list[FormItem] | None = None,
    unscored: list[str] | None = None,
    submitted: list[tuple[str, str]] | None = None,
) -> tuple[str, int]:
    return _render(
        "app/questionnaire.html",
        status,
        questionnaire=questionnaire,
        items=items,
        errors=errors or [],
        general=general or [],
        submission_id=submission_id or f"urn:uuid:{uuid.uuid4()}",
        missing=missing or [],
        unscored=unscored or [],
        submitted=submitted or [],
    )


@blueprint.get("/questionnaires/<questionnaire_id>")
@launched_view
def questionnaire_form(questionnaire_id: str) -> Any:
    questionnaire = _active_questionnaire(g.clinician, questionnaire_id)
    items = form_items(questionnaire)
    refresh_enablement(items)
    return _render_form(questionnaire, items)


def _refused(
    questionnaire: dict[str, Any], form: FormResult, response: dict[str, Any], issues: list[Issue], submission_id: str
) -> tuple[str, int]:
    """The form again with each error the submission would meet next to its question: nothing was stored."""
    found = [
        (issue.link_id, issue.expression, REQUIRED_TEXT if issue.code == "required" and issue.link_id else issue.text)
        for issue in issues
        if issue.is_error
    ]
    general = attach_issues(form.items, response, found)
    errors = [(item, message) for item in walk(form.items) if item.enabled for message in item.errors]
    return _render_form(
        questionnaire, form.items, status=422, errors=errors, general=general, submission_id=submission_id
    )


@blueprint.post("/questionnaires/<questionnaire_id>")
@launched_view
def submit_questionnaire(questionnaire_id: str) -> Any:
    """Submit the form as a QuestionnaireResponse through the API's use case. A form that answers nothing is not
    stored; one that leaves questions unanswered which count towards a score is stored only once the clinician
    confirms it (``action=save-anyway``, naming exactly those questions)."""
    _check_csrf()
    clinician: Clinician = g.clinician
    questionnaire = _active_questionnaire(clinician, questionnaire_id)
    submitted = read_form(questionnaire, request.form.to_dict(flat=False))
    submission_id = request.form.get("submission_id", "")
    submission_id = submission_id if _SUBMISSION_ID.match(submission_id) else f"urn:uuid:{uuid.uuid4()}"
    if request.form.get("action") == "refresh":
        for item, _ in submitted.errors:
            item.errors = []
        return _render_form(questionnaire, submitted.items, submission_id=submission_id)
    if submitted.errors:
        return _render_form(
            questionnaire, submitted.items, status=422, errors=submitted.errors, submission_id=submission_id
        )
    if not submitted.answers:
        return _render_form(questionnaire, submitted.items, status=422, general=[NOTHING_ANSWERED])
    response = build_response(
        questionnaire,
        submitted.answers,
        subject=clinician.subject,
        authored=instant_text(datetime.now(UTC).replace(tzinfo=None)),
        author=clinician.user,
        identifier=submission_id,
    )
    issues = app_data.check(questionnaire, response)
    if any(issue.is_error for issue in issues):
        return _refused(questionnaire, submitted, response, issues, submission_id)
    missing = missing_answers(questionnaire, submitted)
    confirmed = set(request.form.getlist("confirmed"))
    if missing and not (request.form.get("action") == "save-anyway" and {i.name for i in missing} <= confirmed):
        unscored_ids = [issue.link_id for issue in issues if issue.code == "incomplete" and issue.link_id]
        unscored = shortfall_texts(questionnaire, response, unscored_ids)
        fields = [(name, value) for name, value in request.form.items(multi=True) if name.startswith("i-")]
        return _render_form(
            questionnaire,
            submitted.items,
            submission_id=submission_id,
            missing=missing,
            unscored=unscored,
            submitted=fields,
        )
    try:
        result = app_data.submit(clinician, response)
    except FhirError as exc:
        if exc.status not in (400, 422):
            raise
        return _refused(questionnaire, submitted, response, list(exc.issues), submission_id)
    session[JUST_SAVED] = result.stored.id
    return redirect(url_for("smart_app.response_view", response_id=result.stored.id), code=303)


# reading a response, reviewing a safety item --------------------------------------------------------------


def _read_or_404(clinician: Clinician, resource_type: str, resource_id: str, what: str) -> dict[str, Any]:
    try:
        return app_data.read(clinician, resource_type, resource_id)
    except (Forbidden, NotFound, Gone):
        abort(404, f"There is no such {what} for this patient")


def _results(
    clinician: Clinician, response_id: str, url: str
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], list[LatestResult]]:
    """The patient's responses, the definitions by url, and the scores of one response with their change."""
    responses, observations = _patient_data(clinician)
    questionnaires = _questionnaires(clinician, responses)
    histories = instrument_histories(
        {url: questionnaires[url]} if url in questionnaires else {}, responses, observations
    )
    return responses, questionnaires, results_of_response(histories[0], response_id) if histories else []


@blueprint.get("/responses/<response_id>")
@launched_view
def response_view(response_id: str) -> Any:
    """One stored response: every question with the answer given, its scores (or why there are none), who answered,
    and the safety flags it raised with their review; right after it was saved, a line saying so."""
    clinician: Clinician = g.clinician
    response = _read_or_404(clinician, "QuestionnaireResponse", response_id, "response")
    url = canonical_url(response.get("questionnaire"))
    _, questionnaires, results = _results(clinician, response_id, url)
    questionnaire = app_data.definitions_named([str(response.get("questionnaire"))]).get(
        str(response.get("questionnaire"))
    ) or questionnaires.get(url)
    if questionnaire is None:
        abort(404, "The questionnaire this response answers is not held by this service")
    flags = app_data.search_all(clinician, "Flag", [("patient", clinician.subject)])
    just_saved = session.get(JUST_SAVED) == response_id
    if just_saved:
        session.pop(JUST_SAVED)
    view = build_response_view(questionnaire, response, results, flags)
    return _render("app/response.html", view=view, response_id=response_id, just_saved=just_saved)


@blueprint.get("/flags/<flag_id>")
@launched_view
def flag_page(flag_id: str) -> Any:
    """A safety item: the question, the answer, when, the response's scores, earlier answers to the same question,
    and whether a clinician has reviewed it (with a button to do so)."""
    clinician: Clinician = g.clinician
    flag = _read_or_404(clinician, "Flag", flag_id, "safety item")
    response_id = raised_by(flag)
    response = _read_or_404(clinician, "QuestionnaireResponse", response_id, "response") if response_id else None
    url = canonical_url((response or {}).get("questionnaire"))
    responses, questionnaires, results = _results(clinician, response_id or "", url)
    canonical = str((response or {}).get("questionnaire"))
    questionnaire = app_data.definitions_named([canonical]).get(canonical) or questionnaires.get(url)
    view = flag_view(flag, response, questionnaire, responses)
    reviews = app_data.flag_reviews(clinician, flag_id) if view.reviewed and clinician.is_clinician else []
    just_reviewed = session.get(JUST_REVIEWED) == flag_id
    if just_reviewed:
        session.pop(JUST_REVIEWED)
    return _render(
        "app/flag.html",
        flag=view,
        instrument=instrument_label(questionnaire, url) if questionnaire else None,
        title=(questionnaire or {}).get("title"),
        results=results,
        review=next((review for review in reversed(reviews) if review.reviewed), None),
        can_review=clinician.is_clinician,
        just_reviewed=just_reviewed,
    )


@blueprint.post("/flags/<flag_id>")
@launched_view
def review_flag(flag_id: str) -> Any:
    """Mark the safety item reviewed, as the clinician signed in (refused for anyone else), then show it again."""
    _check_csrf()
    clinician: Clinician = g.clinician
    if request.form.get("action") != "reviewed":
        abort(400, "The form did not say what to do with this safety item")
    _read_or_404(clinician, "Flag", flag_id, "safety item")
    if app_data.review_flag(clinician, flag_id):
        session[JUST_REVIEWED] = flag_id
    return redirect(url_for("smart_app.flag_page", flag_id=flag_id), code=303)


# outcomes for a team or the whole service ---------------------------------------------------------------


@dataclass(frozen=True)
class OutcomesRequest:
    group: str  # a Group id, or "" for everyone in the service
    period: Period

    @property
    def subject(self) -> str | None:
        return f"Group/{self.group}" if self.group else None

    def query(self) -> dict[str, str]:
        return {"group": self.group, "start": self.period.start, "end": self.period.end}


def _outcomes_request() -> OutcomesRequest:
    group = request.args.get("group", "").strip()
    if group and not _GROUP_ID.match(group):
        raise BadRequest("There is no such group")
    today = datetime.now(UTC).date()
    start = request.args.get("start") or (today - timedelta(days=OUTCOMES_DAYS)).isoformat()
    end = request.args.get("end") or today.isoformat()
    for value in (start, end):
        try:
            date.fromisoformat(value)
        except ValueError:
            raise BadRequest(f"{value!r} is not a date: choose the period's first and last days") from None
    return OutcomesRequest(group, parse_period(start, end))


def _outcomes(clinician: Clinician, asked: OutcomesRequest) -> tuple[OutcomesView, list[dict[str, Any]], str]:
    groups = app_data.groups(clinician)
    tallies = app_data.outcomes(clinician, asked.subject, asked.period)
    names = {str(group.get("id")): str(group.get("name") or group.get("id")) for group in groups}
    who = f"the group {names.get(asked.group, asked.group)}" if asked.group else "everyone in the service"
    return build_outcomes_view(tallies), groups, who


@blueprint.get("/outcomes")
@launched_view
def outcomes() -> Any:
    """Outcome rates per score for a Group or the whole service over a period: the figures $evaluate-measure
    reports (the same use case), as charts with their counts and as tables."""
    asked = _outcomes_request()
    view, groups, who = _outcomes(g.clinician, asked)
    return _render("app/outcomes.html", view=view, groups=groups, asked=asked, who=who,
                   csv_url=url_for("smart_app.outcomes_download") + "?" + urlencode(asked.query()))  # fmt: skip


@blueprint.get("/outcomes.csv")
@launched_view
def outcomes_download() -> Response:
    asked = _outcomes_request()
    view, _, who = _outcomes(g.clinician, asked)
    body = outcomes_csv(view, subject=asked.subject or "everyone", period_start=asked.period.start,
                        period_end=asked.period.end)  # fmt: skip
    name = f"outcomes-{asked.group or 'service'}-{asked.period.start}-{asked.period.end}.csv"
    return Response(body, 200, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


# errors, as pages ---------------------------------------------------------------------------------------


def _error_page(status: int, title: str, message: str, *, configured: bool = True) -> tuple[str, int]:
    return _render("app/error.html", status, title=title, message=message, configured=configured)


@blueprint.errorhandler(AppNotConfigured)
def _not_configured(exc: AppNotConfigured) -> tuple[str, int]:
    return _error_page(
        503,
        "The clinician app is not set up",
        "Set PROMS_SMART_CLIENT_ID, PROMS_APP_SECRET_KEY and PROMS_SMART_ISS to open it from an EHR "
        "(docs/smart-app.md). For development, `make run` and `make demo` open it without an EHR: they serve "
        "without authentication on a loopback address and print the development launcher's address.",
        configured=False,
    )


@blueprint.errorhandler(LaunchError)
def _launch_failed(exc: LaunchError) -> tuple[str, int]:
    log.warning("clinician app launch refused", extra={"reason": str(exc)})
    return _error_page(400, "The app could not be launched", str(exc))


@blueprint.errorhandler(FhirError)
def _fhir_error(exc: FhirError) -> tuple[str, int]:
    return _error_page(exc.status, "That could not be done", "; ".join(issue.text for issue in exc.issues))


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    return _error_page(exc.code or 500, exc.name, exc.description or exc.name)


@blueprint.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[str, int]:
    log.exception("clinician app error", extra={"error": type(exc).__name__})
    return _error_page(
        500,
        "Something went wrong",
        f"The app could not complete the request (request id {g.get('request_id', 'unknown')}); it has been logged.",
    )


@blueprint.before_request
def _sessions_readable() -> None:
    if getattr(session, "unavailable", False):  # see DatabaseSessionInterface.open_session
        raise DatabaseUnavailable()  # answered 503 by the error page below


def init_app(app: ServiceApp) -> None:
    services = app.web.services
    settings = services.settings
    app.session_interface = DatabaseSessionInterface(
        app, services, settings.app_secret_key, secure=settings.base_url.startswith("https://")
    )
    app.register_blueprint(blueprint)
