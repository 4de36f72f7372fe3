"""Download throughput of `pipeline.sources.http.Fetcher` against a plain `requests` streaming copy.

Both read the same file from a local HTTP server on 127.0.0.1 in the same run. Ours also checks
the magic bytes, writes a partial file with its record, hashes (sha256 + md5), fsyncs and renames,
so it is expected to be somewhat slower than the bare copy; the target is at least 0.5x.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool) -> list[dict]:
    import requests

    from pipeline.sources.http import Fetcher, HttpOptions

    size = (32 if quick else 256) << 20
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "www").mkdir()
        (root / "www" / "blob.bin").write_bytes(os.urandom(size))
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root / "www")))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/blob.bin"
        try:
            def ours() -> None:
                dest = root / "ours.bin"
                dest.unlink(missing_ok=True)
                with Fetcher(HttpOptions(allow_private=True)) as f:
                    f.download(url, dest)

            def reference() -> None:
                with requests.get(url, stream=True, timeout=60) as r, open(root / "ref.bin", "wb") as fh:
                    for block in r.iter_content(1 << 16):
                        fh.write(block)

            t_ours = _best(ours, repeats)
            t_ref = _best(reference, repeats)
        finally:
            server.shutdown()
            server.server_close()
    mb = size / (1 << 20)
    ours_rate, ref_rate = mb / t_ours, mb / t_ref
    return [{
        "name": f"fetch: download {mb:.0f} MiB from 127.0.0.1",
        "ours": round(ours_rate, 1),
        "reference": round(ref_rate, 1),
        "ratio": round(ours_rate / ref_rate, 3),
        "unit": "MiB/s",
        "target": ">= 0.5x plain requests (ours also verifies, hashes, fsyncs, renames)",
        "note": f"best of {repeats} runs each",
    }]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
