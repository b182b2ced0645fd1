"""A real notification endpoint on loopback for the tests: records every POST, and can fail, stall or go away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


def notification_type(bundle: dict[str, Any]) -> str:
    parameters = bundle["entry"][0]["resource"]["parameter"]
    return str(next(p["valueCode"] for p in parameters if p["name"] == "type"))


def event_numbers(bundle: dict[str, Any]) -> list[int]:
    parameters = bundle["entry"][0]["resource"]["parameter"]
    return [
        int(part["valueString"])
        for p in parameters
        if p["name"] == "notification-event"
        for part in p["part"]
        if part["name"] == "event-number"
    ]


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a sender killed mid-request leaves a broken connection behind; that is the point


class Receiver:
    """Answers 200 unless told to fail (``status``) or to hold a request (``stall_on_event``)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.stall_on_event: int | None = None
        self.stall_seconds = 0.0
        self.stalling = threading.Event()  # set while a request is being held
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if receiver.stall_on_event is not None and receiver.stall_on_event in event_numbers(body):
                    # Held, then dropped: as if the endpoint never got it (its sender dies meanwhile).
                    receiver.stalling.set()
                    time.sleep(receiver.stall_seconds)
                    self.close_connection = True
                    return
                with receiver._lock:
                    status = receiver.status
                    if status < 300:
                        receiver.received.append(body)
                        receiver.headers.append(dict(self.headers.items()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = QuietServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Go away: connections are refused until ``start`` (on the same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def bundles(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [b for b in self.received if kind is None or notification_type(b) == kind]

    def event_numbers(self) -> list[int]:
        return [n for bundle in self.bundles("event-notification") for n in event_numbers(bundle)]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received {[notification_type(b) for b in self.bundles()]}")
            time.sleep(0.02)
