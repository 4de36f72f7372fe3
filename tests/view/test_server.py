"""Binding and addresses: a free port for --port 0, a token beyond loopback, one-line errors."""

from __future__ import annotations

import socket

import pytest

from pipeline.core.errors import UsageError
from pipeline.view.server import Address, bind, is_loopback


def test_port_zero_takes_a_free_port_and_a_busy_port_is_one_line() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # listening before the server runs: the printed address is good at once
        with pytest.raises(UsageError, match=f"--port {port}: cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        sock.close()


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("0.0.0.0", False), ("192.168.1.5", False), ("127.0.0.2", False)])
def test_only_the_loopback_names_go_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_addresses() -> None:
    assert Address("127.0.0.1", 8765, None).url == "http://127.0.0.1:8765/"
    assert Address("0.0.0.0", 80, "abc").url == "http://0.0.0.0:80/?token=abc"
    assert Address("::1", 9, None).url == "http://[::1]:9/"
