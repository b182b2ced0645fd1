"""Where notifications may be sent: never to the service's own network, unless an operator says so.

A subscriber names an endpoint; the worker then connects to it from inside the service's network. So an
endpoint's addresses are checked when the subscription is set up and again at every connection, after the
name is resolved (the address connected to is the one checked: no second look-up for a rebinding name to
change), and redirects are not followed. Private, loopback, link-local (cloud metadata at 169.254.169.254),
shared, reserved and multicast addresses are refused; loopback is allowed only in development (authentication
off); PROMS_SUBSCRIPTION_ALLOWED_NETWORKS lets an operator allow the networks of their own integration engines.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from service.config import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EndpointPolicy:
    allowed_networks: tuple[Network, ...] = ()
    loopback: bool = False  # development only

    @classmethod
    def of(cls, settings: Settings) -> EndpointPolicy:
        networks = tuple(ipaddress.ip_network(text, strict=False) for text in settings.subscription_allowed_networks)
        return cls(networks, loopback=settings.auth_mode == "none")

    def allows(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return True
        if address.is_loopback:
            return self.loopback
        return address.is_global and not address.is_multicast


def _resolved(host: str, port: int) -> list[tuple[Any, ...]]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def refused_address(endpoint: str, policy: EndpointPolicy) -> bool:
    """Whether the endpoint's host resolves, now, to an address notifications may not go to (a name that does not
    resolve yet is left to the connection, which checks again)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    try:
        found = _resolved(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError, ValueError):
        return False
    return any(not policy.allows(ipaddress.ip_address(info[4][0])) for info in found)


class _Guarded(HTTPConnection):
    policy = EndpointPolicy()

    def _new_conn(self) -> socket.socket:
        try:
            found = _resolved(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NewConnectionError(self, f"the endpoint's name does not resolve: {exc}") from exc
        allowed = [info for info in found if self.policy.allows(ipaddress.ip_address(info[4][0]))]
        if not allowed:
            raise NewConnectionError(self, "the endpoint resolves only to addresses notifications may not go to")
        error: OSError | None = None
        for family, kind, protocol, _, address in allowed:
            sock = socket.socket(family, kind, protocol)
            try:
                if self.timeout is not None and isinstance(self.timeout, int | float):
                    sock.settimeout(self.timeout)
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise NewConnectionError(self, f"the endpoint could not be reached: {error}")


def _connection_classes(policy: EndpointPolicy) -> tuple[type[HTTPConnection], type[HTTPSConnection]]:
    guarded_http = type("GuardedHTTPConnection", (_Guarded,), {"policy": policy})
    # HTTPSConnection wraps the socket _new_conn returns, verifying the certificate against the endpoint's name.
    guarded_https = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), {"policy": policy})
    return guarded_http, guarded_https


class GuardedAdapter(HTTPAdapter):
    """A requests transport that connects only to addresses the policy allows."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self._classes = _connection_classes(policy)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http, https = self._classes
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }


def notification_session(policy: EndpointPolicy, headers: Iterable[tuple[str, str]] = ()) -> requests.Session:
    """The HTTP session notifications are posted with: guarded connections, no proxies or credentials from the
    environment (``trust_env`` off)."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(dict(headers))
    return session
