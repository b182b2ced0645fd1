"""The worker's part in invitations: reminders and expiries while a Task is open, and Tasks for measures falling due.

Each notice happens exactly once: it is claimed by inserting its (Task, notice) row, whose primary key lets only one
worker win, in the same transaction as the outbox event it raises. A reminder is due ``PROMS_REMINDERS`` days after
the link was made, only while the Task is open and the link has not expired. With an e-mail address kept from
$invite, a reminder is also e-mailed, with a fresh link (the earlier one stops working; saved answers are kept).

With ``PROMS_AUTO_TASKS=on``, a person who has completed a measure gets a Task when it next falls due by
``PROMS_SCHEDULE``. The Task's id is derived from (patient, instrument, due date), so it is never made twice.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.app_ui.schedule import interval_days
from service.fhir.dates import instant_text, utcnow
from service.invitations.links import email_letter, link_url, token_hash
from service.invitations.mail import DEFAULT_LANGUAGE, Letter
from service.invitations.shape import COMPLETE_QUESTIONNAIRE, OPEN_STATUSES, SDC_TEMP, patient_of, questionnaire_of
from service.invitations.tasks import task_event
from service.responses.submit import resolve_questionnaire
from service.services import Services
from service.store import outbox
from service.store.kinds import TASK
from service.store.models import QuestionnaireResponseRow, QuestionnaireRow, TaskInvitation, TaskNotice, TaskRow
from service.store.repository import ResourceRepository
from service.writes import current_resource

AUTO_TASK_DAYS = 14  # how long an automatically made Task is open for after its due date
SCHEDULER = {"display": "recovery-proms schedule (PROMS_SCHEDULE)"}


@dataclass(frozen=True, slots=True)
class Notice:
    task_id: str
    name: str  # reminder-3@<link made> | expired@<link made>
    trigger: str  # reminder-due | expired


def _link_key(invitation: TaskInvitation) -> str:
    return str(int(invitation.created_at.timestamp()))


def due_notices(invitation: TaskInvitation, reminders: tuple[int, ...], now: datetime) -> list[Notice]:
    """What is due for one open Task's link now (pure): each reminder past its day, then the link's expiry."""
    key = _link_key(invitation)
    if invitation.expires_at <= now:
        return [Notice(invitation.task_id, f"expired@{key}", "expired")]
    return [
        Notice(invitation.task_id, f"reminder-{days}@{key}", "reminder-due")
        for days in reminders
        if invitation.created_at + timedelta(days=days) <= now
    ]


def _claim(session: Session, notice: Notice, now: datetime) -> bool:
    """Insert the notice's row unless another worker already has: True for the one that inserted it."""
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(TaskNotice).values(task_id=notice.task_id, notice=notice.name, sent_at=now)
    inserted = statement.on_conflict_do_nothing(index_elements=["task_id", "notice"]).returning(TaskNotice.task_id)
    return session.execute(inserted).first() is not None


def send_task_notices(services: Services, now: datetime | None = None) -> int:
    """Fire every reminder and expiry due now, each exactly once; returns how many fired."""
    now = now or utcnow()
    reminders = services.settings.reminders
    with services.db.read_session() as session:
        links = list(
            session.scalars(
                select(TaskInvitation)
                .join(TaskRow, TaskRow.id == TaskInvitation.task_id)
                .where(TaskRow.status.in_(OPEN_STATUSES), TaskRow.deleted.is_(False))
            )
        )
        claimed = {(n.task_id, n.notice) for n in session.scalars(select(TaskNotice))}
    fired = 0
    for invitation in links:
        for notice in due_notices(invitation, reminders, now):
            if (notice.task_id, notice.name) not in claimed and _fire(services, notice, now):
                fired += 1
    _forget_addresses(services, reminders, now)
    return fired


def _fire(services: Services, notice: Notice, now: datetime) -> bool:
    email: tuple[str, Letter, str] | None = None
    with services.db.transaction() as session:
        row = session.scalars(select(TaskRow).where(TaskRow.id == notice.task_id).with_for_update()).first()
        task = current_resource(row) if row is not None else None
        if row is None or task is None or task.get("status") not in OPEN_STATUSES:
            return False  # answered or cancelled meanwhile: no reminder after all
        if not _claim(session, notice, now):
            return False  # another worker fired it
        patient = patient_of(task)
        stored = ResourceRepository.stored(TASK, row)
        outbox.add_events(session, [task_event(stored, notice.trigger, patient, questionnaire_of(task), now)])
        invitation = session.get(TaskInvitation, notice.task_id)
        if notice.trigger == "reminder-due" and invitation is not None and invitation.address and patient:
            token = secrets.token_urlsafe(32)
            invitation.token_hash = token_hash(token)
            letter = Letter("reminder", DEFAULT_LANGUAGE, link_url(services, token), invitation.expires_at, "")
            email = (invitation.address, letter, patient)
    if email is not None:
        address, letter, patient = email
        title = _title(services, task)
        email_letter(services, Letter("reminder", letter.language, letter.link, letter.expires, title), address,
                     task_id=notice.task_id, patient=patient)  # fmt: skip
    return True


def _title(services: Services, task: dict[str, Any]) -> str:
    resource = resolve_questionnaire(services, {"status": "in-progress", "questionnaire": questionnaire_of(task)})
    return str(resource.resource.get("title") or resource.resource.get("name") or "a questionnaire")


def _forget_addresses(services: Services, reminders: tuple[int, ...], now: datetime) -> None:
    """Erase each kept address once no e-mailed reminder remains: the last was sent, the link expired, or the Task
    is no longer open."""
    with services.db.transaction() as session:
        kept = session.execute(
            select(TaskInvitation, TaskRow.status)
            .join(TaskRow, TaskRow.id == TaskInvitation.task_id)
            .where(TaskInvitation.address.is_not(None))
        ).all()
        for invitation, status in kept:
            pending = [
                days
                for days in reminders
                if invitation.created_at + timedelta(days=days) > now
                and invitation.created_at + timedelta(days=days) < invitation.expires_at
            ]
            if status not in OPEN_STATUSES or not pending:
                invitation.address = None


# Tasks for measures falling due ------------------------------------------------------------------------------


def auto_task_id(patient: str, url: str, due: datetime) -> str:
    """The one id a scheduled Task for this person, instrument and due date can have."""
    digest = hashlib.sha256(f"{patient}\n{url}\n{due.date().isoformat()}".encode()).hexdigest()
    return f"due-{digest[:40]}"


def create_due_tasks(services: Services, now: datetime | None = None) -> int:
    """With PROMS_AUTO_TASKS=on: a Task for each measure a person follows that has fallen due and has no open Task;
    returns how many were made."""
    if not services.settings.auto_tasks:
        return 0
    now = now or utcnow()
    schedule = dict(services.settings.schedule)
    qr = QuestionnaireResponseRow
    with services.db.read_session() as session:
        latest = session.execute(
            select(qr.subject_id, qr.questionnaire_url, func.max(qr.authored_key), func.max(qr.questionnaire_pk))
            .where(qr.subject_type == "Patient", qr.status.in_(("completed", "amended")), qr.deleted.is_(False))
            .group_by(qr.subject_id, qr.questionnaire_url)
        ).all()
        open_tasks = set(
            session.execute(
                select(TaskRow.subject_id, TaskRow.questionnaire_url).where(
                    TaskRow.status.in_(OPEN_STATUSES), TaskRow.deleted.is_(False)
                )
            ).all()
        )
        questionnaires = {row.pk: row for row in session.scalars(select(QuestionnaireRow))}
    made = 0
    for patient, url, last, questionnaire_pk in latest:
        questionnaire = questionnaires.get(questionnaire_pk) if questionnaire_pk is not None else None
        if patient is None or questionnaire is None or (patient, url) in open_tasks:
            continue
        days = interval_days(schedule, questionnaire.id, url)
        due = last + timedelta(days=days)
        if days <= 0 or due > now:
            continue
        canonical = f"{url}|{questionnaire.version}" if questionnaire.version else url
        if _create_auto_task(services, patient, canonical, due, now):
            made += 1
    return made


def _create_auto_task(services: Services, patient: str, canonical: str, due: datetime, now: datetime) -> bool:
    url = canonical.partition("|")[0]
    task = {
        "resourceType": "Task",
        "meta": {"profile": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-task"]},
        "status": "requested",
        "intent": "plan",
        "code": {"coding": [{"system": SDC_TEMP, "code": COMPLETE_QUESTIONNAIRE}]},
        "for": {"reference": f"Patient/{patient}"},
        "requester": SCHEDULER,
        "authoredOn": instant_text(now),
        "restriction": {
            "period": {"start": instant_text(due), "end": instant_text(due + timedelta(days=AUTO_TASK_DAYS))}
        },
        "input": [{"type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire"}]}, "valueCanonical": canonical}],
    }
    try:
        with services.db.transaction() as session:
            ((_, stored),) = ResourceRepository(session, TASK).create_many(
                [(task, auto_task_id(patient, url, due), {})], now=now
            )
            outbox.add_events(session, [task_event(stored, "requested", patient, canonical)])
    except IntegrityError:
        return False  # made already, for this due date
    return True
