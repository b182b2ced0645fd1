"""What the store knows of each resource type: its table, its search columns and its search parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, case, exists, false, func, or_, select

from service.fhir.dates import DateOutOfRange, InvalidDate, date_range
from service.fhir.errors import BadRequest
from service.fhir.issues import Issue
from service.fhir.search import Criterion, ReferenceValue, SearchCapabilities, SearchParamDef, TokenValue
from service.invitations.shape import questionnaire_of
from service.store.filters import (
    Column,
    Filter,
    canonical_filter,
    date_filter,
    fold,
    reference_filter,
    string_filter,
    token_filter,
    typed_reference_filter,
    uri_filter,
)
from service.store.models import (
    AuditEventEntity,
    AuditEventRow,
    CodeSystemRow,
    CommunicationRow,
    FlagRow,
    GroupMember,
    GroupRow,
    MeasureReportRow,
    MeasureRow,
    ObservationRow,
    ObservationToken,
    ProvenanceRow,
    ProvenanceTarget,
    QuestionnaireCode,
    QuestionnaireResponseRow,
    QuestionnaireRow,
    ResourceRow,
    SubscriptionRow,
    TaskRow,
    TerminologyRow,
    ValueSetRow,
)

EARLIEST = datetime(1, 1, 1)


@dataclass(frozen=True)
class ResourceKind:
    resource_type: str
    model: type[ResourceRow]
    capabilities: SearchCapabilities
    filters: Mapping[str, Filter]
    # What each _sort key orders by: never NULL, since a page token carries the last row's values.
    sort_columns: Mapping[str, Column | ColumnElement[Any]]
    index: Callable[[ResourceRow, Mapping[str, Any]], None]  # copy search columns from the resource to the row
    # The patient whose compartment a row belongs to, for patient-scoped access (None: not in one).
    compartment: Callable[[ResourceRow], str | None] | None = None
    versioned: bool = True  # False: append-only, no history rows (AuditEvent)
    # The same patient as ``compartment``, as a column expression (what a search's matches are about, for the audit).
    patient_column: ColumnElement[str | None] | None = None


COMMON_PARAMS = {
    "_id": SearchParamDef("_id", "token", "Logical id of the resource"),
    "_lastUpdated": SearchParamDef("_lastUpdated", "date", "When the resource version last changed"),
}


def _common_filters(model: type[ResourceRow]) -> dict[str, Filter]:
    return {
        "_id": token_filter(model.id),
        "_lastUpdated": date_filter(model.last_updated, model.last_updated),
    }


def split_reference(reference: Mapping[str, Any] | None, base_url: str = "") -> tuple[str | None, str | None]:
    """'Patient/123' (or an absolute URL ending so) -> ('Patient', '123'); anything else -> (None, None)."""
    if not reference or not isinstance(reference.get("reference"), str):
        return None, None
    text: str = reference["reference"]
    if text.startswith("#") or "/" not in text:
        return None, None
    parts = text.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-2], parts[-1]


def _subject_patient_column(model: Any) -> ColumnElement[str | None]:
    return case((model.subject_type == "Patient", model.subject_id), else_=None)


def _patient_of(row: ResourceRow) -> str | None:
    subject_type = getattr(row, "subject_type", None)
    return getattr(row, "subject_id", None) if subject_type == "Patient" else None


# Questionnaire -------------------------------------------------------------------------------------------


def child_token_filter(system: Column, code: Column, link: ColumnElement[bool], *extra: ColumnElement[bool]) -> Filter:
    """A token stored in a child table (a resource can have several codes): EXISTS over the child rows."""

    def build(criterion: Criterion) -> ColumnElement[bool]:
        conditions = []
        for value in criterion.values:
            assert isinstance(value, TokenValue)
            query = select(code).where(link, *extra)
            if value.code is not None:
                query = query.where(code == value.code)
            if value.system is not None:
                query = query.where(system == value.system)
            conditions.append(exists(query))
        condition = or_(*conditions)
        return ~condition if criterion.modifier == "not" else condition

    return build


def _codings(concepts: Any) -> set[tuple[str, str]]:
    """(system, code) of every Coding in a CodeableConcept or a list of them (or a list of Codings)."""
    found: set[tuple[str, str]] = set()
    for concept in concepts if isinstance(concepts, list) else [concepts]:
        if not isinstance(concept, dict):
            continue
        codings = concept.get("coding", [concept] if "code" in concept else [])
        for coding in codings:
            if isinstance(coding, dict) and coding.get("code"):
                found.add((coding.get("system") or "", str(coding["code"])))
    return found


def _index_questionnaire(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, QuestionnaireRow)
    row.url = resource.get("url")
    row.version = resource.get("version")
    row.version_key = row.version or ""
    row.name = resource.get("name")
    row.title = resource.get("title")
    row.name_folded = fold(row.name)
    row.title_folded = fold(row.title)
    row.status = resource.get("status", "draft")
    row.codes = [
        QuestionnaireCode(system=system, code=code) for system, code in sorted(_codings(resource.get("code", [])))
    ]


QUESTIONNAIRE = ResourceKind(
    resource_type="Questionnaire",
    model=QuestionnaireRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "url": SearchParamDef("url", "uri", "The canonical URL of the questionnaire"),
            "version": SearchParamDef("version", "token", "The business version of the questionnaire"),
            "name": SearchParamDef("name", "string", "Computer-friendly name (starts with, case-insensitive)"),
            "title": SearchParamDef("title", "string", "Human-friendly title (starts with, case-insensitive)"),
            "status": SearchParamDef("status", "token", "draft | active | retired | unknown"),
            "code": SearchParamDef("code", "token", "A code for the questionnaire (e.g. its LOINC panel)"),
        },
        sorts=("_lastUpdated", "name", "title"),
    ),
    filters={
        **_common_filters(QuestionnaireRow),
        "url": uri_filter(QuestionnaireRow.url),
        "version": token_filter(QuestionnaireRow.version),
        "name": string_filter(QuestionnaireRow.name, QuestionnaireRow.name_folded),
        "title": string_filter(QuestionnaireRow.title, QuestionnaireRow.title_folded),
        "status": token_filter(QuestionnaireRow.status),
        "code": child_token_filter(
            QuestionnaireCode.system, QuestionnaireCode.code, QuestionnaireCode.questionnaire_pk == QuestionnaireRow.pk
        ),
    },
    sort_columns={
        "_lastUpdated": QuestionnaireRow.last_updated,
        # A Questionnaire without a name (title) sorts first, as the empty name; the next page starts after it.
        "name": func.coalesce(QuestionnaireRow.name_folded, ""),
        "title": func.coalesce(QuestionnaireRow.title_folded, ""),
    },
    index=_index_questionnaire,
)


def _date_columns(value: Any, element: str) -> tuple[datetime | None, datetime | None]:
    """The indexed UTC range of a date element. A value no column can hold is refused (the write changes
    nothing): stored unindexed, the resource would silently drop out of every date search."""
    if isinstance(value, str):
        try:
            return date_range(value)
        except DateOutOfRange as exc:
            raise BadRequest(Issue("error", "value", f"{element}: {exc}", element)) from None
        except InvalidDate:
            return None, None
    return None, None


# QuestionnaireResponse -----------------------------------------------------------------------------------


def _index_questionnaire_response(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, QuestionnaireResponseRow)
    canonical = str(resource.get("questionnaire", ""))
    url, _, version = canonical.partition("|")
    row.questionnaire_url = url
    row.questionnaire_version = version or None
    row.status = resource.get("status", "")
    row.subject_type, row.subject_id = split_reference(resource.get("subject"))
    row.author_type, row.author_id = split_reference(resource.get("author"))
    authored = resource.get("authored")
    row.authored_low, row.authored_high = _date_columns(authored, "QuestionnaireResponse.authored")
    row.authored_key = row.authored_low or EARLIEST
    identifier = resource.get("identifier")
    if isinstance(identifier, dict):
        row.identifier_system = identifier.get("system")
        row.identifier_value = identifier.get("value")
    else:
        row.identifier_system = row.identifier_value = None
    row.identifier_system_key = row.identifier_system or ""


QR = QuestionnaireResponseRow
QUESTIONNAIRE_RESPONSE = ResourceKind(
    resource_type="QuestionnaireResponse",
    model=QuestionnaireResponseRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "patient": SearchParamDef("patient", "reference", "The patient the response is about", "Patient"),
            "subject": SearchParamDef("subject", "reference", "The subject of the response"),
            "questionnaire": SearchParamDef(
                "questionnaire",
                "canonical",
                "The questionnaire answered (canonical url, optionally |version)",
            ),
            "status": SearchParamDef(
                "status", "token", "in-progress | completed | amended | entered-in-error | stopped"
            ),
            "authored": SearchParamDef("authored", "date", "When the response was authored"),
            "author": SearchParamDef("author", "reference", "Who recorded the answers"),
            "identifier": SearchParamDef("identifier", "token", "The business identifier of the response"),
        },
        sorts=("authored", "_lastUpdated"),
        includes=("QuestionnaireResponse:questionnaire",),
        revincludes=("Observation:derived-from",),
    ),
    filters={
        **_common_filters(QR),
        "patient": reference_filter(QR.subject_type, QR.subject_id),
        "subject": reference_filter(QR.subject_type, QR.subject_id),
        "questionnaire": canonical_filter(QR.questionnaire_url, QR.questionnaire_version),
        "status": token_filter(QR.status),
        "authored": date_filter(QR.authored_low, QR.authored_high),
        "author": reference_filter(QR.author_type, QR.author_id),
        "identifier": token_filter(QR.identifier_value, QR.identifier_system),
    },
    sort_columns={"authored": QR.authored_key, "_lastUpdated": QR.last_updated},
    index=_index_questionnaire_response,
    compartment=lambda row: _patient_of(row),
    patient_column=_subject_patient_column(QR),
)


# Observation ---------------------------------------------------------------------------------------------


def _index_observation(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, ObservationRow)
    row.status = resource.get("status", "")
    row.subject_type, row.subject_id = split_reference(resource.get("subject"))
    row.effective_low, row.effective_high = _date_columns(
        resource.get("effectiveDateTime"), "Observation.effectiveDateTime"
    )
    row.effective_key = row.effective_low or EARLIEST
    derived = [split_reference(ref) for ref in resource.get("derivedFrom", [])]
    row.derived_from_id = next((rid for rtype, rid in derived if rtype == "QuestionnaireResponse"), None)
    tokens = [("code", pair) for pair in _codings(resource.get("code"))]
    tokens += [("category", pair) for pair in _codings(resource.get("category", []))]
    row.tokens = [ObservationToken(param=param, system=system, code=code) for param, (system, code) in sorted(tokens)]
    row.value_number = observation_number(resource)
    row.code_key = first_code_key(resource.get("code"))


def first_code_key(concept: Any) -> str | None:
    """'system|code' of a CodeableConcept's first coding (system '' when it has none), or None."""
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    first = codings[0] if isinstance(codings, list) and codings else None
    if not isinstance(first, Mapping) or not first.get("code"):
        return None
    return f"{first.get('system') or ''}|{first['code']}"


def observation_number(resource: Mapping[str, Any]) -> float | None:
    """An Observation's value as a number: valueInteger, or valueQuantity.value (None for any other value)."""
    value = resource.get("valueInteger")
    if value is None and isinstance(resource.get("valueQuantity"), Mapping):
        value = resource["valueQuantity"].get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


OBS = ObservationRow
OBSERVATION = ResourceKind(
    resource_type="Observation",
    model=ObservationRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "patient": SearchParamDef("patient", "reference", "The patient the observation is about", "Patient"),
            "subject": SearchParamDef("subject", "reference", "The subject of the observation"),
            "code": SearchParamDef("code", "token", "The score or item code (e.g. http://loinc.org|44261-6)"),
            "category": SearchParamDef("category", "token", "The category (e.g. survey)"),
            "date": SearchParamDef("date", "date", "When the answers were given (effective date)"),
            "derived-from": SearchParamDef(
                "derived-from", "reference", "The QuestionnaireResponse scored", "QuestionnaireResponse"
            ),
            "status": SearchParamDef("status", "token", "final | amended | entered-in-error"),
        },
        sorts=("date", "_lastUpdated"),
    ),
    filters={
        **_common_filters(OBS),
        "patient": reference_filter(OBS.subject_type, OBS.subject_id),
        "subject": reference_filter(OBS.subject_type, OBS.subject_id),
        "code": child_token_filter(
            ObservationToken.system,
            ObservationToken.code,
            ObservationToken.observation_pk == OBS.pk,
            ObservationToken.param == "code",
        ),
        "category": child_token_filter(
            ObservationToken.system,
            ObservationToken.code,
            ObservationToken.observation_pk == OBS.pk,
            ObservationToken.param == "category",
        ),
        "date": date_filter(OBS.effective_low, OBS.effective_high),
        "derived-from": typed_reference_filter(OBS.derived_from_id, "QuestionnaireResponse"),
        "status": token_filter(OBS.status),
    },
    sort_columns={"date": OBS.effective_key, "_lastUpdated": OBS.last_updated},
    index=_index_observation,
    compartment=lambda row: _patient_of(row),
    patient_column=_subject_patient_column(OBS),
)


# Provenance ----------------------------------------------------------------------------------------------


def _index_provenance(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, ProvenanceRow)
    targets = {split_reference(target) for target in resource.get("target", [])}
    row.targets = [
        ProvenanceTarget(target_type=rtype, target_id=rid) for rtype, rid in sorted(targets) if rtype and rid
    ]


def _provenance_target_filter(criterion: Criterion) -> ColumnElement[bool]:
    conditions = []
    for value in criterion.values:
        assert isinstance(value, ReferenceValue)
        query = select(ProvenanceTarget.pk).where(
            ProvenanceTarget.provenance_pk == ProvenanceRow.pk, ProvenanceTarget.target_id == value.id
        )
        if value.resource_type is not None:
            query = query.where(ProvenanceTarget.target_type == value.resource_type)
        conditions.append(exists(query))
    return or_(*conditions)


PROVENANCE = ResourceKind(
    resource_type="Provenance",
    model=ProvenanceRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "target": SearchParamDef("target", "reference", "The resources the provenance is about"),
        },
        sorts=("_lastUpdated",),
    ),
    filters={**_common_filters(ProvenanceRow), "target": _provenance_target_filter},
    sort_columns={"_lastUpdated": ProvenanceRow.last_updated},
    index=_index_provenance,
)


# AuditEvent ----------------------------------------------------------------------------------------------


def _index_audit_event(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, AuditEventRow)
    subtypes = resource.get("subtype") or [{}]
    row.subtype = str(subtypes[0].get("code", ""))
    row.action = str(resource.get("action", ""))
    row.outcome = str(resource.get("outcome", ""))
    agents = resource.get("agent") or [{}]
    who = agents[0].get("who") or {}
    row.agent = (who.get("identifier") or {}).get("value") or agents[0].get("altId")
    found = {split_reference(entity.get("what")) for entity in resource.get("entity", [])}
    named = sorted((rtype, rid) for rtype, rid in found if rtype and rid)
    row.entities = [AuditEventEntity(entity_type=rtype, entity_id=rid) for rtype, rid in named]


def _audit_entity_filter(only_type: str | None = None) -> Filter:
    """EXISTS over the entities an AuditEvent names (every one of them, the patients among them)."""

    def build(criterion: Criterion) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        for value in criterion.values:
            assert isinstance(value, ReferenceValue)
            wanted = only_type or value.resource_type
            if only_type is not None and value.resource_type not in (None, only_type):
                conditions.append(false())
                continue
            query = select(AuditEventEntity.pk).where(
                AuditEventEntity.audit_event_pk == AuditEventRow.pk, AuditEventEntity.entity_id == value.id
            )
            if wanted is not None:
                query = query.where(AuditEventEntity.entity_type == wanted)
            conditions.append(exists(query))
        return or_(*conditions)

    return build


AE = AuditEventRow
AUDIT_EVENT = ResourceKind(
    resource_type="AuditEvent",
    model=AuditEventRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "patient": SearchParamDef("patient", "reference", "A patient whose data was accessed", "Patient"),
            "agent": SearchParamDef("agent", "token", "The client id or user that acted"),
            "date": SearchParamDef("date", "date", "When the access was recorded"),
            "type": SearchParamDef("type", "token", "The interaction (read, search-type, create, ...)"),
            "subtype": SearchParamDef("subtype", "token", "The interaction, as FHIR names it (the same as type here)"),
            "action": SearchParamDef("action", "token", "C create, R read, U update, D delete, E execute (search...)"),
            "entity": SearchParamDef("entity", "reference", "A resource the access touched (e.g. Flag/123)"),
            "outcome": SearchParamDef("outcome", "token", "0 success, 4 refused or invalid, 8 server failure"),
        },
        sorts=("date", "_lastUpdated"),
    ),
    filters={
        **_common_filters(AE),
        "patient": _audit_entity_filter("Patient"),
        "agent": token_filter(AE.agent),
        "date": date_filter(AE.last_updated, AE.last_updated),
        "type": token_filter(AE.subtype),
        "subtype": token_filter(AE.subtype),
        "action": token_filter(AE.action),
        "entity": _audit_entity_filter(),
        "outcome": token_filter(AE.outcome),
    },
    sort_columns={"date": AE.last_updated, "_lastUpdated": AE.last_updated},
    index=_index_audit_event,
    versioned=False,
)

# Flag ----------------------------------------------------------------------------------------------------

FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"


def _index_flag(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, FlagRow)
    row.status = resource.get("status", "")
    row.subject_type, row.subject_id = split_reference(resource.get("subject"))
    details = [e.get("valueReference") for e in resource.get("extension", []) if e.get("url") == FLAG_DETAIL]
    references = [split_reference(detail) for detail in details]
    row.derived_from_id = next((rid for rtype, rid in references if rtype == "QuestionnaireResponse"), None)


FLAG = ResourceKind(
    resource_type="Flag",
    model=FlagRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "patient": SearchParamDef("patient", "reference", "The patient the flag is about", "Patient"),
            "subject": SearchParamDef("subject", "reference", "The subject of the flag"),
            "status": SearchParamDef(
                "status", "token", "active (not yet reviewed) | inactive (reviewed) | entered-in-error"
            ),
        },
        sorts=("_lastUpdated",),
    ),
    filters={
        **_common_filters(FlagRow),
        "patient": reference_filter(FlagRow.subject_type, FlagRow.subject_id),
        "subject": reference_filter(FlagRow.subject_type, FlagRow.subject_id),
        "status": token_filter(FlagRow.status),
    },
    sort_columns={"_lastUpdated": FlagRow.last_updated},
    index=_index_flag,
    compartment=lambda row: _patient_of(row),
    patient_column=_subject_patient_column(FlagRow),
)

# Subscription --------------------------------------------------------------------------------------------


def _index_subscription(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, SubscriptionRow)
    row.status = str(resource.get("status", "requested"))
    row.topic = str(resource.get("criteria", "")).split("|")[0]
    channel = resource.get("channel") or {}
    row.endpoint = channel.get("endpoint") if isinstance(channel, Mapping) else None
    # patient_id is the use case's to set (from the topic's filter), as a column value it passes with the write.


SUBSCRIPTION = ResourceKind(
    resource_type="Subscription",
    model=SubscriptionRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "status": SearchParamDef("status", "token", "requested | active | error | off"),
            "url": SearchParamDef("url", "uri", "The endpoint notifications are sent to"),
            "patient": SearchParamDef("patient", "reference", "The patient the subscription's filter names", "Patient"),
        },
        sorts=("_lastUpdated",),
    ),
    filters={
        **_common_filters(SubscriptionRow),
        "status": token_filter(SubscriptionRow.status),
        "url": uri_filter(SubscriptionRow.endpoint),
        "patient": typed_reference_filter(SubscriptionRow.patient_id, "Patient"),
    },
    sort_columns={"_lastUpdated": SubscriptionRow.last_updated},
    index=_index_subscription,
    compartment=lambda row: getattr(row, "patient_id", None),
    patient_column=cast(ColumnElement[str | None], SubscriptionRow.patient_id),
)


# Group ---------------------------------------------------------------------------------------------------


def _index_group(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, GroupRow)
    row.type = str(resource.get("type", ""))
    members: set[tuple[str, str]] = set()
    for member in resource.get("member", []):
        if isinstance(member, Mapping) and not member.get("inactive"):
            rtype, rid = split_reference(member.get("entity"))
            if rtype and rid:
                members.add((rtype, rid))
    row.members = [GroupMember(member_type=rtype, member_id=rid) for rtype, rid in sorted(members)]


def _group_member_filter(criterion: Criterion) -> ColumnElement[bool]:
    conditions = []
    for value in criterion.values:
        assert isinstance(value, ReferenceValue)
        query = select(GroupMember.pk).where(GroupMember.group_pk == GroupRow.pk, GroupMember.member_id == value.id)
        if value.resource_type is not None:
            query = query.where(GroupMember.member_type == value.resource_type)
        conditions.append(exists(query))
    return or_(*conditions)


GROUP = ResourceKind(
    resource_type="Group",
    model=GroupRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "member": SearchParamDef("member", "reference", "A member of the group (e.g. Patient/123)"),
            "type": SearchParamDef("type", "token", "person | animal | practitioner | device | medication | substance"),
        },
        sorts=("_lastUpdated",),
    ),
    filters={
        **_common_filters(GroupRow),
        "member": _group_member_filter,
        "type": token_filter(GroupRow.type),
    },
    sort_columns={"_lastUpdated": GroupRow.last_updated},
    index=_index_group,
)


# Measure and MeasureReport ----------------------------------------------------------------------------------


def _index_measure(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, MeasureRow)
    row.url = resource.get("url")
    row.version = resource.get("version")
    row.version_key = row.version or ""
    row.status = str(resource.get("status", "draft"))


MEASURE = ResourceKind(
    resource_type="Measure",
    model=MeasureRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "url": SearchParamDef("url", "uri", "The canonical URL of the measure"),
            "version": SearchParamDef("version", "token", "The business version of the measure"),
            "status": SearchParamDef("status", "token", "draft | active | retired | unknown"),
        },
        sorts=("_lastUpdated",),
    ),
    filters={
        **_common_filters(MeasureRow),
        "url": uri_filter(MeasureRow.url),
        "version": token_filter(MeasureRow.version),
        "status": token_filter(MeasureRow.status),
    },
    sort_columns={"_lastUpdated": MeasureRow.last_updated},
    index=_index_measure,
)


def _index_measure_report(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, MeasureReportRow)
    url, _, version = str(resource.get("measure", "")).partition("|")
    row.measure_url = url
    row.measure_version = version or None
    row.status = str(resource.get("status", ""))
    row.type = str(resource.get("type", ""))
    row.subject_type, row.subject_id = split_reference(resource.get("subject"))
    period = resource.get("period") or {}
    row.period_low = _date_columns(period.get("start"), "MeasureReport.period.start")[0]
    row.period_high = _date_columns(period.get("end"), "MeasureReport.period.end")[1]
    row.date_low, row.date_high = _date_columns(resource.get("date"), "MeasureReport.date")


MR = MeasureReportRow
MEASURE_REPORT = ResourceKind(
    resource_type="MeasureReport",
    model=MeasureReportRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "measure": SearchParamDef(
                "measure", "canonical", "The measure reported (canonical url, optionally |version)"
            ),
            "subject": SearchParamDef("subject", "reference", "Whom the report is about (a Group or a Patient)"),
            "patient": SearchParamDef("patient", "reference", "The patient an individual report is about", "Patient"),
            "period": SearchParamDef("period", "date", "The period the report covers"),
            "date": SearchParamDef("date", "date", "When the report was made"),
            "status": SearchParamDef("status", "token", "complete | pending | error"),
        },
        sorts=("_lastUpdated",),
    ),
    filters={
        **_common_filters(MR),
        "measure": canonical_filter(MR.measure_url, MR.measure_version),
        "subject": reference_filter(MR.subject_type, MR.subject_id),
        "patient": reference_filter(MR.subject_type, MR.subject_id),
        "period": date_filter(MR.period_low, MR.period_high),
        "date": date_filter(MR.date_low, MR.date_high),
        "status": token_filter(MR.status),
    },
    sort_columns={"_lastUpdated": MR.last_updated},
    index=_index_measure_report,
    compartment=lambda row: _patient_of(row),
)


# Task ----------------------------------------------------------------------------------------------------


def _index_task(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, TaskRow)
    row.status = str(resource.get("status", ""))
    codings = (resource.get("code") or {}).get("coding") or [{}]
    first = codings[0] if isinstance(codings[0], Mapping) else {}
    row.code_system, row.code = first.get("system"), first.get("code")
    row.subject_type, row.subject_id = split_reference(resource.get("for"))
    row.owner_type, row.owner_id = split_reference(resource.get("owner"))
    row.requester_type, row.requester_id = split_reference(resource.get("requester"))
    row.focus_type, row.focus_id = split_reference(resource.get("focus"))
    url, _, version = (questionnaire_of(resource) or "").partition("|")
    row.questionnaire_url, row.questionnaire_version = url or None, version or None
    row.authored_low, row.authored_high = _date_columns(resource.get("authoredOn"), "Task.authoredOn")
    row.authored_key = row.authored_low or EARLIEST
    execution = resource.get("executionPeriod") or {}
    row.period_low = _date_columns(execution.get("start"), "Task.executionPeriod.start")[0]
    row.period_high = _date_columns(execution.get("end"), "Task.executionPeriod.end")[1]
    wanted = (resource.get("restriction") or {}).get("period") or {}
    row.wanted_from = _date_columns(wanted.get("start"), "Task.restriction.period.start")[0]
    row.wanted_until = _date_columns(wanted.get("end"), "Task.restriction.period.end")[1]


TASK = ResourceKind(
    resource_type="Task",
    model=TaskRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "patient": SearchParamDef("patient", "reference", "The patient asked to answer (Task.for)", "Patient"),
            "subject": SearchParamDef("subject", "reference", "Whom the task is for (Task.for)"),
            "status": SearchParamDef(
                "status", "token", "requested | ready | in-progress | completed | cancelled | failed | ..."
            ),
            "code": SearchParamDef("code", "token", "What is asked (sdc temp#complete-questionnaire)"),
            "focus": SearchParamDef("focus", "reference", "What the task acts on"),
            "owner": SearchParamDef("owner", "reference", "Who is to do it"),
            "requester": SearchParamDef("requester", "reference", "Who asked for it"),
            "authored-on": SearchParamDef("authored-on", "date", "When the task was created"),
            "period": SearchParamDef("period", "date", "When the task was worked on (Task.executionPeriod)"),
        },
        sorts=("authored-on", "_lastUpdated"),
    ),
    filters={
        **_common_filters(TaskRow),
        "patient": reference_filter(TaskRow.subject_type, TaskRow.subject_id),
        "subject": reference_filter(TaskRow.subject_type, TaskRow.subject_id),
        "status": token_filter(TaskRow.status),
        "code": token_filter(TaskRow.code, TaskRow.code_system),
        "focus": reference_filter(TaskRow.focus_type, TaskRow.focus_id),
        "owner": reference_filter(TaskRow.owner_type, TaskRow.owner_id),
        "requester": reference_filter(TaskRow.requester_type, TaskRow.requester_id),
        "authored-on": date_filter(TaskRow.authored_low, TaskRow.authored_high),
        "period": date_filter(TaskRow.period_low, TaskRow.period_high),
    },
    sort_columns={"authored-on": TaskRow.authored_key, "_lastUpdated": TaskRow.last_updated},
    index=_index_task,
    compartment=lambda row: _patient_of(row),
    patient_column=_subject_patient_column(TaskRow),
)


# Communication -------------------------------------------------------------------------------------------


def _index_communication(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, CommunicationRow)
    row.status = str(resource.get("status", ""))
    row.subject_type, row.subject_id = split_reference(resource.get("subject"))
    based_on = [split_reference(ref) for ref in resource.get("basedOn") or ()]
    row.based_on_id = next((rid for rtype, rid in based_on if rtype == "Task"), None)
    row.sent_low, row.sent_high = _date_columns(resource.get("sent"), "Communication.sent")


COMMUNICATION = ResourceKind(
    resource_type="Communication",
    model=CommunicationRow,
    capabilities=SearchCapabilities(
        params={
            **COMMON_PARAMS,
            "patient": SearchParamDef("patient", "reference", "The patient the message was about", "Patient"),
            "subject": SearchParamDef("subject", "reference", "The subject of the message"),
            "based-on": SearchParamDef("based-on", "reference", "The Task the message was sent for", "Task"),
            "status": SearchParamDef("status", "token", "completed (sent) | stopped (not sent)"),
            "sent": SearchParamDef("sent", "date", "When the message was sent"),
        },
        sorts=("_lastUpdated",),
    ),
    filters={
        **_common_filters(CommunicationRow),
        "patient": reference_filter(CommunicationRow.subject_type, CommunicationRow.subject_id),
        "subject": reference_filter(CommunicationRow.subject_type, CommunicationRow.subject_id),
        "based-on": typed_reference_filter(CommunicationRow.based_on_id, "Task"),
        "status": token_filter(CommunicationRow.status),
        "sent": date_filter(CommunicationRow.sent_low, CommunicationRow.sent_high),
    },
    sort_columns={"_lastUpdated": CommunicationRow.last_updated},
    index=_index_communication,
    compartment=lambda row: _patient_of(row),
    patient_column=_subject_patient_column(CommunicationRow),
)
# ValueSet and CodeSystem ------------------------------------------------------------------------------------


def _index_terminology(row: ResourceRow, resource: Mapping[str, Any]) -> None:
    assert isinstance(row, TerminologyRow)
    row.url = resource.get("url")
    row.version = resource.get("version")
    row.version_key = row.version or ""
    row.name = resource.get("name")
    row.name_folded = fold(row.name)
    row.status = str(resource.get("status", "draft"))


def _terminology_kind(resource_type: str, model: type[TerminologyRow], what: str) -> ResourceKind:
    return ResourceKind(
        resource_type=resource_type,
        model=model,
        capabilities=SearchCapabilities(
            params={
                **COMMON_PARAMS,
                "url": SearchParamDef("url", "uri", f"The canonical URL of the {what}"),
                "version": SearchParamDef("version", "token", f"The business version of the {what}"),
                "name": SearchParamDef("name", "string", "Computer-friendly name (starts with, case-insensitive)"),
                "status": SearchParamDef("status", "token", "draft | active | retired | unknown"),
            },
            sorts=("_lastUpdated", "name"),
        ),
        filters={
            **_common_filters(model),
            "url": uri_filter(model.url),
            "version": token_filter(model.version),
            "name": string_filter(model.name, model.name_folded),
            "status": token_filter(model.status),
        },
        sort_columns={"_lastUpdated": model.last_updated, "name": func.coalesce(model.name_folded, "")},
        index=_index_terminology,
    )


VALUE_SET = _terminology_kind("ValueSet", ValueSetRow, "value set")
CODE_SYSTEM = _terminology_kind("CodeSystem", CodeSystemRow, "code system")
