"""Address guard: which hosts a download or a crawl may connect to.

By default only globally routable unicast addresses are allowed. Loopback, private (RFC 1918,
unique-local), link-local (which includes cloud metadata services at 169.254.169.254), shared
(CGNAT), multicast, reserved and unspecified addresses are refused. `allow_private=True`
additionally allows loopback, private and link-local addresses (tests use it on 127.0.0.1);
multicast, unspecified and reserved addresses stay refused.

The check runs where the socket is opened (`GuardedAdapter` plugs into requests/urllib3), on
the very address the connection uses, so every redirect hop and every retry is checked and a
host name cannot resolve to one address when checked and another when connected (DNS
rebinding). The resolver is injectable so tests can map a name to any address without DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from pipeline.core.errors import NetworkError

# host, port -> list of IP address strings
Resolver = Callable[[str, int], list[str]]

SCHEMES = ("http", "https")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(NetworkError):
    """A URL whose scheme or address the guard refuses; no packet was sent to it."""

    reason = "refused-address"


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses `host` resolves to (IPv4 and IPv6), in the resolver's order, deduplicated."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NetworkError(f"{host}: cannot resolve the host name ({exc.strerror})",
                           fix="check the URL and your network") from exc
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = str(sockaddr[0]).split("%")[0]
        if ip not in seen:
            seen.append(ip)
    return seen


def classify(ip: str) -> str | None:
    """Why `ip` is not a public address ('loopback', 'private', ...), or None when it is."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        # IPv4 embedded in IPv6 (mapped, 6to4, NAT64 well-known prefix) is judged by its IPv4 address
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        elif addr.sixtofour is not None:
            addr = addr.sixtofour
        elif addr in _NAT64:
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        elif addr.teredo is not None:
            return "reserved"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_multicast:
        return "multicast"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_private:
        return "private"
    if addr.is_reserved:
        return "reserved"
    if not addr.is_global:
        return "non-global"
    return None


class AddressGuard:
    """Decides whether a URL may be fetched and which addresses a connection may use."""

    def __init__(self, *, allow_private: bool = False, resolver: Resolver | None = None) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or system_resolver

    def refusal(self, ip: str) -> str | None:
        """The reason `ip` is refused under this guard, or None when allowed."""
        why = classify(ip)
        if why is None:
            return None
        if self.allow_private and why in ("loopback", "private", "link-local", "non-global"):
            return None
        return why

    def check_url(self, url: str) -> None:
        """Refuse non-http(s) URLs and literal addresses the guard refuses (host names are checked on connect)."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in SCHEMES:
            raise AddressRefused(f"{url}: only http and https URLs are fetched, got scheme {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise AddressRefused(f"{url}: no host in the URL")
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            return
        why = self.refusal(parts.hostname)
        if why:
            raise AddressRefused(f"{url}: refused {why} address {parts.hostname}",
                                 fix="add --allow-private to fetch from local or private networks")

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host` a connection may use; raises `AddressRefused` when any is refused."""
        try:
            ips = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            ips = list(self.resolver(host, port))
        if not ips:
            raise NetworkError(f"{host}: the host name resolves to no address")
        for ip in ips:
            why = self.refusal(ip)
            if why:
                raise AddressRefused(f"{host}: refused, resolves to {why} address {ip}",
                                     fix="add --allow-private to fetch from local or private networks")
        return ips


def _connect(conn: HTTPConnection, guard: AddressGuard):
    """Open the socket of `conn` to an address the guard allows (same errors as urllib3's own)."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    ips = guard.addresses(conn._dns_host, conn.port)  # raises before any packet is sent
    last: OSError | None = None
    for ip in ips:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for opt in conn.socket_options or ():
                sock.setsockopt(*opt)
            if isinstance(conn.timeout, (int, float)):
                sock.settimeout(conn.timeout)
            sock.connect((ip, conn.port))
            return sock
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})") from exc
        except OSError as exc:
            sock.close()
            last = exc
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


def _guarded_classes(guard: AddressGuard) -> dict[str, type]:
    def new_conn(self):
        return _connect(self, guard)

    http_conn = type("GuardedHTTPConnection", (HTTPConnection,), {"_new_conn": new_conn})
    https_conn = type("GuardedHTTPSConnection", (HTTPSConnection,), {"_new_conn": new_conn})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class GuardedAdapter(HTTPAdapter):
    """A requests transport adapter whose every connection goes through an `AddressGuard`."""

    def __init__(self, guard: AddressGuard, **kwargs) -> None:
        self.guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _guarded_classes(self.guard)
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)

    def __getstate__(self):  # pragma: no cover - adapters are not pickled in practice
        state = super().__getstate__()
        state["guard"] = self.guard
        return state
