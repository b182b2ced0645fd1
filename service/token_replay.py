"""A CDS client's JWT is good for one call: its jti is remembered until the token expires, and a second use is
refused, on every node (the record is in the database)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from service.fhir.dates import utcnow
from service.services import Services
from service.store import token_uses

PRUNE_CHANCE = 0.01  # expired records are removed now and then, by whichever call happens to draw it


def first_use(services: Services, issuer: str, jti: str, expires: int) -> bool:
    """Record this use of (issuer, jti); False when it was used before."""
    expires_at = datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)
    try:
        with services.db.transaction() as session:
            if token_uses.seen(session, issuer, jti):
                return False
            token_uses.remember(session, issuer, jti, expires_at)
            if random.random() < PRUNE_CHANCE:
                token_uses.forget_expired(session, utcnow())
    except IntegrityError:
        return False  # another call with the same token got there first
    return True
