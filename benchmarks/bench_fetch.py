"""Download throughput of `pipeline.sources.http.Fetcher` against a plain `requests` streaming copy.

Both read the same file from a local HTTP server on 127.0.0.1 in the same run. Ours also checks
the magic bytes, writes a partial file with its record, hashes (sha256), fsyncs the file and its
folder and renames, so it is expected to be somewhat slower than the bare copy; the target is at
least 0.7x. The two run in interleaved rounds (the machine is shared: a neighbour's burst should
not decide the ratio) and the fastest run of each is kept. Removing the previous round's file is
not timed: deleting a 32 MiB file that was fsynced (its blocks allocated) costs the filesystem far
more than truncating one still in the page cache, which is not part of downloading either way.

The server. The target row's server runs in a process of its own and sends the file with
``sendfile``, as static file servers do (nginx, Apache, Caddy): a server inside the bench's own
process would hold the clients' GIL, and on a two-core machine the server's own work competes with
the client for the same cores, so it counts against whichever client needs more CPU. Python's
`SimpleHTTPRequestHandler` copies each 64 KiB block through user space, 17-20 ms of CPU per 32 MiB
against about 5 ms with ``sendfile``. That fixture, a copying server in a thread of the bench's
process, is still measured, for information, in its own row.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# A static file server in a process of its own: `python -c SERVER DIRECTORY` prints its port, then
# serves DIRECTORY, each file's body sent with sendfile (the kernel copies from the page cache).
SERVER = r"""
import functools, sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        outputfile.flush()
        self.connection.sendfile(source)

server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _best(measures: list, rounds: int) -> list[float]:
    """Each measure (a `(setup, timed)` pair) run `rounds` times, interleaved; the fastest run of each."""
    best = [float("inf")] * len(measures)
    for _ in range(rounds):
        for i, (setup, timed) in enumerate(measures):
            setup()
            t0 = time.perf_counter()
            timed()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


@contextlib.contextmanager
def _sendfile_server(directory: Path) -> Iterator[str]:
    """The base URL of a sendfile server in a child process serving `directory`."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(directory)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"the benchmark's file server did not start (exit {proc.poll()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def _thread_server(directory: Path) -> Iterator[str]:
    """The base URL of Python's own copying file server in a thread of this process."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _ratio(url: str, root: Path, rounds: int) -> tuple[float, float]:
    """Seconds of the fastest of `rounds` interleaved downloads of `url`: ours, then the reference's."""
    import requests

    from pipeline.sources.http import Fetcher, HttpOptions

    def ours() -> None:
        with Fetcher(HttpOptions(allow_private=True)) as f:
            f.download(url, root / "ours.bin")

    def reference() -> None:
        with requests.get(url, stream=True, timeout=60) as r, open(root / "ref.bin", "wb") as fh:
            for block in r.iter_content(1 << 16):
                fh.write(block)

    t_ours, t_ref = _best([(lambda: (root / "ours.bin").unlink(missing_ok=True), ours),
                           (lambda: (root / "ref.bin").unlink(missing_ok=True), reference)], rounds)
    return t_ours, t_ref


def _row(name: str, size: int, times: tuple[float, float], target: str, note: str) -> dict:
    mb = size / (1 << 20)
    ours_rate, ref_rate = mb / times[0], mb / times[1]
    return {"name": name, "ours": round(ours_rate, 1), "reference": round(ref_rate, 1),
            "ratio": round(ours_rate / ref_rate, 3), "unit": "MiB/s", "target": target, "note": note}


def run(quick: bool) -> list[dict]:
    rounds = 8 if quick else 20
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        www = root / "www"
        www.mkdir()
        sizes = [32 << 20] + ([] if quick else [256 << 20])
        for size in sizes:
            (www / f"blob{size >> 20}.bin").write_bytes(os.urandom(size))
        cases: list[tuple[str, Callable, int, int, str]] = [
            ("fetch: download 32 MiB from 127.0.0.1", _sendfile_server, 32 << 20, rounds,
             ">= 0.7x plain requests (ours also verifies, hashes, fsyncs, renames)"),
            ("fetch: 32 MiB from a copying server in the bench's own process", _thread_server, 32 << 20, rounds,
             "information: the server takes CPU and the GIL from the clients"),
        ]
        if not quick:
            cases.append(("fetch: download 256 MiB from 127.0.0.1", _sendfile_server, 256 << 20, 5,
                          "information: fsync of 256 MiB included"))
        for name, serve, size, n, target in cases:
            with serve(www) as base:
                times = _ratio(f"{base}/blob{size >> 20}.bin", root, n)
            server = "sendfile server in its own process" if serve is _sendfile_server else \
                "http.server in a thread of this process"
            rows.append(_row(name, size, times, target,
                             f"{server}; best of {n} interleaved rounds; removing the previous round's file is not timed"))
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
