"""The subscription topics the service publishes (as R4 Basic resources) and their filters: parsing and matching."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

TOPIC_BASE = "https://recovery-proms.org/fhir/SubscriptionTopic"
TOPIC_VERSION = "1.0.0"
# R5 SubscriptionTopic elements carried on Basic, as the Subscriptions R5 Backport IG prescribes for R4.
XVER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"
TOPIC_PROFILE = "http://hl7.org/fhir/5.0/StructureDefinition/profile-SubscriptionTopic"
FHIR_TYPES = "http://hl7.org/fhir/fhir-types"


@dataclass(frozen=True, slots=True)
class FilterDef:
    name: str
    kind: str  # reference | canonical | token
    description: str


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    name: str
    title: str
    description: str
    resource: str  # the resource type an event is about (the notification's focus)
    interactions: tuple[str, ...]
    filters: tuple[FilterDef, ...]

    @property
    def url(self) -> str:
        return f"{TOPIC_BASE}/{self.id}"


PATIENT_FILTER = FilterDef("patient", "reference", "The patient the event is about (Patient/123)")

RESPONSE_COMPLETED = Topic(
    id="questionnaire-response-completed",
    name="QuestionnaireResponseCompleted",
    title="Questionnaire response completed or amended",
    description="A QuestionnaireResponse was stored with status completed or amended (and scored).",
    resource="QuestionnaireResponse",
    interactions=("create", "update"),
    filters=(
        PATIENT_FILTER,
        FilterDef("questionnaire", "canonical", "The Questionnaire answered: its canonical url, optionally |version"),
    ),
)
SCORE_ALERT = Topic(
    id="score-alert",
    name="ScoreAlert",
    title="Score crossed into a band or reliably deteriorated",
    description=(
        "A score Observation whose interpretation band differs from the band of the same score on the person's "
        "previous response to the instrument (a first score enters its band), or whose change since that "
        "response is a reliable deterioration."
    ),
    resource="Observation",
    interactions=("create", "update"),
    filters=(PATIENT_FILTER, FilterDef("code", "token", "The score's code (system|code, or code)")),
)
SAFETY_FLAG = Topic(
    id="safety-flag",
    name="SafetyFlagRaised",
    title="Safety flag raised",
    description="A safety item of a scored response raised a Flag that a clinician must review.",
    resource="Flag",
    interactions=("create",),
    filters=(PATIENT_FILTER,),
)

# What happened to a Task (an event's code): the person was asked, a reminder is due, they answered, time ran out.
TASK_EVENT_SYSTEM = "https://recovery-proms.org/fhir/CodeSystem/task-event"
TASK_EVENTS = ("requested", "reminder-due", "completed", "expired")
QUESTIONNAIRE_TASK = Topic(
    id="questionnaire-task",
    name="QuestionnaireTask",
    title="A person was asked to complete a measure, reminded, answered, or the request expired",
    description=(
        "A Task asking a person to complete a Questionnaire (SDC's Task) was requested (a completion link was "
        "made), a reminder fell due, the person's response completed it, or it expired unanswered. The event's "
        f"code ({TASK_EVENT_SYSTEM}) says which: {', '.join(TASK_EVENTS)}."
    ),
    resource="Task",
    interactions=("create", "update"),
    filters=(
        PATIENT_FILTER,
        FilterDef("questionnaire", "canonical", "The Questionnaire asked for: its canonical url, optionally |version"),
        FilterDef("event", "token", f"What happened: {' | '.join(TASK_EVENTS)}"),
    ),
)

TOPICS: Mapping[str, Topic] = {
    topic.url: topic for topic in (RESPONSE_COMPLETED, SCORE_ALERT, SAFETY_FLAG, QUESTIONNAIRE_TASK)
}
TOPICS_BY_ID: Mapping[str, Topic] = {topic.id: topic for topic in TOPICS.values()}


def topic_resource(topic: Topic) -> dict[str, Any]:
    """The topic as an R4 Basic resource (code SubscriptionTopic), the form R4 clients discover topics in."""

    def part(url: str, **value: Any) -> dict[str, Any]:
        return {"url": url, **value}

    extensions: list[dict[str, Any]] = [
        part(f"{XVER}.url", valueUri=topic.url),
        part(f"{XVER}.version", valueString=TOPIC_VERSION),
        part(f"{XVER}.name", valueString=topic.name),
        part(f"{XVER}.title", valueString=topic.title),
        part(f"{XVER}.status", valueCode="active"),
        part(f"{XVER}.description", valueMarkdown=topic.description),
        part(
            f"{XVER}.resourceTrigger",
            extension=[
                part("description", valueMarkdown=topic.description),
                part("resource", valueUri=f"http://hl7.org/fhir/StructureDefinition/{topic.resource}"),
                *[part("supportedInteraction", valueCode=code) for code in topic.interactions],
            ],
        ),
    ]
    for definition in topic.filters:
        extensions.append(
            part(
                f"{XVER}.canFilterBy",
                extension=[
                    part("description", valueMarkdown=definition.description),
                    part("resource", valueUri=topic.resource),
                    part("filterParameter", valueString=definition.name),
                ],
            )
        )
    extensions.append(part(f"{XVER}.notificationShape", extension=[part("resource", valueUri=topic.resource)]))
    return {
        "resourceType": "Basic",
        "id": topic.id,
        "meta": {"profile": [TOPIC_PROFILE]},
        "extension": extensions,
        "code": {"coding": [{"system": FHIR_TYPES, "code": "SubscriptionTopic"}]},
    }


# filters ----------------------------------------------------------------------------------------------------


class FilterError(ValueError):
    """A subscription filter this topic cannot apply; the message is meant for the subscriber."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One filter parameter: its values are alternatives; the conditions of a subscription must all hold."""

    name: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What filters are matched against: the patient, the Questionnaire (url|version), the codes."""

    patient: str | None
    questionnaire: str | None = None
    codes: frozenset[tuple[str, str]] = frozenset()


def _patient_value(raw: str) -> str:
    text = raw.strip()
    resource_type, _, ident = text.rpartition("/")
    if resource_type and resource_type.rsplit("/", 1)[-1] != "Patient":
        raise FilterError(f"patient must name a Patient (Patient/123), got {raw!r}")
    if not ident or "/" in ident:
        raise FilterError(f"patient must name a Patient (Patient/123), got {raw!r}")
    return ident


def parse_filter(topic: Topic, criteria: str) -> list[Condition]:
    """``QuestionnaireResponse?patient=Patient/123&questionnaire=url|1.0`` (the resource type is optional)."""
    resource_type, question, query = criteria.strip().partition("?")
    if not question:
        resource_type, query = "", resource_type
    if resource_type and resource_type != topic.resource:
        raise FilterError(f"this topic's events are about {topic.resource}, not {resource_type}")
    allowed = {definition.name: definition for definition in topic.filters}
    conditions = []
    for name, raw in parse_qsl(query, keep_blank_values=True):
        definition = allowed.get(name)
        if definition is None:
            supported = ", ".join(allowed)
            raise FilterError(f"'{name}' is not a filter of topic {topic.url} (supported: {supported})")
        values = [value.strip() for value in raw.split(",")]
        if not all(values):
            raise FilterError(f"filter '{name}' has an empty value")
        if definition.kind == "reference":
            values = [_patient_value(value) for value in values]
        conditions.append(Condition(name, tuple(values)))
    if not conditions:
        raise FilterError(f"the filter {criteria!r} has no parameters")
    return conditions


def parse_filters(topic: Topic, criteria: Iterable[str]) -> tuple[Condition, ...]:
    return tuple(condition for text in criteria for condition in parse_filter(topic, text))


def filter_patient(conditions: Sequence[Condition]) -> str | None:
    """The one patient a subscription is confined to, if its filters name exactly one."""
    for condition in conditions:
        if condition.name == "patient" and len(condition.values) == 1:
            return condition.values[0]
    return None


def _holds(condition: Condition, facts: EventFacts) -> bool:
    if condition.name == "patient":
        return facts.patient is not None and facts.patient in condition.values
    if condition.name == "questionnaire":
        if facts.questionnaire is None:
            return False
        url, _, version = facts.questionnaire.partition("|")
        for value in condition.values:
            wanted_url, _, wanted_version = value.partition("|")
            if wanted_url == url and (not wanted_version or wanted_version == version):
                return True
        return False
    if condition.name in ("code", "event"):
        for value in condition.values:
            system, bar, code = value.rpartition("|")
            for fact_system, fact_code in facts.codes:
                if fact_code == code and (not bar or fact_system == system):
                    return True
        return False
    return False


def matches(conditions: Sequence[Condition], facts: EventFacts) -> bool:
    return all(_holds(condition, facts) for condition in conditions)
