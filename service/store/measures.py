"""Measure look-ups: by canonical url (and version), as the library loader and $evaluate-measure resolve them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import MeasureRow


def find_by_canonical(session: Session, url: str, version: str | None) -> MeasureRow | None:
    """The live Measure a canonical names: the exact version, or the most recently updated one of the url."""
    query = select(MeasureRow).where(MeasureRow.url == url, MeasureRow.deleted.is_(False))
    if version is not None:
        return session.scalars(query.where(MeasureRow.version == version)).one_or_none()
    return session.scalars(query.order_by(MeasureRow.last_updated.desc()).limit(1)).one_or_none()
