"""Tasks asking a person to complete a Questionnaire: their writes, and their completion by a submitted response.

A Task is stored as sent once it has SDC's shape and names a Questionnaire the service holds. A response completes
the open Task it is ``basedOn``, or else the open Task for the same person and instrument whose wanted period holds
the response's date: in the response's own transaction, so that the two are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service import audit
from service.auth.access import Grant
from service.cds.measures import instrument_label
from service.fhir import jsonio
from service.fhir.dates import DateOutOfRange, InvalidDate, date_range
from service.fhir.errors import Forbidden, NotFound, Unprocessable
from service.fhir.issues import Issue
from service.fhir.versions import StoredVersion
from service.invitations.shape import (
    OPEN_STATUSES,
    OpenRequest,
    check_task,
    completed,
    due_date,
    patient_of,
    questionnaire_of,
)
from service.resources import parse_search, search
from service.services import Services
from service.store import outbox
from service.store import questionnaires as store_questionnaires
from service.store.kinds import TASK, split_reference
from service.store.models import TaskInvitation, TaskNotice, TaskRow
from service.store.repository import ResourceRepository
from service.subscriptions.topics import QUESTIONNAIRE_TASK, TASK_EVENT_SYSTEM
from service.writes import (
    WriteResult,
    create,
    current_resource,
    delete_resource,
    update,
)


def _check(services: Services, resource: Mapping[str, Any]) -> None:
    """SDC's shape, and a Questionnaire the service holds (422 naming each problem)."""
    issues = check_task(resource)
    if issues:
        raise Unprocessable(issues)
    canonical = str(questionnaire_of(resource))
    with services.db.read_session() as session:
        if store_questionnaires.resolve_reference(session, canonical, services.settings.base_url) is None:
            raise Unprocessable(
                Issue(
                    "error",
                    "not-found",
                    f"The questionnaire input {canonical!r} does not resolve to a stored Questionnaire",
                    "Task.input",
                )
            )


def create_task(
    services: Services, resource: dict[str, Any], grant: Grant, *, if_none_exist: str | None = None
) -> WriteResult:
    """POST Task."""
    _check(services, resource)
    return create(services, TASK, resource, grant, patient=patient_of(resource), if_none_exist=if_none_exist)


def update_task(
    services: Services, task_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
) -> WriteResult:
    """PUT Task/{id}: e.g. cancelled by the requester; a closed Task's link stops working."""
    return update(
        services, TASK, task_id, resource, grant, patient=patient_of(resource), if_match=if_match,
        check=lambda: _check(services, resource),
    )  # fmt: skip


def delete_task(services: Services, task_id: str, grant: Grant) -> StoredVersion | None:
    """DELETE Task/{id}."""
    return delete_resource(services, TASK, task_id, grant)


# completion by a response ---------------------------------------------------------------------------------


def complete_open_task(session: Session, response_id: str, response: Mapping[str, Any], now: datetime) -> None:
    """Inside a submission's transaction, before its AuditEvent is written (which then names the Task too): the
    open Task this completed response answers, if any, becomes completed with the response as its output, and a
    ``completed`` event of the questionnaire-task topic is recorded."""
    subject_type, patient = split_reference(response.get("subject"))
    if response.get("status") != "completed" or subject_type != "Patient" or not patient:
        return
    row = _task_answered(session, patient, response, now)
    if row is None:
        return
    task = current_resource(row)
    assert task is not None
    stored = ResourceRepository(session, TASK).update(row, completed(task, response_id, now))
    audit.note("Task", stored.id, patient)
    outbox.add_events(session, [task_event(stored, "completed", patient, questionnaire_of(task))])


def _task_answered(session: Session, patient: str, response: Mapping[str, Any], now: datetime) -> TaskRow | None:
    """The open Task of this person the response answers: the one it is ``basedOn``, else the oldest asking for
    the same Questionnaire whose wanted period holds the response's date."""
    open_for_patient = (
        TaskRow.subject_type == "Patient",
        TaskRow.subject_id == patient,
        TaskRow.status.in_(OPEN_STATUSES),
        TaskRow.deleted.is_(False),
    )
    based_on = [rid for rtype, rid in map(split_reference, response.get("basedOn") or ()) if rtype == "Task"]
    if based_on:
        query = select(TaskRow).where(TaskRow.id.in_(based_on), *open_for_patient).order_by(TaskRow.pk)
        found = session.scalars(query.limit(1).with_for_update()).first()
        if found is not None:
            return found
    url, _, version = str(response.get("questionnaire", "")).partition("|")
    when = _authored(response) or now
    query = (
        select(TaskRow)
        .where(
            *open_for_patient,
            TaskRow.questionnaire_url == url,
            or_(TaskRow.questionnaire_version.is_(None), TaskRow.questionnaire_version == (version or None)),
            or_(TaskRow.wanted_from.is_(None), TaskRow.wanted_from <= when),
            or_(TaskRow.wanted_until.is_(None), TaskRow.wanted_until >= when),
        )
        .order_by(TaskRow.authored_key, TaskRow.pk)  # the oldest request is answered first
        .limit(1)
        .with_for_update()
    )
    return session.scalars(query).first()


def _authored(response: Mapping[str, Any]) -> datetime | None:
    authored = response.get("authored")
    if not isinstance(authored, str):
        return None
    try:
        return date_range(authored)[0]
    except (InvalidDate, DateOutOfRange):
        return None


def task_event(
    stored: StoredVersion,
    trigger: str,
    patient: str | None,
    questionnaire: str | None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """An outbox event of the questionnaire-task topic: requested | reminder-due | completed | expired."""
    return {
        "topic": QUESTIONNAIRE_TASK.url,
        "focus_type": "Task",
        "focus_id": stored.id,
        "focus_version": stored.version_id,
        "occurred_at": occurred_at or stored.last_updated,
        "patient_id": patient,
        "questionnaire": questionnaire,
        "codes": orjson.dumps([[TASK_EVENT_SYSTEM, trigger]]).decode(),
        "dispatched": False,
    }


# who has not answered -------------------------------------------------------------------------------------


def open_requests(services: Services, patient: str, grant: Grant) -> list[OpenRequest]:
    """The person's open Tasks asking for a Questionnaire, oldest first, each with when its link went out and when
    it was reminded: read within ``grant`` (a caller who may not see Tasks sees none) and noted for the audit."""
    try:
        request = parse_search(
            services,
            "Task",
            [("patient", patient), ("status", ",".join(OPEN_STATUSES)), ("_count", "100")],
            strict=True,
        )
        found = search(services, "Task", request, grant)
    except (Forbidden, NotFound):
        return []
    tasks = [jsonio.loads_object(body) for _, body in found.matches]
    ids = [str(task["id"]) for task in tasks]
    with services.db.read_session() as session:
        sent = dict(
            session.execute(
                select(TaskInvitation.task_id, TaskInvitation.created_at).where(TaskInvitation.task_id.in_(ids))
            ).all()
        )
        reminded: dict[str, list[datetime]] = {}
        for task_id, moment in session.execute(
            select(TaskNotice.task_id, TaskNotice.sent_at)
            .where(TaskNotice.task_id.in_(ids), TaskNotice.notice.like("reminder-%"))
            .order_by(TaskNotice.sent_at)
        ):
            reminded.setdefault(task_id, []).append(moment)
        titles = {}
        for task in tasks:
            canonical = str(questionnaire_of(task))
            row = store_questionnaires.resolve_questionnaire(session, canonical, services.settings.base_url)
            resource = jsonio.loads_object(row.resource_json.encode()) if row and row.resource_json else None
            titles[task["id"]] = instrument_label(resource, canonical.partition("|")[0]) if resource else canonical
    requests = []
    for task in tasks:
        task_id = str(task["id"])
        audit.note("Task", task_id, patient)
        requests.append(
            OpenRequest(
                task_id=task_id,
                title=titles[task_id],
                asked=_moment(task.get("authoredOn")) or _stored_at(task),
                sent=sent.get(task_id),
                reminded=tuple(reminded.get(task_id, ())),
                due=_moment(due_date(task), end=True),
            )
        )
    return sorted(requests, key=lambda r: r.asked)


def _moment(value: Any, *, end: bool = False) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        low, high = date_range(value)
    except (InvalidDate, DateOutOfRange):
        return None
    return high if end else low


def _stored_at(task: Mapping[str, Any]) -> datetime:
    return _moment((task.get("meta") or {}).get("lastUpdated")) or datetime.min


def task_counts(services: Services) -> dict[str, int]:
    """How many Tasks asking for a Questionnaire there are, by status (for /metrics)."""
    with services.db.read_session() as session:
        rows = session.execute(
            select(TaskRow.status, func.count()).where(TaskRow.deleted.is_(False)).group_by(TaskRow.status)
        ).all()
    return {str(status): int(count) for status, count in rows}
