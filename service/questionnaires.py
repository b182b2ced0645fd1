"""Questionnaire business rules (canonical identity, immutability once active) and loading the library."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.auth.access import UNRESTRICTED
from service.fhir import jsonio
from service.fhir.errors import BadRequest, Conflict, FhirError, Unprocessable
from service.fhir.issues import Issue
from service.fhir.parse import validate_structure
from service.interactions import NoDerivedWrites, Prepared, ResourceInteractions
from service.scoring import compile_questionnaire
from service.store import questionnaires as store
from service.store.models import QuestionnaireRow, ResourceRow

PUBLICATION_STATUSES = ("draft", "active", "retired", "unknown")
# What scoring and validation depend on: an active Questionnaire may not change these in place.
SCORING_ELEMENTS = ("url", "version", "item", "contained", "extension")


class QuestionnaireRules(NoDerivedWrites):
    def prepare_create(self, session: Session, resource: dict[str, Any]) -> Prepared:
        self._check(resource)
        return Prepared(resource)

    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared:
        self._check(resource)
        if current is not None and current.get("status") == "active":
            changed = [name for name in SCORING_ELEMENTS if current.get(name) != resource.get(name)]
            if changed:
                raise Conflict(
                    Issue(
                        "error",
                        "business-rule",
                        f"Questionnaire/{row.id} is active, so its {', '.join(changed)} cannot change in place: "
                        "publish the change as a new version (a new resource with a higher 'version'), "
                        "and retire this one if it should no longer be used",
                        f"Questionnaire.{changed[0]}",
                    )
                )
        return Prepared(resource)

    def check_delete(self, session: Session, row: ResourceRow) -> None:
        assert isinstance(row, QuestionnaireRow)
        if store.is_answered(session, row.pk):
            raise Conflict(
                f"Questionnaire/{row.id} has stored responses and cannot be deleted; set its status to "
                "'retired' instead",
                code="business-rule",
            )

    @staticmethod
    def _check(resource: dict[str, Any]) -> None:
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
        scoring_errors = [issue for issue in compile_questionnaire(resource) if issue.is_error]
        if scoring_errors:
            # A definition that cannot be scored would reject every response submitted to it.
            raise Unprocessable(scoring_errors)
        if not resource.get("url"):
            raise Unprocessable(
                Issue(
                    "error",
                    "required",
                    "Questionnaire.url is required here: responses name their Questionnaire by its canonical "
                    "url (and version)",
                    "Questionnaire.url",
                )
            )


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def definition_files(directory: Path) -> Iterator[Path]:
    """Every instrument definition in a library folder: ``<dir>/<instrument>/questionnaire.json``."""
    yield from sorted(directory.glob("*/questionnaire.json"))


def read_definition(path: Path) -> dict[str, Any]:
    resource = jsonio.loads_object(path.read_bytes())
    validate_structure(resource, "Questionnaire")
    return resource


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key not in ("meta", "id")}


def load_library(interactions: ResourceInteractions, directory: Path) -> LoadReport:
    """Store each definition that is new or changed; loading the same folder twice changes nothing."""
    report = LoadReport()
    for path in definition_files(directory):
        label = str(path.parent.name)
        try:
            resource = read_definition(path)
            with interactions.db.read_session() as session:
                existing = store.find_by_canonical(session, resource["url"], resource.get("version"))
                existing_id = existing.id if existing else None
                existing_json = existing.resource_json if existing else None
                id_taken = (
                    existing is None
                    and bool(resource.get("id"))
                    and store.find_by_id(session, str(resource["id"])) is not None
                )
            if existing_id is not None and existing_json is not None:
                current = jsonio.loads_object(existing_json.encode())
                if _comparable(current) == _comparable(resource):
                    report.unchanged.append(label)
                    continue
                interactions.update(existing_id, {**resource, "id": existing_id}, if_match=None, grant=UNRESTRICTED)
                report.updated.append(label)
                continue
            if resource.get("id") and not id_taken:
                interactions.update(str(resource["id"]), resource, if_match=None, grant=UNRESTRICTED)
            else:
                interactions.create({k: v for k, v in resource.items() if k != "id"}, grant=UNRESTRICTED)
            report.created.append(label)
        except FhirError as exc:
            report.failed.append((label, str(exc)))
    return report
