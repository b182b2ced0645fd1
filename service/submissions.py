"""Submitting a QuestionnaireResponse: resolve its Questionnaire, then (one seam) validate, score, extract."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.fhir.errors import BadRequest, Unprocessable
from service.fhir.issues import Issue
from service.interactions import Prepared
from service.store import questionnaires as store
from service.store.models import QuestionnaireRow, ResourceRow

RESPONSE_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")


def resolve_questionnaire(session: Session, canonical: str, base_url: str) -> QuestionnaireRow | None:
    """A response's ``questionnaire``: ``url|version``, ``url`` (the latest version), or ``Questionnaire/id``."""
    local_prefix = base_url.rstrip("/") + "/Questionnaire/"
    if canonical.startswith(local_prefix) or canonical.startswith("Questionnaire/"):
        by_id = store.find_by_id(session, canonical.rsplit("/", 1)[-1].split("|")[0])
        if by_id is not None:
            return by_id
    url, _, version = canonical.partition("|")
    return store.find_by_canonical(session, url, version or None)


class QuestionnaireResponseRules:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def prepare_create(self, session: Session, resource: dict[str, Any]) -> Prepared:
        return self._prepare(session, resource)

    def prepare_update(
        self, session: Session, row: ResourceRow, current: dict[str, Any] | None, resource: dict[str, Any]
    ) -> Prepared:
        return self._prepare(session, resource)

    def check_delete(self, session: Session, row: ResourceRow) -> None:
        return None

    def _prepare(self, session: Session, resource: dict[str, Any]) -> Prepared:
        status = resource.get("status")
        if status not in RESPONSE_STATUSES:
            raise BadRequest(
                Issue(
                    "error",
                    "code-invalid",
                    f"QuestionnaireResponse.status must be one of {', '.join(RESPONSE_STATUSES)}, got {status!r}",
                    "QuestionnaireResponse.status",
                )
            )
        canonical = resource.get("questionnaire")
        if not canonical:
            raise Unprocessable(
                Issue(
                    "error",
                    "required",
                    "QuestionnaireResponse.questionnaire is required: name the Questionnaire answered by its "
                    "canonical url|version",
                    "QuestionnaireResponse.questionnaire",
                )
            )
        questionnaire = resolve_questionnaire(session, str(canonical), self.base_url)
        if questionnaire is None:
            raise Unprocessable(
                Issue(
                    "error",
                    "not-found",
                    f"QuestionnaireResponse.questionnaire {canonical!r} does not resolve to a stored "
                    "Questionnaire; load the Questionnaire first (GET /fhir/Questionnaire lists them)",
                    "QuestionnaireResponse.questionnaire",
                )
            )
        # Validation, scoring and extraction of the response join here, with the resolved Questionnaire.
        return Prepared(resource, columns={"questionnaire_pk": questionnaire.pk})
