"""Server-side sessions for the clinician app: the browser holds a signed random id, the server holds the rest.

The EHR's access token must never reach the browser, so Flask's default cookie session (signed, readable)
will not do. Sessions are JSON files in PROMS_APP_SESSION_DIR (owner-only), which every gunicorn worker on
the host shares; each carries its own expiry. Only requests under /app get a session at all.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadSignature, Signer
from werkzeug.datastructures import CallbackDict

COOKIE = "proms_app_session"
COOKIE_PATH = "/app"
EXPIRES = "_expires"
DEFAULT_LIFETIME = 30 * 60  # until the launch completes, or when the token does not say
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{40,64}$")


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """A session whose data stays on the server; ``rotate()`` gives it a new id (on sign-in)."""

    def __init__(self, initial: Mapping[str, Any] | None = None, sid: str | None = None) -> None:
        def changed(_: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(initial, changed)
        self.sid = sid
        self.new = sid is None
        self.modified = False
        self.rotated = False

    def rotate(self) -> None:
        self.rotated = True
        self.modified = True


class FileSessionStore:
    """Session data as one owner-only JSON file per session id."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, sid: str) -> Path:
        return self.directory / f"{sid}.json"

    def load(self, sid: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(sid).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or float(data.get(EXPIRES, 0)) < time.time():
            self.delete(sid)
            return None
        return data

    def save(self, sid: str, data: Mapping[str, Any]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.directory / f".{sid}.{secrets.token_hex(4)}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle)
        os.replace(temporary, self._path(sid))  # readers never see half a session

    def delete(self, sid: str) -> None:
        self._path(sid).unlink(missing_ok=True)

    def purge_expired(self) -> None:
        if not self.directory.is_dir():
            return
        now = time.time()
        for path in self.directory.glob("*.json"):
            try:
                expired = float(json.loads(path.read_text()).get(EXPIRES, 0)) < now
            except (OSError, ValueError, AttributeError):
                expired = True
            if expired:
                path.unlink(missing_ok=True)


class ServerSessionInterface(SessionInterface):
    """Flask's session for /app, kept server-side; other paths get Flask's null session."""

    def __init__(self, store: FileSessionStore, secret_key: str | None, *, secure: bool) -> None:
        self.store = store
        self.signer = Signer(secret_key, salt="proms-app-session") if secret_key else None
        self.secure = secure

    def issue(self, data: Mapping[str, Any]) -> str:
        """Store a new session and return the cookie value naming it (used at sign-in, and by tests)."""
        assert self.signer is not None
        sid = secrets.token_urlsafe(32)
        self.store.save(sid, {EXPIRES: time.time() + DEFAULT_LIFETIME, **data})
        return self.signer.sign(sid).decode()

    def open_session(self, app: Flask, request: Request) -> ServerSession | None:
        if self.signer is None or not request.path.startswith(COOKIE_PATH):
            return None  # Flask substitutes its null session
        cookie = request.cookies.get(COOKIE)
        if cookie:
            try:
                sid = self.signer.unsign(cookie).decode()
            except BadSignature:
                sid = ""
            data = self.store.load(sid) if _SESSION_ID.match(sid) else None
            if data is not None:
                return ServerSession(data, sid)
        return ServerSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession) and self.signer is not None
        if not session.modified:
            return
        if not session:
            if session.sid is not None:
                self.store.delete(session.sid)
                response.delete_cookie(COOKIE, path=COOKIE_PATH)
            return
        if session.sid is not None and session.rotated:
            self.store.delete(session.sid)  # the pre-sign-in id must not stay valid (session fixation)
        sid = session.sid if session.sid is not None and not session.rotated else secrets.token_urlsafe(32)
        data = dict(session)
        data.setdefault(EXPIRES, time.time() + DEFAULT_LIFETIME)
        if session.sid is None:
            self.store.purge_expired()  # new sessions are rare enough to pay for tidying up
        self.store.save(sid, data)
        if sid != session.sid:
            response.set_cookie(
                COOKIE,
                self.signer.sign(sid).decode(),
                path=COOKIE_PATH,
                httponly=True,
                secure=self.secure or request.is_secure,
                samesite="Lax",
            )
