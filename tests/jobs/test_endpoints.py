"""Notifications never reach the service's own network: addresses are checked when a subscription is set up and
at every connection, after the name is resolved; the reason a delivery failed is not told to the subscriber."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
import requests

from service.subscriptions.endpoints import EndpointPolicy, notification_session
from tests.conftest import Fhir
from tests.jobs.receiver import Receiver
from tests.jobs.test_delivery import subscription, wait_status


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),  # public
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("10.1.2.3", False),  # private
        ("192.168.0.9", False),
        ("172.16.5.5", False),
        ("169.254.169.254", False),  # link-local: cloud metadata
        ("100.64.0.1", False),  # shared address space
        ("127.0.0.1", False),  # loopback, outside development
        ("::1", False),
        ("::ffff:127.0.0.1", False),  # loopback written as IPv6
        ("fd00::1", False),  # unique local
        ("224.0.0.1", False),  # multicast
        ("0.0.0.0", False),
    ],
)
def test_which_addresses_notifications_may_go_to(address: str, allowed: bool) -> None:
    assert EndpointPolicy().allows(ipaddress.ip_address(address)) is allowed


def test_an_operator_allows_their_own_networks_and_development_allows_loopback() -> None:
    own = EndpointPolicy((ipaddress.ip_network("10.20.0.0/16"),))
    assert own.allows(ipaddress.ip_address("10.20.3.4"))
    assert not own.allows(ipaddress.ip_address("10.21.3.4"))
    assert not own.allows(ipaddress.ip_address("169.254.169.254"))
    assert EndpointPolicy(loopback=True).allows(ipaddress.ip_address("127.0.0.1"))
    assert not EndpointPolicy(loopback=True).allows(ipaddress.ip_address("10.0.0.1"))


def test_every_connection_is_checked_after_the_name_is_resolved(receiver: Receiver) -> None:
    port = receiver.url.rsplit(":", 1)[1].split("/", 1)[0]
    for url in (receiver.url, f"http://localhost:{port}/notify"):  # by address, and by a name for it
        with pytest.raises(requests.ConnectionError, match="addresses notifications may not go to"):
            notification_session(EndpointPolicy()).post(url, data=b"{}", timeout=3)
    before = len(receiver.received)
    assert notification_session(EndpointPolicy(loopback=True)).post(receiver.url, data=b"{}", timeout=3).ok
    allowed = EndpointPolicy((ipaddress.ip_network("127.0.0.0/8"),))
    assert notification_session(allowed).post(f"http://localhost:{port}/notify", data=b"{}", timeout=3).ok
    assert len(receiver.received) == before + 2


def test_a_failed_delivery_says_only_that_the_endpoint_could_not_be_reached(fhir: Fhir, worker: Any) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on (the test settings allow loopback)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    created = fhir.create(subscription(f"http://127.0.0.1:{port}/notify"))
    wait_status(fhir, created["id"], "error")
    status = fhir.get(f"Subscription/{created['id']}/$status").get_json()
    shown = str(status)
    assert "could not be reached" in shown
    assert "ConnectionError" not in shown and "Connection refused" not in shown and str(port) not in shown
