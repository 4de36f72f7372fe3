"""A small HTTP/1.1 server on 127.0.0.1 for the source tests: files with Range support, and faults.

Each route is a `Route` (bytes plus behaviour) or a function `(handler) -> None` that writes the
whole response itself. The server counts requests and body bytes sent per path, so tests can
prove that a resumed download transferred less than the whole file, and lets a test wait for a
state (bytes sent, responses finished) instead of polling against a deadline. Requests in
absolute form (`GET http://host:port/path`, as sent to a proxy) are served as their path, so the
server can stand in as the HTTP proxy of a client whose endpoint is fixed.

On top of it: `Hub`, a Hugging Face Hub serving one dataset repo, and `KaggleApi`, Kaggle's API
as kagglesdk calls it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers import zipped


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    ranges: bool = True  # honour Range requests (False: always send the whole body with 200)
    drop_after: int | None = None  # close the connection after this many body bytes (once per `drops`)
    drops: int = 1
    chunk: int = 1 << 14
    delay: float = 0.0  # seconds between chunks (slow server)
    fail_first: list[tuple[int, dict]] = field(default_factory=list)  # (status, headers) answered first
    etag: bool = True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.proxied = None
        if ok and self.path.startswith(("http://", "https://")):
            # RFC 9112 3.2.2: a request to a proxy names the whole URL; serve its path
            parts = urlsplit(self.path)
            self.proxied = parts.netloc
            self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return ok

    def _dispatch(self, head: bool = False) -> None:
        path = self.path.split("?", 1)[0]
        srv = self.server
        with srv.lock:
            srv.requests[path] += 1
            srv.log.append((self.command, self.path, dict(self.headers)))
            if self.proxied:
                srv.proxied.append(self.proxied)
        try:
            self._respond(path, head)
        finally:
            with srv.changed:
                srv.finished[path] += 1
                srv.changed.notify_all()

    def _respond(self, path: str, head: bool) -> None:
        srv = self.server
        route = srv.routes.get(path)
        if route is None and srv.fallback is not None:
            route = srv.fallback
        if route is None:
            self.send_simple(404, b"<html><body>not found</body></html>", "text/html")
            return
        if callable(route):
            route(self)
            return
        if route.fail_first:
            with srv.lock:
                status, headers = route.fail_first.pop(0)
            self.send_simple(status, b"<html>try later</html>", "text/html", headers)
            return
        body = route.body
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        start = 0
        status = route.status
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and route.ranges and status == 200 and (not if_range or if_range == etag):
            spec = rng.split("=", 1)[1]
            start = int(spec.split("-", 1)[0])
            if start >= len(body):
                self.send_simple(416, b"", "text/plain", {"Content-Range": f"bytes */{len(body)}"})
                return
            status = 206
        part = body[start:]
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(part)))
        if route.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if route.etag:
            self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        for k, v in route.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        limit = None
        if route.drop_after is not None and route.drops > 0:
            with srv.lock:
                route.drops -= 1
            limit = route.drop_after
        sent = 0
        try:
            while sent < len(part):
                n = route.chunk if limit is None else min(route.chunk, limit - sent)
                if n <= 0:
                    break
                block = part[sent:sent + n]
                self.wfile.write(block)
                self.wfile.flush()
                sent += len(block)
                with srv.changed:
                    srv.bytes_sent[path] += len(block)
                    srv.changed.notify_all()
                if route.delay:
                    time.sleep(route.delay)
        except (BrokenPipeError, ConnectionResetError):
            return
        if limit is not None and sent < len(part):
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass

    def send_simple(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_POST(self) -> None:
        self._dispatch()


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, handler=Handler) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.routes: dict = {}
        self.fallback = None  # a function (handler) -> None for paths without a route
        self.requests: Counter = Counter()
        self.bytes_sent: Counter = Counter()
        self.finished: Counter = Counter()  # responses whose handler returned, per path
        self.proxied: list[str] = []  # the host:port named by each request sent as to a proxy
        self.log: list = []
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified when a count above changes
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def wait_for(self, state, timeout: float = 60.0) -> None:
        """Block until `state()` (read under the server's lock) holds; `timeout` only guards against a hang."""
        with self.changed:
            if not self.changed.wait_for(state, timeout):
                raise AssertionError(f"the server never reached the awaited state within {timeout:g} s")

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


REPO = "team/digits"
SHA = "a" * 39 + "1"


class Hub:
    """A local Hugging Face Hub serving one dataset repo (`REPO`) at one commit (`SHA`): the revision
    and tree APIs and `resolve` downloads, with the ETags and X-Repo-Commit huggingface_hub checks."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.server = LocalServer()
        self.server.fallback = self.handle

    def tree(self) -> list[dict]:
        out = []
        for path, data in sorted(self.files.items()):
            entry = {"type": "file", "path": path, "size": len(data),
                     "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
            if path.endswith(".parquet"):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
            out.append(entry)
        return out

    def handle(self, h) -> None:
        path = h.path.split("?", 1)[0]
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/revision/([^/]+)", path)
        if m:
            if m.group(1) != REPO:
                return h.send_simple(404, b'{"error": "Repository not found"}', "application/json",
                                     {"X-Error-Code": "RepoNotFound"})
            if m.group(2) not in ("main", SHA):
                return h.send_simple(404, b'{"error": "Invalid rev id"}', "application/json",
                                     {"X-Error-Code": "RevisionNotFound"})
            body = {"id": REPO, "sha": SHA, "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(self.files)]}
            return h.send_simple(200, json.dumps(body).encode(), "application/json")
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)", path)
        if m:
            return h.send_simple(200, json.dumps(self.tree()).encode(), "application/json")
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and m.group(3) in self.files:
            data = self.files[m.group(3)]
            etag = hashlib.sha256(data).hexdigest() if m.group(3).endswith(".parquet") else \
                hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            headers = {"X-Repo-Commit": SHA, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if h.command == "GET":
                with self.server.lock:
                    self.server.bytes_sent[m.group(3)] += len(data)
            return h.send_simple(200, data, "application/octet-stream", headers)
        return h.send_simple(404, b'{"error": "Entry not found"}', "application/json",
                             {"X-Error-Code": "EntryNotFound"})

    def __enter__(self) -> Hub:
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)


def pixel_csv(n: int = 6, labelled: bool = True) -> bytes:
    head = (["label"] if labelled else []) + [f"pixel{i}" for i in range(16)]
    lines = [",".join(head)]
    for r in range(n):
        px = [str((r * 40 + i * 13) % 256) for i in range(16)]
        lines.append(",".join(([str(r % 3)] if labelled else []) + px))
    return ("\n".join(lines) + "\n").encode()


KAGGLE_TEST_ENDPOINT = "localhost:7777"  # kagglesdk's fixed address for KAGGLE_API_ENVIRONMENT=TEST


class KaggleApi:
    """Kaggle's API on a `LocalServer`: dataset and competition downloads (a redirect to the file,
    as kaggle.com answers), the Authorization header of each call, and a switch to refuse them."""

    def __init__(self, srv: LocalServer) -> None:
        self.srv = srv
        self.auth: list[str] = []
        self.reject = False
        srv.fallback = self.handle
        archive = zipped({"digits/train.csv": pixel_csv(9), "digits/test.csv": pixel_csv(3, labelled=False)},
                         zipfile.ZIP_DEFLATED)
        srv.routes["/files/digits-v3.zip"] = Route(archive, content_type="application/zip")
        srv.routes["/files/comp/train.csv"] = Route(pixel_csv(6), content_type="text/csv")
        # large single files come wrapped in a zip under the file's own name
        srv.routes["/files/comp/big.csv"] = Route(zipped({"big.csv": pixel_csv(4)}, zipfile.ZIP_DEFLATED),
                                                  content_type="application/zip")

    def point_client_here(self, monkeypatch, home: Path) -> None:
        """Send kagglesdk's requests here: its TEST endpoint (`KAGGLE_TEST_ENDPOINT`, fixed by the SDK)
        through this server as the HTTP proxy, so the server keeps the free port it was given. No
        Kaggle variable, proxy setting or credential of the machine running the tests is seen; HOME is `home`."""
        for k in list(os.environ):
            if k.startswith("KAGGLE_") or k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
                monkeypatch.delenv(k)
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
        monkeypatch.setenv("HTTP_PROXY", self.srv.base)
        monkeypatch.setenv("http_proxy", self.srv.base)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        home.mkdir(parents=True, exist_ok=True)
        self.reject = False
        self.auth.clear()
        self.srv.proxied.clear()

    def handle(self, h) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}") if h.command == "POST" else {}
        self.auth.append(h.headers.get("Authorization", ""))
        if self.reject:
            return h.send_simple(401, b'{"code": 401, "message": "Unauthenticated"}', "application/json")
        path = h.path
        if path == "/api/v1/datasets.DatasetApiService/GetDataset":
            if body.get("ownerSlug") != "team" or body.get("datasetSlug") != "digits":
                return h.send_simple(404, b'{"code": 404, "message": "Not found"}', "application/json")
            return h.send_simple(200, json.dumps({"ref": "team/digits", "currentVersionNumber": 3}).encode(),
                                 "application/json")
        if path == "/api/v1/datasets.DatasetApiService/DownloadDataset":
            return h.send_simple(302, b"", "text/plain", {"Location": "/files/digits-v3.zip"})
        if path == "/api/v1/competitions.CompetitionApiService/DownloadDataFile":
            assert body["competitionName"] == "digit-recognizer"
            return h.send_simple(302, b"", "text/plain", {"Location": f"/files/comp/{body['fileName']}"})
        return h.send_simple(404, b'{"code": 404, "message": "Not found"}', "application/json")
