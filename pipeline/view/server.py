"""Serving the app: a socket bound first (so `--port 0` picks a free port and the printed address
is the real one), then uvicorn on it until Ctrl-C."""

from __future__ import annotations

import secrets
import socket
import webbrowser
from dataclasses import dataclass

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    token: str | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/"
        return base + (f"?token={self.token}" if self.token else "")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 takes a free one."""
    from pipeline.core.errors import UsageError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})",
                         fix="choose another --port (0 picks a free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(app_factory, host: str, port: int, *, open_browser: bool, announce) -> Address:
    """Bind, build the app with the right token and hosts, announce the address, serve until stopped."""
    import uvicorn

    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    token = None if is_loopback(host) else secrets.token_urlsafe(24)
    hosts = None
    if is_loopback(host):
        hosts = [f"127.0.0.1:{real_port}", f"localhost:{real_port}", f"[::1]:{real_port}"]
    address = Address(host if host != "localhost" else "127.0.0.1", real_port, token)
    app = app_factory(token=token, allowed_hosts=hosts)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    announce(address)
    if open_browser:
        webbrowser.open(address.url)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # (uvicorn shuts down on Ctrl-C, then raises the signal again for its caller: stopping is the plan)
    finally:
        sock.close()
    return address
