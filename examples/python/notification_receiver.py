"""A subscription endpoint to try notifications with: prints each notification it receives and answers 200.

    python3 examples/python/notification_receiver.py [PORT]     # default: any free port

Its first line of output is its URL (http://127.0.0.1:PORT/notify), to give as a Subscription's
channel.endpoint; then one line per notification: its type (handshake, heartbeat, event-notification), the
subscription's status, the event numbers and the resources it is about. Standard library only. A real receiver
answers 2xx only once it has stored the notification, and ignores event numbers it already holds (delivery is
at least once).
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _value(parameter: dict[str, Any]) -> Any:
    return next((value for key, value in parameter.items() if key.startswith("value")), None)


def summary(bundle: dict[str, Any]) -> str:
    """One line about a notification Bundle: its first entry is the SubscriptionStatus (a Parameters)."""
    status = bundle["entry"][0]["resource"]
    parameters = {p["name"]: p for p in status.get("parameter", [])}
    events = [
        {part["name"]: _value(part) for part in p.get("part", [])}
        for p in status.get("parameter", [])
        if p["name"] == "notification-event"
    ]
    numbers = ",".join(str(event.get("event-number")) for event in events) or "-"
    focus = " ".join(str((event.get("focus") or {}).get("reference", "")) for event in events).strip()
    return (
        f"{_value(parameters['type'])} status={_value(parameters['status'])} "
        f"events={numbers} since-start={_value(parameters['events-since-subscription-start'])} {focus}".rstrip()
    )


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            line = summary(json.loads(body))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            line = f"not a notification Bundle ({exc})"
        print(line, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per notification is enough


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Receiver)
    print(f"http://127.0.0.1:{server.server_address[1]}/notify", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
