"""JWTs used once: the (issuer, jti) of each, kept until the token expires."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.store.models import TokenUse


def seen(session: Session, issuer: str, jti: str) -> bool:
    return session.scalar(select(TokenUse.jti).where(TokenUse.issuer == issuer, TokenUse.jti == jti)) is not None


def remember(session: Session, issuer: str, jti: str, expires_at: datetime) -> None:
    """Record a first use (the caller's transaction fails on a concurrent second use: the key is unique)."""
    session.add(TokenUse(issuer=issuer, jti=jti, expires_at=expires_at))
    session.flush()


def forget_expired(session: Session, now: datetime) -> None:
    session.execute(delete(TokenUse).where(TokenUse.expires_at < now))
