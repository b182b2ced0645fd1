"""The gunicorn worker the service runs: gthread, taking a new connection only while it has a free thread.

gunicorn's gthread workers share one listening socket and each accepts whatever connection it sees first, up to
``worker_connections`` (1000). Clients that keep their connections alive (EHR integrations, a reverse proxy's
upstream pool) open them in a burst, so one worker can end up holding all of them while another sits idle:
half the machine unused, for as long as the connections live. This worker stops accepting while all its threads
are busy, so a burst of connections spreads over the workers; connections it already holds are served as usual.
So that a new connection is never starved while every worker stays busy with the ones it holds, a worker that
has refused for ``MAX_REFUSAL_SECONDS`` takes one anyway.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

MAX_REFUSAL_SECONDS = 0.05


class FreeThreadWorker(ThreadWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._busy = 0  # requests handed to the thread pool and not finished
        self._connection_limit = 0
        self._refusing_since: float | None = None
        super().__init__(*args, **kwargs)

    @property
    def worker_connections(self) -> int:
        # gthread's loop accepts while nr_conns < worker_connections: with every thread busy, not at all (for a
        # while: then one connection is let in, and the wait starts again).
        if self._busy < self.cfg.threads:
            self._refusing_since = None
            return self._connection_limit
        now = time.monotonic()
        if self._refusing_since is None:
            self._refusing_since = now
        elif now - self._refusing_since >= MAX_REFUSAL_SECONDS:
            self._refusing_since = now
            return self._connection_limit
        return int(self.nr_conns)

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._connection_limit = value

    def enqueue_req(self, conn: Any) -> None:
        self._busy += 1
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Future[Any]) -> None:
        self._busy -= 1
        super().finish_request(conn, fs)
