"""What the store knows of each resource type: its table, its search columns and its search parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select

from service.fhir.dates import InvalidDate, date_range
from service.fhir.search import Criterion, SearchCapabilities, SearchParamDef, TokenValue
from service.store.filters import (
    Column,
    Filter,
    canonical_filter,
    date_filter,
    fold,
    reference_filter,
    string_filter,
    token_filter,
    uri_filter,
)
from service.store.models import QuestionnaireCode, QuestionnaireResponseRow, QuestionnaireRow, ResourceRow

EARLIEST = datetime(1, 1, 1)


@dataclass(frozen=True)
class ResourceKind:
    resource_type: str
    model: type[ResourceRow]
    capabilities: SearchCapabilities
    filters: Mapping[str, Filter]
    sort_columns: Mapping[str, Column]
    index: Callable[[ResourceRow, Mapping[str, Any]], None]  # copy search columns from the resource to the row


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


# Questionnaire -------------------------------------------------------------------------------------------


def _questionnaire_code_filter(criterion: Criterion) -> ColumnElement[bool]:
    conditions = []
    for value in criterion.values:
        assert isinstance(value, TokenValue)
        query = select(QuestionnaireCode.pk).where(QuestionnaireCode.questionnaire_pk == QuestionnaireRow.pk)
        if value.code is not None:
            query = query.where(QuestionnaireCode.code == value.code)
        if value.system is not None:
            query = query.where(QuestionnaireCode.system == value.system)
        conditions.append(exists(query))
    return or_(*conditions)


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
    wanted = {
        (coding.get("system") or "", coding["code"])
        for coding in resource.get("code", [])
        if isinstance(coding, dict) and coding.get("code")
    }
    row.codes = [QuestionnaireCode(system=system, code=code) for system, code in sorted(wanted)]


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
        "code": _questionnaire_code_filter,
    },
    sort_columns={
        "_lastUpdated": QuestionnaireRow.last_updated,
        "name": QuestionnaireRow.name_folded,
        "title": QuestionnaireRow.title_folded,
    },
    index=_index_questionnaire,
)


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
    low: datetime | None = None
    high: datetime | None = None
    if isinstance(authored, str):
        try:
            low, high = date_range(authored)
        except InvalidDate:
            low = high = None
    row.authored_low, row.authored_high = low, high
    row.authored_key = low or EARLIEST
    identifier = resource.get("identifier")
    if isinstance(identifier, dict):
        row.identifier_system = identifier.get("system")
        row.identifier_value = identifier.get("value")
    else:
        row.identifier_system = row.identifier_value = None


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
)

KINDS: Mapping[str, ResourceKind] = {kind.resource_type: kind for kind in (QUESTIONNAIRE, QUESTIONNAIRE_RESPONSE)}
