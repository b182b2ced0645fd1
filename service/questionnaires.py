"""Publishing Questionnaires: create, change (an active one only as a new version), delete, and loading the library."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service import definitions
from service.auth.access import UNRESTRICTED, Grant
from service.definitions import definition_files
from service.fhir import jsonio
from service.fhir.errors import BadRequest, Conflict, FhirError, Unprocessable
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.fhir.versions import StoredVersion
from service.services import Services
from service.store import questionnaires as store
from service.store.access import check_body
from service.store.kinds import QUESTIONNAIRE
from service.store.models import QuestionnaireRow
from service.writes import (
    WriteResult,
    check_update_id,
    create,
    current_resource,
    delete,
    insert,
    refusing_conflicts,
    replace,
    row_to_delete,
    row_to_update,
)

PUBLICATION_STATUSES = ("draft", "active", "retired", "unknown")
# What scoring and validation depend on: an active Questionnaire may not change these in place.
SCORING_ELEMENTS = ("url", "version", "item", "contained", "extension")


def check_definition(resource: Mapping[str, Any]) -> list[Issue]:
    """What every stored Questionnaire must be: a publication status (else 400), then the definition check that
    `proms questionnaires check` makes; its problems (``refuse_errors`` decides about the errors)."""
    status = resource.get("status")
    if status not in PUBLICATION_STATUSES:
        raise BadRequest(
            Issue(
                "error",
                "code-invalid",
                f"Questionnaire.status must be one of {', '.join(PUBLICATION_STATUSES)}, got {status!r}",
                "Questionnaire.status",
            )
        )
    return definitions.check_definition(resource)


def refuse_errors(issues: list[Issue], current: Mapping[str, Any] | None, proposed: Mapping[str, Any]) -> list[Issue]:
    """Refuse a definition with errors (422, each one listed), since it could not be used as it should: a definition
    that cannot be scored would reject every response submitted to it. Except where the change leaves every element
    the check reads as it was stored (retiring an old definition, correcting its title): the errors were there
    before and stay there whether or not this change is made, so they are returned as warnings."""
    errors = [issue for issue in issues if issue.is_error]
    if not errors:
        return issues
    if current is None or any(current.get(name) != proposed.get(name) for name in SCORING_ELEMENTS):
        raise Unprocessable(errors)
    return [dataclasses.replace(issue, severity="warning") if issue.is_error else issue for issue in issues]


def _check_still_editable(resource_id: str, current: Mapping[str, Any] | None, proposed: Mapping[str, Any]) -> None:
    if current is None or current.get("status") != "active":
        return
    changed = [name for name in SCORING_ELEMENTS if current.get(name) != proposed.get(name)]
    if changed:
        raise Conflict(
            Issue(
                "error",
                "business-rule",
                f"Questionnaire/{resource_id} is active, so its {', '.join(changed)} cannot change in place: "
                "publish the change as a new version (a new resource with a higher 'version'), "
                "and retire this one if it should no longer be used",
                f"Questionnaire.{changed[0]}",
            )
        )


def publish_questionnaire(
    services: Services, resource: dict[str, Any], grant: Grant, *, if_none_exist: str | None = None
) -> WriteResult:
    """POST Questionnaire."""
    warnings = refuse_errors(check_definition(resource), None, resource)
    result = create(services, QUESTIONNAIRE, resource, grant, patient=None, if_none_exist=if_none_exist)
    return result if result.existing else dataclasses.replace(result, issues=warnings)


def update_questionnaire(
    services: Services, resource_id: str, resource: dict[str, Any], grant: Grant, *, if_match: int | None
) -> WriteResult:
    """PUT Questionnaire/{id}: a draft changes freely; an active one only in what scoring does not depend on."""
    check_update_id(QUESTIONNAIRE, resource_id, resource)
    check_body(QUESTIONNAIRE, grant, None)
    issues = check_definition(resource)  # before the transaction: it scores extreme answers
    with refusing_conflicts(QUESTIONNAIRE), services.db.transaction() as session:
        row = row_to_update(session, services, QUESTIONNAIRE, resource_id, grant, if_match=if_match)
        if row is None:
            warnings = refuse_errors(issues, None, resource)
            _, stored = insert(session, services, QUESTIONNAIRE, resource, grant, resource_id=resource_id)
            return WriteResult(stored, created=True, issues=warnings)
        current = current_resource(row)
        _check_still_editable(resource_id, current, resource)
        warnings = refuse_errors(issues, current, resource)
        stored = replace(session, services, QUESTIONNAIRE, row, resource, grant)
        return WriteResult(stored, created=False, issues=warnings)


def delete_questionnaire(services: Services, resource_id: str, grant: Grant) -> StoredVersion | None:
    """DELETE Questionnaire/{id}: only while no response refers to it (retire it otherwise)."""
    with refusing_conflicts(QUESTIONNAIRE, lost_race=Conflict), services.db.transaction() as session:
        row = row_to_delete(session, services, QUESTIONNAIRE, resource_id, grant)
        if row.deleted:
            return None
        assert isinstance(row, QuestionnaireRow)
        if store.is_answered(session, row.pk):
            raise Conflict(
                f"Questionnaire/{row.id} has stored responses and cannot be deleted; set its status to "
                "'retired' instead",
                code="business-rule",
            )
        return delete(session, QUESTIONNAIRE, row)


def definitions_named(services: Services, canonicals: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored Questionnaire each canonical names, as a response's ``questionnaire`` is resolved (``url|version``,
    ``url`` for the latest version, or ``Questionnaire/id``), by canonical; unknown ones are left out."""
    found: dict[str, dict[str, Any]] = {}
    with services.db.read_session() as session:
        for canonical in set(canonicals):
            ref = store.resolve_reference(session, canonical, services.settings.base_url)
            if ref is not None:
                found[canonical] = services.questionnaires.get(session, ref)
    return found


# the library -----------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def read_definition(path: Path) -> dict[str, Any]:
    resource = jsonio.parse_body(path.read_bytes())
    validate_structure(resource, "Questionnaire")
    return resource


def _comparable(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in ("meta", "id")}


def load_library(services: Services, directory: Path) -> LoadReport:
    """Store each definition that is new or changed; loading the same folder twice changes nothing."""
    report = LoadReport()
    for path in definition_files(directory):
        label = str(path.parent.name)
        try:
            resource = read_definition(path)
            with services.db.read_session() as session:
                existing = store.find_by_canonical(session, resource["url"], resource.get("version"))
                existing_id = existing.id if existing else None
                existing_json = existing.resource_json if existing else None
                id_taken = (
                    existing is None
                    and bool(resource.get("id"))
                    and store.find_by_id(session, str(resource["id"])) is not None
                )
            if existing_id is not None and existing_json is not None:
                if _comparable(jsonio.loads_object(existing_json.encode())) == _comparable(resource):
                    report.unchanged.append(label)
                    continue
                update_questionnaire(
                    services, existing_id, {**resource, "id": existing_id}, UNRESTRICTED, if_match=None
                )
                report.updated.append(label)
                continue
            if resource.get("id") and not id_taken:
                update_questionnaire(services, str(resource["id"]), resource, UNRESTRICTED, if_match=None)
            else:
                publish_questionnaire(services, {k: v for k, v in resource.items() if k != "id"}, UNRESTRICTED)
            report.created.append(label)
        except FhirError as exc:
            report.failed.append((label, str(exc)))
    return report
