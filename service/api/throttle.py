"""Refused authentications are throttled per client address, so that they cannot fill the audit log.

Each refused bearer token (401) counts against the caller's address (``PROMS_AUTH_FAILURE_LIMIT``, e.g.
20/minute). Past the limit every request from that address is answered 429 until the window passes, and those
refusals are recorded once per window in one AuditEvent instead of one each. The counts live in the ``limits``
library's storage (``PROMS_RATE_LIMIT_STORAGE``): ``memory://`` keeps them per process, so with N workers an
address may fail up to N times the limit; ``redis://...`` shares them between the workers and nodes.
"""

from __future__ import annotations

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from service.config import Settings

_REPORT = parse("1/minute")


class AuthFailureThrottle:
    def __init__(self, settings: Settings) -> None:
        self._limiter = FixedWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self._limit: RateLimitItem = parse(settings.auth_failure_limit)

    @property
    def limit(self) -> str:
        return str(self._limit)

    def blocked(self, address: str) -> bool:
        """Whether this address has used up its refused authentications for the window."""
        return not self._limiter.test(self._limit, "auth-failures", address)

    def refused(self, address: str) -> None:
        """Count one refused authentication from this address."""
        self._limiter.hit(self._limit, "auth-failures", address)

    def first_in_window(self, address: str) -> bool:
        """True once per reporting window for this address: when its throttling is to be recorded."""
        return self._limiter.hit(_REPORT, "auth-throttled", address)


class LinkFailureThrottle:
    """Completion links that open nothing (an unknown token), counted per client address
    (``PROMS_LINK_FAILURE_LIMIT``): past the limit the address is answered 429 until the window passes, so that
    tokens cannot be guessed at speed. Kept in the same storage as the refused authentications."""

    def __init__(self, settings: Settings) -> None:
        self._limiter = FixedWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self._limit: RateLimitItem = parse(settings.link_failure_limit)

    def blocked(self, address: str) -> bool:
        return not self._limiter.test(self._limit, "link-failures", address)

    def failed(self, address: str) -> None:
        self._limiter.hit(self._limit, "link-failures", address)
