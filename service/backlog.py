"""The figures the worker's metrics read from the database at each scrape: what waits, and what is stuck."""

from __future__ import annotations

from service.fhir.dates import utcnow
from service.observability import DatabaseFigures
from service.services import Services
from service.store import exports, outbox


def database_figures(services: Services) -> DatabaseFigures:
    """The outbox backlog and its oldest event's age, subscriptions in error, exports by status: a few indexed
    counts in one read, cheap enough for every scrape."""
    with services.db.read_session() as session:
        unmatched, oldest_unmatched = outbox.unmatched_backlog(session)
        undelivered, oldest_undelivered = outbox.undelivered_backlog(session)
        in_error = outbox.subscriptions_in_error(session)
        by_status = exports.jobs_by_status(session)
    waiting = [moment for moment in (oldest_unmatched, oldest_undelivered) if moment is not None]
    age = max(0.0, (utcnow() - min(waiting)).total_seconds()) if waiting else 0.0
    return DatabaseFigures(
        unmatched_events=unmatched,
        undelivered_events=undelivered,
        oldest_undelivered_seconds=age,
        subscriptions_in_error=in_error,
        exports=by_status,
    )
