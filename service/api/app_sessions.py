"""Server-side sessions for the clinician app: the browser holds a random id, the database holds the rest.

The EHR's access token must never reach the browser, so Flask's default cookie session (signed, readable) will
not do. Flask-Session's server-side session interface does the HTTP part: the cookie (HttpOnly, SameSite=Lax,
Secure behind TLS, Path=/app, gone when the browser closes), a new id at sign-in (``regenerate``), loading and
saving only what changed. The data is kept in the service's database through the use cases
(``service.clinician_sessions``), so any web node serves any request of a session, and ending it (sign-out, a new
id) ends it on every node at once. Each session carries its own expiry (``_expires``): an expired session is
never loaded, and the worker deletes expired ones. The database holds a keyed hash of each id, never the id
itself. Only requests under /app get a session at all.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from flask import Flask, Request, Response, request
from flask.sessions import SessionMixin
from flask_session.base import (
    Serializer,
    ServerSideSession,
    ServerSideSessionInterface,
)

from service.clinician_sessions import end_session, load_session, save_session
from service.fhir.errors import DatabaseUnavailable
from service.services import Services

COOKIE = "proms_app_session"
COOKIE_PATH = "/app"
EXPIRES = "_expires"
DEFAULT_LIFETIME = 30 * 60  # until the launch completes, or when the token does not say


class AppSession(ServerSideSession):  # type: ignore[misc]
    """A session whose data stays on the server."""

    unavailable = False  # the database could not be read when the request began: nothing is saved


class JsonSerializer(Serializer):  # type: ignore[misc]
    """Session data as JSON: what the app keeps is JSON already, and nothing read back is ever unpickled."""

    def encode(self, session: ServerSideSession) -> bytes:
        return orjson.dumps(dict(session))

    def decode(self, serialized_data: bytes) -> dict[str, Any]:
        value = orjson.loads(serialized_data)
        return value if isinstance(value, dict) else {}


class DatabaseSessionInterface(ServerSideSessionInterface):  # type: ignore[misc]
    """Flask-Session's server-side sessions for /app, stored in the service's database; elsewhere Flask's null
    session."""

    session_class = AppSession
    # Expiry is kept per session (``_expires``) and checked on every load; the worker deletes expired rows, so
    # Flask-Session need not clean up during requests.
    ttl = True

    def __init__(self, app: Flask, services: Services, secret_key: str | None, *, secure: bool) -> None:
        app.config.update(
            SESSION_COOKIE_NAME=COOKIE,
            SESSION_COOKIE_PATH=COOKIE_PATH,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=secure,
            SESSION_REFRESH_EACH_REQUEST=False,  # written only when it changes, not on every page
        )
        super().__init__(app, key_prefix="", use_signer=False, permanent=False, sid_length=32)
        self.serializer = JsonSerializer()
        self.services = services
        # The id in the cookie is random (32 bytes); the database keys each session by an HMAC of it.
        self._key = secret_key.encode() if secret_key else None

    def issue(self, data: dict[str, Any]) -> str:
        """Store a new session holding ``data`` and return the cookie value naming it (a session that starts
        signed in: the tests' way to a launched app without an EHR)."""
        sid = self._generate_sid(self.sid_length)
        session = self.session_class({EXPIRES: time.time() + DEFAULT_LIFETIME, **data}, sid=sid)
        self._upsert_session(timedelta(seconds=DEFAULT_LIFETIME), session, self._get_store_id(sid))
        return str(sid)

    # where Flask-Session keeps the data: the service's database ----------------------------------------------

    def _get_store_id(self, sid: str) -> str:
        assert self._key is not None
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()

    def _retrieve_session_data(self, store_id: str) -> dict[str, Any] | None:
        data = load_session(self.services, store_id)
        return None if data is None else self.serializer.decode(data)

    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        if EXPIRES not in session:
            session[EXPIRES] = time.time() + DEFAULT_LIFETIME
        expires_at = datetime.fromtimestamp(float(session[EXPIRES]), UTC).replace(tzinfo=None)
        save_session(self.services, store_id, self.serializer.encode(session), expires_at)

    def _delete_session(self, store_id: str) -> None:
        end_session(self.services, store_id)

    # Flask's session interface ----------------------------------------------------------------------------

    def open_session(self, app: Flask, request: Request) -> AppSession | None:
        if self._key is None or not request.path.startswith(COOKIE_PATH):
            return None  # Flask substitutes its null session
        try:
            session: AppSession = super().open_session(app, request)
        except DatabaseUnavailable:
            session = self.session_class(sid=self._generate_sid(self.sid_length))
            session.unavailable = True  # the app's views answer 503 (service.api.smart_app)
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, AppSession)
        if not session.unavailable:
            super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)
