"""Look-ups of stored QuestionnaireResponses by what identifies them outside the service."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import QuestionnaireResponseRow


def holder_of_identifier(session: Session, system: str | None, value: str) -> str | None:
    """The id of the live response holding this business identifier (whoever it belongs to), or None."""
    QR = QuestionnaireResponseRow
    return session.scalar(
        select(QR.id).where(
            QR.identifier_value == value, QR.identifier_system_key == (system or ""), QR.deleted.is_(False)
        )
    )
