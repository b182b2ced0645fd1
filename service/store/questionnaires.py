"""Questionnaire look-ups the use cases need: resolving a canonical, and who still refers to one."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, defer, lazyload

from service.store.models import QuestionnaireResponseRow, QuestionnaireRow


def find_by_canonical(session: Session, url: str, version: str | None) -> QuestionnaireRow | None:
    """The live Questionnaire a canonical names: the exact version, or the most recently updated one.

    Its JSON is loaded only when read (within the session): callers that cache parsed Questionnaires by
    (id, version) skip it."""
    query = (
        select(QuestionnaireRow)
        .options(defer(QuestionnaireRow.resource_json), lazyload(QuestionnaireRow.codes))
        .where(QuestionnaireRow.url == url, QuestionnaireRow.deleted.is_(False))
    )
    if version is not None:
        return session.scalars(query.where(QuestionnaireRow.version == version)).one_or_none()
    return session.scalars(query.order_by(QuestionnaireRow.last_updated.desc()).limit(1)).one_or_none()


def find_by_id(session: Session, resource_id: str) -> QuestionnaireRow | None:
    return session.scalars(
        select(QuestionnaireRow)
        .options(defer(QuestionnaireRow.resource_json), lazyload(QuestionnaireRow.codes))
        .where(QuestionnaireRow.id == resource_id, QuestionnaireRow.deleted.is_(False))
    ).one_or_none()


def is_answered(session: Session, questionnaire_pk: int) -> bool:
    """Whether any live response refers to this Questionnaire."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    QuestionnaireResponseRow.questionnaire_pk == questionnaire_pk,
                    QuestionnaireResponseRow.deleted.is_(False),
                )
            )
        )
    )
