"""`pipeline.sources.guard`: which addresses a download may connect to, checked on the address each
connection uses (every redirect hop, no DNS rebinding), with an injected resolver instead of DNS."""

from __future__ import annotations

import os
import re
import socket

import pytest
import requests

from pipeline.core.errors import NetworkError
from pipeline.sources.guard import AddressGuard, AddressRefused, GuardedAdapter, classify, system_resolver
from pipeline.sources.http import Fetcher, HttpOptions
from tests.sources.servers import LocalServer, Route

BLOB = os.urandom(4096)


def fast(**kw) -> HttpOptions:
    return HttpOptions(**{**dict(allow_private=True, retries=0, connect_timeout=2, read_timeout=3), **kw})


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def test_guard_refuses_loopback_before_connecting(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB)
    with Fetcher(fast(allow_private=False)) as f, pytest.raises(AddressRefused):
        f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert server.requests["/a.bin"] == 0 and not (tmp_path / "a.bin").exists()


def test_guard_checks_resolved_names_and_redirect_hops(server, tmp_path):
    # A test name resolving to a private address is refused at connect time (no packet leaves the machine).
    names = {"public.test": ["127.0.0.1"], "intranet.test": ["10.1.2.3"]}
    resolver = lambda host, port: names[host]  # noqa: E731
    server.routes["/a.bin"] = Route(BLOB)
    guard = AddressGuard(resolver=resolver)
    with pytest.raises(AddressRefused, match="private"):
        guard.addresses("intranet.test", 80)
    with pytest.raises(AddressRefused, match="loopback"):
        guard.addresses("public.test", 80)
    # allowed on loopback: a redirect to a name resolving to a private address is refused on that hop
    port = server.server_address[1]
    server.routes["/hop"] = Route(b"", status=302, headers={"Location": f"http://intranet.test:{port}/a.bin"})
    with Fetcher(fast(resolver=lambda h, p: {"site.test": ["127.0.0.1"], **names}[h])) as f:
        f.guard.allow_private = False
        f.guard.refusal = lambda ip: None if ip == "127.0.0.1" else classify(ip)  # only our server is allowed
        with pytest.raises(AddressRefused, match="10.1.2.3"):
            f.download(f"http://site.test:{port}/hop", tmp_path / "a.bin")
    assert server.requests["/hop"] == 1 and server.requests["/a.bin"] == 0


@pytest.mark.parametrize(
    "ip, why",
    [("127.0.0.1", "loopback"), ("10.0.0.1", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
     ("::1", "loopback"), ("fe80::1", "link-local"), ("::ffff:127.0.0.1", "loopback"), ("224.0.0.1", "multicast"),
     ("0.0.0.0", "unspecified"), ("100.64.0.1", "non-global"),  # carrier-grade NAT (RFC 6598)
     ("2002:7f00:1::1", "loopback"),  # 6to4 wrapping 127.0.0.1
     ("64:ff9b::10.0.0.1", "private"),  # NAT64 wrapping 10.0.0.1
     ("2001:0::1", "reserved"), ("8.8.8.8", None), ("2606:4700::1111", None)],
)
def test_classify_table(ip, why):
    assert classify(ip) == why


def test_guard_refuses_other_schemes():
    with pytest.raises(AddressRefused, match="scheme"):
        AddressGuard(allow_private=True).check_url("file:///etc/passwd")


@pytest.mark.parametrize("ip, allowed", [
    ("127.0.0.1", True), ("10.0.0.1", True), ("169.254.169.254", True), ("100.64.0.1", True),
    ("224.0.0.1", False), ("0.0.0.0", False), ("2001:0::1", False),  # never, even with allow_private
])
def test_allow_private_opens_local_networks_only(ip: str, allowed: bool) -> None:
    assert (AddressGuard(allow_private=True).refusal(ip) is None) == allowed
    assert AddressGuard().refusal(ip) == classify(ip)


@pytest.mark.parametrize("url, words", [
    ("http:///path", "no host in the URL"),
    ("http://10.0.0.8/x.png", "refused private address 10.0.0.8"),
    ("https://[::1]:8443/", "refused loopback address ::1"),
])
def test_check_url_refuses_literal_addresses_and_missing_hosts(url: str, words: str) -> None:
    with pytest.raises(AddressRefused, match=re.escape(words)):
        AddressGuard().check_url(url)


def test_check_url_leaves_names_to_the_connection() -> None:
    calls = []
    guard = AddressGuard(resolver=lambda host, port: calls.append(host) or ["10.0.0.1"])
    guard.check_url("http://intranet.test/a.png")  # no refusal yet: nothing is resolved here
    assert calls == []
    with pytest.raises(AddressRefused, match="resolves to private address 10.0.0.1"):
        guard.addresses("intranet.test", 80)
    assert calls == ["intranet.test"]


def test_one_refused_address_refuses_the_name() -> None:
    guard = AddressGuard(resolver=lambda host, port: ["8.8.8.8", "192.168.0.9"])
    with pytest.raises(AddressRefused, match="192.168.0.9"):
        guard.addresses("mixed.test", 443)


def test_a_name_without_addresses_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="resolves to no address"):
        AddressGuard(resolver=lambda host, port: []).addresses("void.test", 80)


def test_bracketed_literals_skip_the_resolver() -> None:
    guard = AddressGuard(allow_private=True, resolver=lambda host, port: pytest.fail("resolver called"))
    assert guard.addresses("[::1]", 80) == ["::1"] and guard.addresses("127.0.0.1", 80) == ["127.0.0.1"]


def test_system_resolver_names_an_unknown_host(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(NetworkError, match="no-such-host.test: cannot resolve the host name"):
        system_resolver("no-such-host.test", 80)


def test_system_resolver_deduplicates_in_order(monkeypatch) -> None:
    infos = [(socket.AF_INET, 1, 6, "", ("1.2.3.4", 80)), (socket.AF_INET6, 1, 6, "", ("fe80::1%eth0", 80, 0, 2)),
             (socket.AF_INET, 1, 6, "", ("1.2.3.4", 80))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
    assert system_resolver("x.test", 80) == ["1.2.3.4", "fe80::1"]  # zone index dropped


def test_a_plain_requests_session_with_the_adapter_is_guarded(server) -> None:
    server.routes["/a.bin"] = Route(BLOB)
    with requests.Session() as s:
        s.mount("http://", GuardedAdapter(AddressGuard()))
        with pytest.raises(AddressRefused, match="127.0.0.1: refused, resolves to loopback address 127.0.0.1"):
            s.get(server.url("/a.bin"), timeout=5)  # raised when the socket would open: nothing sent
    assert server.requests["/a.bin"] == 0
    with requests.Session() as s:
        s.mount("http://", GuardedAdapter(AddressGuard(allow_private=True)))
        assert s.get(server.url("/a.bin"), timeout=5).content == BLOB
