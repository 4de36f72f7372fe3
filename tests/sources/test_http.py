"""Downloads against a local server: resume, Range ignored, checksums, retries, caps, content checks, guard.

Waits and deadlines run on a `FakeClock`: the tests check the exact delays the fetcher asked for,
never how long a test took.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.sources.http import (
    Fetcher,
    FetchFailure,
    HttpOptions,
    RateLimiter,
    SystemClock,
    check_content,
    partial_paths,
)
from tests.helpers import FakeClock
from tests.sources.servers import LocalServer, Route

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
BLOB = os.urandom(300_000)


def fast(**kw) -> HttpOptions:
    base = dict(allow_private=True, backoff=0.01, max_backoff=0.05, retries=3, connect_timeout=2, read_timeout=3)
    base.update(kw)
    return HttpOptions(**base)


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def test_plain_download_is_atomic_and_verified(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB)
    dest = tmp_path / "a.bin"
    with Fetcher(fast()) as f:
        r = f.download(server.url("/a.bin"), dest, sha256=hashlib.sha256(BLOB).hexdigest())
    assert dest.read_bytes() == BLOB and r.transferred == len(BLOB) and not r.resumed
    assert not any(p.exists() for p in partial_paths(dest))
    # present and verified: nothing is requested again
    with Fetcher(fast()) as f:
        again = f.download(server.url("/a.bin"), dest, sha256=hashlib.sha256(BLOB).hexdigest())
    assert again.skipped and server.requests["/a.bin"] == 1


def test_connection_dropped_mid_file_resumes(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB, drop_after=100_000)
    dest = tmp_path / "a.bin"
    with Fetcher(fast()) as f:
        r = f.download(server.url("/a.bin"), dest)
    assert dest.read_bytes() == BLOB
    assert r.resumed and r.attempts == 2
    assert server.bytes_sent["/a.bin"] == len(BLOB)  # nothing sent twice
    assert "Range" in server.log[-1][2] and server.log[-1][2]["Range"] == "bytes=100000-"


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB, ranges=False, drop_after=50_000)
    dest = tmp_path / "a.bin"
    with Fetcher(fast()) as f:
        r = f.download(server.url("/a.bin"), dest)
    assert dest.read_bytes() == BLOB  # not the first 50 kB twice
    assert r.restarted and not r.resumed


def test_wrong_bytes_fail_checksum_and_are_removed(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB)
    dest = tmp_path / "a.bin"
    with Fetcher(fast()) as f, pytest.raises(FetchFailure) as info:
        f.download(server.url("/a.bin"), dest, sha256="0" * 64)
    assert info.value.reason == "checksum" and "sha256 mismatch" in str(info.value) and "removed" in str(info.value)
    assert not dest.exists() and not any(p.exists() for p in partial_paths(dest))
    with Fetcher(fast()) as f, pytest.raises(FetchFailure, match="md5 mismatch"):
        f.download(server.url("/a.bin"), dest, md5="0" * 32)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_honoured(server, tmp_path, status):
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(status, {"Retry-After": "7"})])
    clock = FakeClock()
    with Fetcher(fast(clock=clock)) as f:
        r = f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert clock.sleeps == [7.0]  # the server's delay, not the 0.01 s backoff
    assert r.attempts == 2


def test_retry_after_http_date_is_honoured(server, tmp_path):
    clock = FakeClock()
    when = email.utils.formatdate(clock.time() + 42, usegmt=True)
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(503, {"Retry-After": when})])
    with Fetcher(fast(clock=clock)) as f:
        f.get_page(server.url("/a.bin"))
    assert clock.sleeps == [42.0]


@pytest.mark.parametrize("value", ["soon", ""])
def test_unreadable_retry_after_falls_back_to_the_backoff(server, tmp_path, value):
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(503, {"Retry-After": value})])
    clock = FakeClock()
    with Fetcher(fast(clock=clock)) as f:
        f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert clock.sleeps == [0.01]


def test_a_past_retry_after_date_waits_nothing(server, tmp_path):
    clock = FakeClock()
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(429, {"Retry-After": email.utils.formatdate(
        clock.time() - 60, usegmt=True)})])
    with Fetcher(fast(clock=clock)) as f:
        f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert clock.sleeps == [0.0]


def test_backoff_doubles_up_to_its_cap(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(500, {}), (502, {}), (503, {}), (504, {})])
    clock = FakeClock()
    with Fetcher(fast(clock=clock, backoff=0.5, max_backoff=1.5, retries=4)) as f:
        r = f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert clock.sleeps == [0.5, 1.0, 1.5, 1.5]
    assert r.attempts == 5


def test_deadline_cuts_a_response_by_the_clock(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB)
    clock = FakeClock(tick=10.0)  # every reading of the clock is 10 s after the last
    with Fetcher(fast(clock=clock, deadline=5.0)) as f, pytest.raises(FetchFailure) as info:
        f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert info.value.reason == "deadline"
    assert not any(p.exists() for p in partial_paths(tmp_path / "a.bin"))
    with Fetcher(fast(clock=FakeClock(tick=10.0))) as f, pytest.raises(FetchFailure) as info:
        f.get_page(server.url("/a.bin"), deadline=5.0)
    assert info.value.reason == "deadline"


def test_retry_after_too_long_gives_up(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(429, {"Retry-After": "3600"})])
    with Fetcher(fast(max_retry_after=5)) as f, pytest.raises(FetchFailure) as info:
        f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert info.value.reason == "http-429" and "3600" in str(info.value)


def test_5xx_backoff_then_success_and_404_is_final(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(500, {}), (502, {})])
    clock = FakeClock()
    with Fetcher(fast(clock=clock)) as f:
        assert f.download(server.url("/a.bin"), tmp_path / "a.bin").attempts == 3
        with pytest.raises(FetchFailure) as info:
            f.download(server.url("/missing.bin"), tmp_path / "m.bin")
    assert info.value.reason == "http-404" and server.requests["/missing.bin"] == 1
    assert clock.sleeps == [0.01, 0.02]  # two retries of a.bin; none for the 404


def test_retries_run_out_with_the_last_status(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB, fail_first=[(503, {})] * 4)
    clock = FakeClock()
    with Fetcher(fast(clock=clock)) as f, pytest.raises(FetchFailure) as info:
        f.download(server.url("/a.bin"), tmp_path / "a.bin")
    assert info.value.reason == "http-503" and "gave up after 4 attempts" in str(info.value)
    assert clock.sleeps == [0.01, 0.02, 0.04] and server.requests["/a.bin"] == 4


def test_html_error_page_never_saved_as_image_or_archive(server, tmp_path):
    page = b"<!DOCTYPE html><html><body>Access denied</body></html>"
    server.routes["/cat.jpg"] = Route(page, content_type="text/html")
    server.routes["/data.zip"] = Route(page, content_type="application/zip")  # lying Content-Type
    server.routes["/good.png"] = Route(PNG, content_type="image/png")
    with Fetcher(fast()) as f:
        for name in ("cat.jpg", "data.zip"):
            with pytest.raises(FetchFailure) as info:
                f.download(server.url("/" + name), tmp_path / name)
            assert info.value.reason == "content-mismatch"
            assert not (tmp_path / name).exists()
        f.download(server.url("/good.png"), tmp_path / "good.png")
    assert (tmp_path / "good.png").read_bytes() == PNG


@pytest.mark.parametrize(
    "name, head, ctype, bad",
    [
        ("x.png", PNG[:64], "image/png", False),
        ("x.png", b"GIF89a" + b"\0" * 20, "image/gif", False),  # extension lies, bytes are an image: fine
        ("x.png", b"{\"error\": 1}", "application/json", True),  # no image signature
        ("x.tar.gz", b"\x1f\x8b\x08" + b"\0" * 20, None, False),
        ("x.tar.gz", b"PK\x03\x04" + b"\0" * 20, None, True),
        ("x.csv", b"<html><body>login</body></html>", "text/html", True),
        ("x.csv", b"label,pixel0\n1,2\n", "text/csv", False),
        ("x.parquet", b"PAR1....", None, False),
    ],
)
def test_check_content_table(name, head, ctype, bad):
    assert (check_content(name, head, ctype, complete=True) is not None) == bad


def _endless(h) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        while True:
            h.wfile.write(b"\0" * 65536)
    except OSError:
        return


def test_size_cap(server, tmp_path):
    server.routes["/a.bin"] = Route(BLOB)  # Content-Length above the cap: refused before reading the body
    server.routes["/endless.bin"] = _endless  # no Content-Length: cut when the bytes read pass the cap
    with Fetcher(fast(max_bytes=100_000)) as f:
        for name in ("a.bin", "endless.bin"):
            with pytest.raises(FetchFailure) as info:
                f.download(server.url("/" + name), tmp_path / name)
            assert info.value.reason == "too-large"
            assert not (tmp_path / name).exists() and not any(p.exists() for p in partial_paths(tmp_path / name))


def test_page_read_stops_at_its_byte_cap(server):
    server.routes["/endless.bin"] = _endless
    with Fetcher(fast(clock=FakeClock())) as f:  # a clock that stands still: only the cap can stop it
        page = f.get_page(server.url("/endless.bin"), max_bytes=100_000)
    assert page.truncated and len(page.body) == 100_000 and page.status == 200


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_finishes_with_less_transfer(server, tmp_path):
    blob = os.urandom(2_000_000)
    server.routes["/big.bin"] = Route(blob, chunk=50_000, delay=0.03)
    raw = tmp_path / "raw"
    dest = raw / "big.bin"
    cmd = [sys.executable, "-m", "pipeline", "fetch", "url", server.url("/big.bin"), "--out", str(tmp_path / "ds"),
           "--raw", str(raw), "--no-import", "--allow-private", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2])
    server.wait_for(lambda: server.bytes_sent["/big.bin"] >= len(blob) // 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    server.wait_for(lambda: server.finished["/big.bin"] == 1)  # the server saw the closed connection
    first = server.bytes_sent["/big.bin"]
    assert 0 < first < len(blob) and not dest.exists()
    server.routes["/big.bin"].delay = 0
    with Fetcher(fast()) as f:
        r = f.download(server.url("/big.bin"), dest, sha256=hashlib.sha256(blob).hexdigest())
    assert dest.read_bytes() == blob and r.resumed
    second = server.bytes_sent["/big.bin"] - first
    assert second < len(blob) and r.transferred == second


def test_per_host_rate_limit_spaces_concurrent_downloads(server, tmp_path):
    from pipeline.sources.url import UrlSpec, fetch_urls

    for i in range(4):
        server.routes[f"/{i}.bin"] = Route(BLOB[:1000] + bytes([i]))
    clock = FakeClock()  # time stands still: each request waits for its own slot, whichever thread takes it
    report = fetch_urls([UrlSpec(server.url(f"/{i}.bin")) for i in range(4)], tmp_path / "raw",
                        options=fast(rate=0.15, clock=clock), concurrency=4)
    assert len(report.done) == 4 and not report.failures
    assert sorted(clock.sleeps) == pytest.approx([0.15, 0.30, 0.45])  # the first goes at once, then 0.15 s apart


def test_rate_limit_is_per_host_and_a_host_can_be_slowed():
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock)
    for host in ("a.test", "b.test", "a.test", "b.test"):
        limiter.wait(host)
    assert clock.sleeps == [0.5, 0.5]
    limiter.set_interval("a.test", 2.0)  # e.g. robots.txt's Crawl-delay
    limiter.wait("a.test")
    limiter.wait("a.test")
    assert clock.sleeps == [0.5, 0.5, 1.0, 3.0]  # a.test's next slot was at 1.0; then 2 s later
    assert RateLimiter(0.0, clock).wait("a.test") is None and len(clock.sleeps) == 4  # no limit: no wait


def test_the_real_clock_is_the_default():
    opts = HttpOptions()
    assert isinstance(opts.clock, SystemClock) and isinstance(Fetcher().limiter._clock, SystemClock)
    before = opts.clock.monotonic()
    opts.clock.sleep(0)
    assert opts.clock.monotonic() >= before


def test_given_response_is_read_then_resumed_from_its_url(server, tmp_path):
    import requests

    server.routes["/a.bin"] = Route(BLOB, drop_after=120_000)
    resp = requests.get(server.url("/a.bin"), stream=True, timeout=5)
    with Fetcher(fast()) as f:
        r = f.download(resp.url, tmp_path / "a.bin", response=resp)
    assert (tmp_path / "a.bin").read_bytes() == BLOB and r.resumed
    assert server.requests["/a.bin"] == 2 and server.bytes_sent["/a.bin"] == len(BLOB)


def test_a_large_download_is_hashed_on_a_thread_and_written_out_as_it_arrives(server, tmp_path, monkeypatch):
    import pipeline.sources.http as http

    monkeypatch.setattr(http, "BACKGROUND_HASH", 40_000)
    monkeypatch.setattr(http, "WRITEBACK_EVERY", 60_000)
    started: list[int] = []
    real_background = http._Hashes.background
    monkeypatch.setattr(http._Hashes, "background", lambda self: (started.append(1), real_background(self)))
    ranges: list[tuple[int, int]] = []
    real_writeback = http._start_writeback
    monkeypatch.setattr(http, "_start_writeback", lambda fd, a, b: (ranges.append((a, b)), real_writeback(fd, a, b)))
    server.routes["/a.bin"] = Route(BLOB, drop_after=150_000)  # a resume: the partial file is hashed first
    dest = tmp_path / "a.bin"
    with Fetcher(fast()) as f:
        r = f.download(server.url("/a.bin"), dest, sha256=hashlib.sha256(BLOB).hexdigest(),
                       md5=hashlib.md5(BLOB).hexdigest())
    assert dest.read_bytes() == BLOB and r.resumed and r.sha256 == hashlib.sha256(BLOB).hexdigest()
    assert started and not any(t.name == "download-hash" for t in __import__("threading").enumerate())
    first = [rg for rg in ranges if rg[1] <= 150_000]
    second = [rg for rg in ranges if rg[0] >= 150_000]
    for part in (first, second):  # consecutive ranges from where each attempt began, each a step long
        assert part and all(b - a >= 60_000 for a, b in part)
        assert all(part[i][1] == part[i + 1][0] for i in range(len(part) - 1))
    assert first[0][0] == 0 and second[0][0] == 150_000
    # the same bytes hashed on the thread still fail a wrong checksum
    dest.unlink()
    with Fetcher(fast()) as f, pytest.raises(FetchFailure, match="md5 mismatch"):
        f.download(server.url("/a.bin"), dest, md5="0" * 32)
    assert not dest.exists()


def test_hashing_on_a_thread_gives_the_inline_digests_and_hands_back_its_errors():
    from pipeline.sources.http import _Hashes

    blocks = [os.urandom(n) for n in (1, 5000, 70_000, 0, 3)] * 10
    h = _Hashes(md5=True)
    h.update(blocks[0])
    h.background()
    for b in blocks[1:]:
        h.update(b)
    h.finish()
    data = b"".join(blocks)
    assert (h.sha.hexdigest(), h.md5.hexdigest()) == (hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())

    def broken(block: bytes) -> None:
        raise MemoryError("no room")

    h.reset()
    h._feed = broken
    h.background()
    for b in blocks * 3:  # more blocks than the queue holds: the downloader never waits on a dead thread
        h.update(b)
    with pytest.raises(MemoryError, match="no room"):
        h.finish()
    h.finish()  # the error is handed back once
