"""What a Task asking for a Questionnaire must be (SDC's sdc-task profile), and the Task once it is answered (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.fhir.dates import instant_text
from service.fhir.issues import Issue

SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
SDC_TASK_PROFILE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-task"
COMPLETE_QUESTIONNAIRE = "complete-questionnaire"
# Statuses in which the person may still answer (the link works, reminders go out, a response completes it).
OPEN_STATUSES = ("requested", "received", "accepted", "ready", "in-progress", "on-hold")
CLOSED_STATUSES = ("completed", "cancelled", "failed", "rejected", "entered-in-error")
INTENTS = ("unknown", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order",
           "instance-order", "option")  # fmt: skip


def _has_coding(concept: Any, system: str, code: str) -> bool:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return any(isinstance(c, Mapping) and c.get("system") == system and c.get("code") == code for c in codings or ())


def questionnaire_of(task: Mapping[str, Any]) -> str | None:
    """The canonical of the Questionnaire to complete: the ``questionnaire`` input's valueCanonical."""
    for parameter in task.get("input") or ():
        if isinstance(parameter, Mapping) and _has_coding(parameter.get("type"), SDC_TEMP, "questionnaire"):
            value = parameter.get("valueCanonical")
            return value if isinstance(value, str) else None
    return None


def response_of(task: Mapping[str, Any]) -> str | None:
    """The reference of the QuestionnaireResponse a completed Task names as its output, or None."""
    for parameter in task.get("output") or ():
        if isinstance(parameter, Mapping) and _has_coding(parameter.get("type"), SDC_TEMP, "questionnaire-response"):
            reference = (parameter.get("valueReference") or {}).get("reference")
            return reference if isinstance(reference, str) else None
    return None


def patient_of(task: Mapping[str, Any]) -> str | None:
    reference = (task.get("for") or {}).get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/") and reference.count("/") == 1:
        return reference.removeprefix("Patient/")
    return None


def due_date(task: Mapping[str, Any]) -> str | None:
    end = ((task.get("restriction") or {}).get("period") or {}).get("end")
    return end if isinstance(end, str) else None


def check_task(task: Mapping[str, Any]) -> list[Issue]:
    """Every way a Task falls short of SDC's Task for completing a Questionnaire (empty: it conforms)."""
    issues: list[Issue] = []

    def refuse(code: str, text: str, expression: str) -> None:
        issues.append(Issue("error", code, text, expression))

    if not _has_coding(task.get("code"), SDC_TEMP, COMPLETE_QUESTIONNAIRE):
        refuse(
            "value",
            f"Task.code must be {SDC_TEMP}#{COMPLETE_QUESTIONNAIRE}: this service stores Tasks asking a person to "
            "complete a Questionnaire",
            "Task.code",
        )
    if task.get("intent") not in INTENTS:
        refuse("required", f"Task.intent is required, one of {', '.join(INTENTS)}", "Task.intent")
    canonical = questionnaire_of(task)
    if not canonical:
        refuse(
            "required",
            f"Task.input needs the Questionnaire to complete: type {SDC_TEMP}#questionnaire with a valueCanonical "
            "(url|version)",
            "Task.input",
        )
    if patient_of(task) is None:
        refuse("required", "Task.for must reference the Patient asked to answer (Patient/id)", "Task.for")
    if not isinstance(task.get("requester"), Mapping):
        refuse("required", "Task.requester must say who asked for the measure", "Task.requester")
    status = task.get("status")
    if status == "completed" and response_of(task) is None:
        refuse(
            "required",
            f"A completed Task needs an output of type {SDC_TEMP}#questionnaire-response referencing the "
            "QuestionnaireResponse",
            "Task.output",
        )
    return issues


def completed(task: Mapping[str, Any], response_id: str, when: datetime) -> dict[str, Any]:
    """The Task once answered: status completed, the response as its output, its execution ended."""
    output = [p for p in task.get("output") or () if response_of({"output": [p]}) is None]
    output.append(
        {
            "type": {"coding": [{"system": SDC_TEMP, "code": "questionnaire-response"}]},
            "valueReference": {"reference": f"QuestionnaireResponse/{response_id}"},
        }
    )
    execution = dict(task.get("executionPeriod") or {})
    execution.setdefault("start", instant_text(when))
    execution["end"] = instant_text(when)
    return {
        **task,
        "status": "completed",
        "output": output,
        "executionPeriod": execution,
        "lastModified": instant_text(when),
    }


def with_status(task: Mapping[str, Any], status: str, reason: str, when: datetime) -> dict[str, Any]:
    """The Task moved to another status by the service (expired: failed), saying why."""
    return {**task, "status": status, "statusReason": {"text": reason}, "lastModified": instant_text(when)}


# who has not answered -------------------------------------------------------------------------------------

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """An open Task as the clinician sees it: what was asked, when the link went out, reminders, the due date."""

    task_id: str
    title: str  # the instrument's short title, e.g. PHQ-9
    asked: datetime  # authoredOn (or when stored)
    sent: datetime | None  # when the current link was made
    reminded: tuple[datetime, ...]
    due: datetime | None  # restriction.period.end

    def overdue(self, now: datetime) -> bool:
        return self.due is not None and self.due < now


def _day(value: datetime, now: datetime) -> str:
    text = f"{value.day} {MONTHS[value.month - 1]}"
    return text if value.year == now.year else f"{text} {value.year}"


def request_text(request: OpenRequest, now: datetime) -> str:
    """'PHQ-9 sent 2 Dec, reminded 9 Dec, not yet answered' (overdue since the due date, when past it)."""
    parts = [f"{request.title} {'sent' if request.sent else 'requested'} {_day(request.sent or request.asked, now)}"]
    if request.reminded:
        parts.append("reminded " + " and ".join(_day(moment, now) for moment in request.reminded))
    parts.append("not yet answered")
    text = ", ".join(parts)
    if request.due is not None and request.overdue(now):
        text += f" (due {_day(request.due, now)})"
    return text
