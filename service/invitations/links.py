"""Completion links: made by Task/$invite, opened by the person on their phone, answered through the API's use case.

A link is ``{public root}/answer/{token}``: 256 random bits from ``secrets``, carrying nothing about the person. Only
the token's SHA-256 is stored, bound to one Task, so the table cannot be turned back into working links. A new
link replaces the Task's previous one. A link works while its Task is open and it has not expired; it ends when the
Task is completed (by any route), cancelled or expires.

The person's answers are stored exactly as a response sent to the API would be (validation, scoring, Observations,
Flags, outbox, AuditEvent), with a grant confined to the Task's patient whose AuditEvent names the invitee.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from service import audit
from service.auth.access import Grant
from service.fhir import jsonio
from service.fhir.dates import utcnow
from service.fhir.errors import Unprocessable
from service.fhir.issues import Issue
from service.invitations.mail import DEFAULT_LANGUAGE, Letter, MailNotSent, communication, send
from service.invitations.shape import OPEN_STATUSES, patient_of, questionnaire_of
from service.invitations.tasks import task_event
from service.resources import load_row
from service.responses.submit import resolve_questionnaire, submit_response, update_response
from service.services import Services
from service.store import outbox
from service.store.kinds import COMMUNICATION, QUESTIONNAIRE_RESPONSE, TASK
from service.store.models import TaskInvitation
from service.store.repository import ResourceRepository
from service.writes import WriteResult, current_resource

DEFAULT_DAYS = 14
MAX_DAYS = 90
LINK_CLIENT = "completion-link"  # the client an invitee's AuditEvents name
ADDRESS = re.compile(r"^[^@\s,;<>]{1,64}@[^@\s,;<>]{1,255}$")
log = logging.getLogger("proms.invitations")


@dataclass(frozen=True, slots=True)
class Invitation:
    task_id: str
    url: str
    expires_at: datetime
    emailed: bool | None = None  # None: no address was given


class LinkUnknown(Exception):
    """No link has this token (answered 404)."""


class LinkClosed(Exception):
    """The link worked once but no longer does: answered, cancelled or expired (answered 410)."""


@dataclass(frozen=True, slots=True)
class OpenLink:
    """What a working link opens: the Task, the Questionnaire as published, and the answers saved so far."""

    task_id: str
    patient: str
    questionnaire: dict[str, Any]
    draft_id: str | None
    draft: dict[str, Any] | None
    expires_at: datetime

    @property
    def grant(self) -> Grant:
        return invitee_grant(self.patient)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitee_grant(patient: str) -> Grant:
    """What the person holding the link may do: write their own responses, nothing else."""
    return Grant(
        unrestricted=False, patient=patient, client_id=LINK_CLIENT, user=f"Patient/{patient}", acting_as="patient"
    )


def link_url(services: Services, token: str) -> str:
    return f"{services.settings.public_root}/answer/{token}"


def invite(
    services: Services,
    task_id: str,
    grant: Grant,
    *,
    days: int | None = None,
    email: str | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> Invitation:
    """Task/$invite: a new single-use link to the open Task (the previous one stops working), and a ``requested``
    event of the questionnaire-task topic. With an address (and a relay configured) the service e-mails the link
    itself and records the send as a Communication; the address is kept only while e-mailed reminders remain."""
    if email is not None and not services.settings.smtp_host:
        raise Unprocessable(
            Issue(
                "error",
                "not-supported",
                "This service sends no e-mail (no PROMS_SMTP_HOST): deliver the returned link yourself",
                "Parameters.parameter",
            )
        )
    if email is not None and not ADDRESS.match(email):
        raise Unprocessable(Issue("error", "value", "email must be one e-mail address", "Parameters.parameter"))
    days = DEFAULT_DAYS if days is None else days
    if not 1 <= days <= MAX_DAYS:
        raise Unprocessable(
            Issue("error", "value", f"validDays must be between 1 and {MAX_DAYS}, got {days}", "Parameters.parameter")
        )
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with services.db.transaction() as session:
        row = load_row(session, services, TASK, task_id, grant)
        task = current_resource(row)
        if task is None or task.get("status") not in OPEN_STATUSES:
            status = "deleted" if task is None else task.get("status")
            raise Unprocessable(
                Issue(
                    "error",
                    "business-rule",
                    f"Task/{task_id} is {status}: a completion link is only made for an open Task",
                    "Task.status",
                )
            )
        patient = patient_of(task)
        session.execute(delete(TaskInvitation).where(TaskInvitation.task_id == task_id))
        session.add(
            TaskInvitation(
                task_id=task_id,
                token_hash=token_hash(token),
                expires_at=now + timedelta(days=days),
                created_at=now,
                invitee=f"Patient/{patient}",
            )
        )
        stored = ResourceRepository.stored(TASK, row)
        outbox.add_events(session, [task_event(stored, "requested", patient, questionnaire_of(task), now)])
        audit.write_in_transaction(session, 200)
    made = Invitation(task_id, link_url(services, token), now + timedelta(days=days))
    if email is None:
        return made
    assert patient is not None
    letter = Letter("invitation", language, made.url, made.expires_at, _title(services, task))
    sent = email_letter(services, letter, email, task_id=task_id, patient=patient)
    if sent and any(now + timedelta(days=offset) < made.expires_at for offset in services.settings.reminders):
        with services.db.transaction() as session:
            kept = session.get(TaskInvitation, task_id)
            if kept is not None and kept.token_hash == token_hash(token):
                kept.address = email  # erased after the last reminder, or when the Task closes
    return Invitation(task_id, made.url, made.expires_at, emailed=sent)


def _title(services: Services, task: dict[str, Any]) -> str:
    questionnaire = resolve_questionnaire(services, {"status": "in-progress", "questionnaire": questionnaire_of(task)})
    resource = questionnaire.resource
    return str(resource.get("title") or resource.get("name") or "a questionnaire")


def email_letter(services: Services, letter: Letter, address: str, *, task_id: str, patient: str) -> bool:
    """Send one e-mail and record it (or the failed attempt) as a Communication; True when the relay took it."""
    try:
        send(services.settings, letter, address)
        sent: datetime | None = utcnow()
    except MailNotSent as exc:
        log.warning("completion link e-mail not sent", extra={"task": task_id, "error": str(exc)})
        sent = None
    record = communication(letter, task_id=task_id, patient=patient, sent=sent)
    with services.db.transaction() as session:
        ((_, stored),) = ResourceRepository(session, COMMUNICATION).create_many([(record, None, {})])
    audit.note("Communication", stored.id, patient)
    return sent is not None


def open_link(services: Services, token: str, *, now: datetime | None = None) -> OpenLink:
    """The Task a token opens, if it still works. The look-up is by the token's hash (an index, whose timing says
    nothing about how close a guess came), confirmed with a constant-time comparison."""
    now = now or utcnow()
    wanted = token_hash(token)
    with services.db.read_session() as session:
        invitation = session.scalars(select(TaskInvitation).where(TaskInvitation.token_hash == wanted)).first()
        if invitation is None or not hmac.compare_digest(invitation.token_hash, wanted):
            raise LinkUnknown
        row = ResourceRepository(session, TASK).get_row(invitation.task_id)
        task = current_resource(row) if row is not None else None
        if task is None or task.get("status") not in OPEN_STATUSES or invitation.expires_at <= now:
            raise LinkClosed
        patient = patient_of(task)
        assert patient is not None
        audit.note("Task", invitation.task_id, patient)
        draft_id, draft = invitation.response_id, None
        if draft_id is not None:
            # The answers saved so far, while they are still an in-progress response (else a new one is started).
            stored = ResourceRepository(session, QUESTIONNAIRE_RESPONSE).current(draft_id)
            if stored is not None and not stored.deleted and stored.json is not None:
                draft = jsonio.loads_object(stored.json)
            if draft is None or draft.get("status") != "in-progress":
                draft_id, draft = None, None
    questionnaire = resolve_questionnaire(
        services, {"status": "in-progress", "questionnaire": questionnaire_of(task)}
    ).resource
    return OpenLink(invitation.task_id, patient, questionnaire, draft_id, draft, invitation.expires_at)


def save_answers(services: Services, link: OpenLink, response: dict[str, Any]) -> WriteResult:
    """Store the person's answers through the API's use case: a first save creates the response, later ones update
    it; ``completed`` completes the Task in the same transaction. The response is ``basedOn`` the Task."""
    response = {**response, "basedOn": [{"reference": f"Task/{link.task_id}"}]}
    if link.draft_id is not None:
        result = update_response(services, link.draft_id, {**response, "id": link.draft_id}, link.grant, if_match=None)
    else:
        result = submit_response(services, response, link.grant)
    with services.db.transaction() as session:
        invitation = session.get(TaskInvitation, link.task_id)
        if invitation is not None:
            invitation.response_id = result.stored.id
            if response.get("status") == "completed":
                invitation.used_at = result.stored.last_updated
    return result
