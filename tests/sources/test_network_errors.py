"""Every network failure of the three download sources ends as our one-line error with exit status 2:
Hugging Face, Kaggle and plain URLs, against a closed port (nothing listens: the connection is refused)
and a server that accepts each connection and drops it without an answer. Nothing leaves the machine."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from pipeline.sources.hf import is_transport_error
from tests.helpers import run_cli as run


def closed_port() -> int:
    """A port nothing listens on: bound, read, closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dropper:
    """A TCP server on 127.0.0.1 that accepts every connection and closes it at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # reset, not FIN
            conn.close()

    def __enter__(self) -> Dropper:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture(params=["closed-port", "dropped"])
def dead(request):
    """(base URL, how it fails) of a host that cannot serve anything."""
    if request.param == "closed-port":
        yield f"http://127.0.0.1:{closed_port()}", request.param
    else:
        with Dropper() as server:
            yield f"http://127.0.0.1:{server.port}", request.param


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    return lines[0]


def test_hugging_face(dead, tmp_path, monkeypatch, capsys):
    base, _ = dead
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    assert run(["fetch", "hf", "team/digits", "--out", str(tmp_path / "ds")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"team/digits: cannot reach {base}" in line and "HF_ENDPOINT" in line
    assert not (tmp_path / "ds").exists()


def test_kaggle(dead, tmp_path, monkeypatch, capsys):
    import kagglesdk.kaggle_env as kaggle_env

    base, _ = dead
    for key in list(os.environ):
        if key.startswith("KAGGLE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_not_a_real_token_0000")
    monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.TEST, base)  # instead of localhost:7777
    assert run(["fetch", "kaggle", "team/digits", "--out", str(tmp_path / "ds")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "team/digits: cannot reach Kaggle" in line and "KGAT" not in line
    assert not (tmp_path / "ds").exists()


def test_plain_urls(dead, tmp_path, capsys):
    base, _ = dead
    url = f"{base}/digits.zip"
    assert run(["fetch", "url", url, "--out", str(tmp_path / "ds"), "--allow-private", "--retries", "0"]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "1 of 1 URLs could not be reached" in line and url in line
    assert "failed: connection  1" in captured.out  # the summary still comes first
    assert not (tmp_path / "ds").exists()


def test_an_unreachable_url_among_good_ones_still_ends_with_the_error(tmp_path, capsys):
    from tests.sources.servers import LocalServer, Route

    with LocalServer() as server:
        server.routes["/a.txt"] = Route(b"hello", content_type="text/plain")
        gone = f"http://127.0.0.1:{closed_port()}/b.txt"
        code = run(["fetch", "url", server.url("/a.txt"), gone, "--out", str(tmp_path / "ds"), "--allow-private",
                    "--retries", "0", "--no-import"])
    assert code == 2
    assert "1 of 2 URLs could not be reached" in one_error_line(capsys.readouterr().err)
    assert (tmp_path / "ds-raw" / "a.txt").read_bytes() == b"hello"


@pytest.mark.parametrize(("exc", "expected"), [
    (ConnectionRefusedError(111, "refused"), False),   # an OSError: mapped by its own clause
    (ValueError("bad"), False),                        # a bug stays a bug
    (__import__("requests").ConnectionError("x"), True),
    (__import__("requests").Timeout("x"), True),
])
def test_transport_errors_are_recognised_by_their_package(exc, expected):
    assert is_transport_error(exc) is expected
