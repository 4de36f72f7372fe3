"""HTTP downloads that survive real networks: resumable, verified, atomic, polite.

Follows RFC 9110 (Range / Content-Range / If-Range, Retry-After) with `requests`:

- connect and read timeouts, and an optional total deadline per response (a server that drips
  one byte a second cannot hold a worker forever);
- retries with exponential backoff on connection errors, 429 and 5xx, honouring `Retry-After`
  (seconds or an HTTP date) up to `max_retry_after`;
- resume with `Range: bytes=N-` (and `If-Range` with the ETag or Last-Modified seen first); a
  server that ignores Range (200 instead of 206) or answers a different range restarts the file
  cleanly from byte 0 instead of appending;
- a size cap checked against Content-Length before reading and against the bytes actually read;
- `Content-Type` and magic-byte checks: an HTML error page is never saved under an image,
  archive or parquet name;
- sha256/md5 verification; a mismatch removes the file and says so;
- a temporary name (`.NAME.part`, with `.NAME.part.json` recording what it belongs to), fsync,
  rename: a complete file at its final name is the only thing later stages ever see;
- a per-host rate limit shared by all worker threads, and every connection checked by the
  address guard (`guard.py`).

Every wait and every elapsed time goes through one `Clock` (`HttpOptions.clock`): the real one by
default, a recording one in tests, so backoff, Retry-After and rate limits are checked without waiting.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import requests

from pipeline import __version__
from pipeline.core import failpoints
from pipeline.core.errors import NetworkError, UsageError
from pipeline.core.images import sniff
from pipeline.core.paths import fsync_dir
from pipeline.sources.guard import AddressGuard, AddressRefused, GuardedAdapter, Resolver

CHUNK = 1 << 18  # the most one read of a page takes
# The most one read of a download takes. A read returns what the socket holds, so a slow link still
# gives small blocks (progress and the deadline stay prompt); a fast one gives whole MiB, and each
# block's receive, write and hand-over to the hashing thread costs less per byte than in 256 KiB
# pieces (a 32 MiB local download: 20 % less system time).
DOWNLOAD_CHUNK = 1 << 20
BACKGROUND_HASH = 4 << 20  # bytes received after which a download is hashed on a thread of its own
WRITEBACK_EVERY = 4 << 20  # bytes written between two starts of the kernel's write-out of the partial file
USER_AGENT = f"pipeline/{__version__} (+https://github.com/pipeline-cv/pipeline)"
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
ARCHIVE_MAGIC = {
    "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "gz": (b"\x1f\x8b",),
    "bz2": (b"BZh",),
    "xz": (b"\xfd7zXZ\x00",),
}


class FetchFailure(NetworkError):
    """A download that failed for a reason the summary counts (`reason`: 'http-404', 'checksum', ...)."""

    def __init__(self, reason: str, message: str, *, fix: str | None = None) -> None:
        self.reason = reason
        super().__init__(message, fix=fix)


class Clock(Protocol):
    """The time source of a `Fetcher`: when now is, and how to wait."""

    def time(self) -> float:
        """Seconds since the epoch (to turn a Retry-After HTTP date into a delay)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, rate-limit slots)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (backoff, Retry-After, rate-limit spacing)."""
        ...


class SystemClock:
    """The real clock: `time.time`, `time.monotonic`, `time.sleep`."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """`time.sleep(seconds)`."""
        time.sleep(seconds)


@dataclass
class HttpOptions:
    """Network behaviour of a `Fetcher`; tests shrink the delays, users rarely touch them."""

    connect_timeout: float = 10.0  # seconds to open a connection
    read_timeout: float = 60.0  # seconds without a byte before the attempt fails
    deadline: float | None = None  # total seconds per response (None: no limit, big files take long)
    retries: int = 5  # attempts after the first on transient failures
    backoff: float = 1.0  # first retry delay in seconds, doubled each time
    max_backoff: float = 60.0  # cap of the exponential delay
    max_retry_after: float = 300.0  # a longer Retry-After gives up instead of waiting
    max_bytes: int | None = 20 << 30  # size cap per response (20 GiB)
    rate: float = 0.0  # minimum seconds between requests to one host (0: no limit)
    user_agent: str = USER_AGENT
    allow_private: bool = False  # loopback/private/link-local addresses (tests, intranets)
    resolver: Resolver | None = None  # injectable DNS for the address guard
    clock: Clock = field(default_factory=SystemClock)  # every wait and elapsed time (tests record them)


@dataclass
class DownloadResult:
    """What `Fetcher.download` did for one URL."""

    url: str
    path: Path
    size: int
    sha256: str
    md5: str
    final_url: str = ""
    etag: str | None = None
    content_type: str | None = None
    robots_tag: str | None = None  # X-Robots-Tag of the response (the crawler honours noai/noimageai)
    transferred: int = 0  # body bytes received in this run
    resumed: bool = False  # continued a partial file from an earlier attempt or run
    restarted: bool = False  # a partial file was dropped because the server ignored Range
    skipped: bool = False  # already present and verified: nothing was downloaded
    attempts: int = 1


@dataclass
class Page:
    """A small response read whole (HTML pages, robots.txt), capped in size and time."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False
    history: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class RateLimiter:
    """At most one request per `interval` seconds to each host, shared by all threads."""

    def __init__(self, interval: float, clock: Clock | None = None) -> None:
        self.interval = max(0.0, float(interval))
        self._next: dict[str, float] = {}
        self._intervals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock or SystemClock()

    def set_interval(self, host: str, interval: float) -> None:
        """Slow down one host (e.g. its robots.txt asks for a crawl delay)."""
        with self._lock:
            self._intervals[host] = max(self.interval, interval)

    def wait(self, host: str) -> None:
        """Take the next free slot for `host`, sleeping until it comes."""
        interval = self._intervals.get(host, self.interval)
        if interval <= 0:
            return
        with self._lock:
            now = self._clock.monotonic()
            slot = max(now, self._next.get(host, 0.0))
            self._next[host] = slot + interval
        if slot > now:
            self._clock.sleep(slot - now)


def expected_kind(name: str) -> str:
    """What a file called `name` must contain: 'image', 'archive', 'parquet' or 'data'."""
    lower = name.lower()
    if Path(lower).suffix in IMAGE_SUFFIXES:
        return "image"
    if lower.endswith((".zip", ".tar", ".tgz", ".tar.gz", ".gz", ".tbz2", ".tar.bz2", ".bz2", ".txz", ".tar.xz", ".xz")):
        return "archive"
    if lower.endswith(".parquet"):
        return "parquet"
    return "data"


def _looks_like_html(head: bytes) -> bool:
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) or b"<html" in text[:256]


def check_content(name: str, head: bytes, content_type: str | None, *, complete: bool) -> str | None:
    """Why the first bytes `head` cannot be the file `name` promises, or None when they can.

    `complete` says `head` is the whole file (short files are judged on what there is).
    """
    kind = expected_kind(name)
    ctype = (content_type or "").split(";")[0].strip().lower()
    html = _looks_like_html(head)
    if kind == "data":
        if html and not name.lower().endswith((".html", ".htm", ".xml", ".svg")):
            return f"got an HTML page (Content-Type {ctype or 'not given'}) instead of {Path(name).suffix or 'data'}"
        return None
    if ctype.startswith("text/html") or html:
        return f"got an HTML page (Content-Type {ctype or 'not given'}) instead of {kind} data"
    if kind == "image":
        if len(head) < 12 and not complete:
            return None
        if sniff(head) is None:
            return f"not an image: the first bytes match no image format (Content-Type {ctype or 'not given'})"
        return None
    if kind == "parquet":
        if len(head) < 4 and not complete:
            return None
        return None if head.startswith(b"PAR1") else "not a parquet file (no PAR1 magic)"
    lower = name.lower()
    if lower.endswith(".tar"):
        if len(head) < 262 and not complete:
            return None
        return None if head[257:262] == b"ustar" or (complete and len(head) < 262 and not head.strip(b"\0")) else \
            "not a tar archive (no ustar magic)"
    want = ("zip" if lower.endswith(".zip") else "gz" if lower.endswith((".gz", ".tgz"))
            else "bz2" if lower.endswith((".bz2", ".tbz2")) else "xz")
    if len(head) < 6 and not complete:
        return None
    if not head.startswith(ARCHIVE_MAGIC[want]):
        return f"not a {want} archive: the first bytes do not match (Content-Type {ctype or 'not given'})"
    return None


def parse_size(text: str) -> int:
    """'500M', '2G', '1048576' -> bytes (K, M, G, T are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not m:
        raise UsageError(f"size {text!r}: expected a number with an optional K, M, G or T suffix, e.g. 500M")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), `now` in epoch seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


class _Transient(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class _Hashes:
    """sha256 (always) and md5 (when asked for) of the bytes of a download, fed as they arrive.

    Hashing costs about as much as receiving and writing together, so once a download is large
    (`background` called) the blocks go through a bounded queue to a thread of their own, which
    hashes while the next block is received (hashlib releases the GIL): same order, same digests,
    at most `QUEUE` blocks in flight. `finish` waits for it; the digests are read after that.
    """

    QUEUE = 4  # blocks of up to DOWNLOAD_CHUNK bytes waiting to be hashed (4 MiB)

    def __init__(self, md5: bool) -> None:
        self.want_md5 = md5
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.reset()

    def reset(self) -> None:
        self.finish()
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if self.want_md5 else None

    def _feed(self, block: bytes) -> None:
        self.sha.update(block)
        if self.md5 is not None:
            self.md5.update(block)

    def update(self, block: bytes) -> None:
        if self._queue is not None:
            self._queue.put(block)
        else:
            self._feed(block)

    def background(self) -> None:
        """Hash the blocks still to come on a thread of their own (until `finish`)."""
        if self._thread is None:
            self._queue = queue.Queue(self.QUEUE)
            self._thread = threading.Thread(target=self._run, args=(self._queue,), name="download-hash", daemon=True)
            self._thread.start()

    def _run(self, blocks: queue.Queue[bytes | None]) -> None:
        while (block := blocks.get()) is not None:
            if self._error is None:
                try:
                    self._feed(block)
                except BaseException as exc:  # noqa: BLE001 - handed to the downloading thread by `finish`
                    self._error = exc  # keep taking blocks: the downloading thread never waits on a dead queue

    def finish(self) -> None:
        """Wait until every block given so far is hashed (raising what hashing on the thread raised)."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
        self._queue, self._thread = None, None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def feed_file(self, path: Path) -> None:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                self.update(block)


_FADVISE = getattr(os, "posix_fadvise", None)  # absent on macOS and Windows


def _start_writeback(fd: int, start: int, end: int) -> None:
    """Have the kernel start writing bytes [start, end) of `fd` to disk now, without waiting for it
    (the fsync before the rename then finds most of a large file already written). A hint: where
    the system has no such call, nothing happens."""
    if _FADVISE is not None and end > start:
        try:
            # Linux starts writeback of the dirty pages of the range (WB_SYNC_NONE); pages still
            # dirty or under writeback stay cached.
            _FADVISE(fd, start, end - start, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def _hash_file(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def partial_paths(dest: Path) -> tuple[Path, Path]:
    """The temporary file of an unfinished download of `dest` and its record."""
    return dest.with_name(f".{dest.name}.part"), dest.with_name(f".{dest.name}.part.json")


class Fetcher:
    """Downloads and small page reads through one guarded `requests` session per thread."""

    def __init__(self, options: HttpOptions | None = None) -> None:
        self.options = options or HttpOptions()
        self.guard = AddressGuard(allow_private=self.options.allow_private, resolver=self.options.resolver)
        self.limiter = RateLimiter(self.options.rate, self.options.clock)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    # -- sessions ------------------------------------------------------------------------------
    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            # Proxies from the environment are not used: the guard must see the address actually connected.
            s.trust_env = False
            s.max_redirects = 10
            adapter = GuardedAdapter(self.guard, pool_connections=4, pool_maxsize=4, max_retries=0)
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            s.headers.update({"User-Agent": self.options.user_agent})
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def close(self) -> None:
        with self._lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one request -----------------------------------------------------------------------------
    def _open(self, url: str, headers: dict[str, str] | None = None) -> requests.Response:
        self.guard.check_url(url)
        host = (urlsplit(url).hostname or "").lower()
        self.limiter.wait(host)
        opts = self.options
        try:
            return self.session().get(url, headers=headers or {}, stream=True,
                                      timeout=(opts.connect_timeout, opts.read_timeout), allow_redirects=True)
        except AddressRefused:
            raise
        except requests.TooManyRedirects as exc:
            raise FetchFailure("too-many-redirects", f"{url}: more than 10 redirects") from exc
        except requests.exceptions.InvalidSchema as exc:
            raise FetchFailure("refused-address", f"{url}: redirected to a non-http(s) URL ({exc})") from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            inner = exc.__context__
            while inner is not None:
                if isinstance(inner, AddressRefused):
                    raise inner from None
                inner = inner.__context__
            raise _Transient("connection", f"{url}: {type(exc).__name__}: {_first_line(exc)}") from exc

    def _delay(self, attempt: int, retry_after: float | None, url: str, reason: str) -> float:
        opts = self.options
        if retry_after is not None:
            if retry_after > opts.max_retry_after:
                raise FetchFailure(
                    reason, f"{url}: the server asks to retry after {retry_after:.0f} s "
                    f"(more than the {opts.max_retry_after:.0f} s we wait)", fix="try again later")
            return retry_after
        return min(opts.max_backoff, opts.backoff * (2 ** (attempt - 1)))

    # -- small reads -------------------------------------------------------------------------------
    def get_page(self, url: str, *, max_bytes: int = 5 << 20, deadline: float | None = 30.0,
                 retry: bool = True) -> Page:
        """GET `url` whole (up to `max_bytes`, within `deadline` seconds), any status; retries transient errors."""
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._open(url)
                try:
                    if resp.status_code in RETRY_STATUS and retry and attempt <= self.options.retries:
                        raise _Transient(f"http-{resp.status_code}", f"{url}: HTTP {resp.status_code}",
                                         _retry_after(resp.headers.get("Retry-After"), self.options.clock.time()))
                    body, truncated = self._read_capped(resp, max_bytes, deadline, url)
                    return Page(url=resp.url, status=resp.status_code,
                                headers={k.lower(): v for k, v in resp.headers.items()}, body=body,
                                truncated=truncated, history=[r.url for r in resp.history])
                finally:
                    resp.close()
            except _Transient as exc:
                if not retry or attempt > self.options.retries:
                    raise FetchFailure(exc.reason, str(exc)) from exc
                self.options.clock.sleep(self._delay(attempt, exc.retry_after, url, exc.reason))

    def _read_capped(self, resp: requests.Response, max_bytes: int, deadline: float | None,
                     url: str) -> tuple[bytes, bool]:
        start = self.options.clock.monotonic()
        chunks: list[bytes] = []
        n = 0
        try:
            while True:
                block = resp.raw.read1(CHUNK, decode_content=True)
                if not block:
                    break
                chunks.append(block)
                n += len(block)
                if n > max_bytes:
                    return b"".join(chunks)[:max_bytes], True
                if deadline is not None and self.options.clock.monotonic() - start > deadline:
                    raise FetchFailure("deadline", f"{url}: the response took longer than {deadline:g} s")
        except FetchFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - urllib3/http.client raise many types for a broken stream
            raise _Transient("connection", f"{url}: connection broken while reading ({_first_line(exc)})") from exc
        return b"".join(chunks), False

    # -- downloads ---------------------------------------------------------------------------------
    def download(
        self,
        url: str,
        dest: str | os.PathLike,
        *,
        sha256: str | None = None,
        md5: str | None = None,
        max_bytes: int | None = None,
        check: bool = True,
        name: str | None = None,
        progress: Callable[[int], None] | None = None,
        response: requests.Response | None = None,
    ) -> DownloadResult:
        """Download `url` to `dest` atomically, resuming a partial file left by an earlier attempt.

        `sha256`/`md5`, when given, must match (a mismatch removes the file). `check` enables the
        Content-Type and magic-byte checks for the kind `name` (default: dest's name) promises.
        A `dest` already present that matches a given checksum is not downloaded again.
        `response`, an open streamed response for `url` (e.g. from an API client that followed the
        redirect itself), is read instead of a new request when no partial file is there to resume.
        """
        dest = Path(dest)
        name = name or dest.name
        sha256 = sha256.lower() if sha256 else None
        md5 = md5.lower() if md5 else None
        cap = max_bytes if max_bytes is not None else self.options.max_bytes
        if dest.is_file() and (sha256 or md5):
            have_sha, have_md5 = _hash_file(dest)
            if (not sha256 or have_sha == sha256) and (not md5 or have_md5 == md5):
                return DownloadResult(url=url, path=dest, size=dest.stat().st_size, sha256=have_sha, md5=have_md5,
                                      final_url=url, skipped=True, attempts=0)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part, record = partial_paths(dest)
        result = DownloadResult(url=url, path=dest, size=0, sha256="", md5="", attempts=0)
        hashes = _Hashes(md5=bool(md5))
        pending = [response] if response is not None else []
        no_range = False
        attempt = 0
        while True:
            attempt += 1
            result.attempts = attempt
            try:
                self._attempt(url, part, record, result, hashes, name=name, cap=cap, check=check,
                              no_range=no_range, progress=progress, pending=pending)
                break
            except _RestartWithoutRange:
                no_range = True
                attempt -= 1
                continue
            except _Transient as exc:
                if attempt > self.options.retries:
                    raise FetchFailure(exc.reason, f"{exc} (gave up after {attempt} attempts)",
                                       fix="run the same command again to continue where it stopped") from exc
                self.options.clock.sleep(self._delay(attempt, exc.retry_after, url, exc.reason))
            except FetchFailure:
                raise
        have_sha = hashes.sha.hexdigest()
        have_md5 = hashes.md5.hexdigest() if hashes.md5 is not None else ""
        if (sha256 and have_sha != sha256) or (md5 and have_md5 != md5):
            algo, want, got = ("sha256", sha256, have_sha) if sha256 and have_sha != sha256 else ("md5", md5, have_md5)
            part.unlink(missing_ok=True)
            record.unlink(missing_ok=True)
            raise FetchFailure("checksum", f"{url}: {algo} mismatch: expected {want}, got {got}; the download was removed",
                               fix="check the checksum you gave, or whether the server serves another file now")
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(part, dest)
        record.unlink(missing_ok=True)
        fsync_dir(dest.parent)
        result.size = dest.stat().st_size
        result.sha256, result.md5 = have_sha, have_md5
        return result

    def _attempt(self, url: str, part: Path, record: Path, result: DownloadResult, hashes: _Hashes, *, name: str,
                 cap: int | None, check: bool, no_range: bool, progress: Callable[[int], None] | None,
                 pending: list[requests.Response]) -> None:
        offset = 0
        saved = _read_record(record) if part.is_file() else None
        if saved is not None and saved.get("url") == url and not no_range:
            offset = part.stat().st_size
        elif part.exists():
            part.unlink()
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            validator = saved.get("etag") or saved.get("last_modified") if saved else None
            if validator:
                headers["If-Range"] = validator
        given = pending.pop() if pending else None
        if given is not None and not offset:
            resp = given
        else:
            if given is not None:
                given.close()
            resp = self._open(url, headers)
        try:
            status = resp.status_code
            if status == 416 and offset:
                part.unlink(missing_ok=True)
                record.unlink(missing_ok=True)
                raise _RestartWithoutRange()
            if status in RETRY_STATUS:
                wait = _retry_after(resp.headers.get("Retry-After"), self.options.clock.time())
                raise _Transient(f"http-{status}", f"{url}: HTTP {status}", wait)
            if status >= 400:
                raise FetchFailure(f"http-{status}", f"{url}: HTTP {status} {resp.reason or ''}".rstrip(),
                                   fix="check the URL" if status in (404, 410) else None)
            if status not in (200, 206):
                raise FetchFailure(f"http-{status}", f"{url}: unexpected HTTP {status}")
            total: int | None = None
            mode = "ab"
            if status == 206 and offset:
                start, end, total = _content_range(resp.headers.get("Content-Range"))
                if start != offset:
                    raise _RestartWithoutRange()
                result.resumed = True
            else:
                if offset:
                    result.restarted = True  # Range ignored (or the file changed): start over from byte 0
                offset = 0
                mode = "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            if resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
                total = None  # decoded size unknown
            if cap is not None and total is not None and total > cap:
                raise FetchFailure("too-large", f"{url}: {total} bytes is more than the cap of {cap} bytes",
                                   fix="raise --max-size if you trust the source")
            ctype = resp.headers.get("Content-Type")
            result.final_url = resp.url
            result.etag = resp.headers.get("ETag")
            result.content_type = ctype
            result.robots_tag = resp.headers.get("X-Robots-Tag")
            if mode == "wb":
                _write_record(record, {"url": url, "etag": resp.headers.get("ETag"),
                                       "last_modified": resp.headers.get("Last-Modified"), "total": total})
            hashes.reset()
            if offset:
                hashes.feed_file(part)
            head = b""
            if offset and check:
                with open(part, "rb") as fh:
                    head = fh.read(512)
            checked = not check or offset >= 512
            deadline = self.options.deadline
            started = self.options.clock.monotonic()
            written = flushed = offset
            with open(part, mode) as fh:
                try:
                    while True:
                        block = resp.raw.read1(DOWNLOAD_CHUNK, decode_content=True)
                        if not block:
                            break
                        if not checked:
                            head = (head + block)[:512]
                            if len(head) >= 512:
                                why = check_content(name, head, ctype, complete=False)
                                if why:
                                    raise FetchFailure("content-mismatch", f"{url}: {why}")
                                checked = True
                        fh.write(block)
                        failpoints.hit("http.chunk")
                        hashes.update(block)
                        written += len(block)
                        if written - offset >= BACKGROUND_HASH:
                            hashes.background()  # a large download: hash while the next block arrives
                        if written - flushed >= WRITEBACK_EVERY:
                            fh.flush()
                            _start_writeback(fh.fileno(), flushed, written)
                            flushed = written
                        result.transferred += len(block)
                        if progress:
                            progress(len(block))
                        if cap is not None and written > cap:
                            raise FetchFailure("too-large", f"{url}: more than the cap of {cap} bytes",
                                               fix="raise --max-size if you trust the source")
                        if deadline is not None and self.options.clock.monotonic() - started > deadline:
                            raise FetchFailure("deadline", f"{url}: the response took longer than {deadline:g} s")
                except FetchFailure:
                    fh.close()
                    part.unlink(missing_ok=True)
                    record.unlink(missing_ok=True)
                    raise
                except Exception as exc:  # noqa: BLE001 - a broken stream: keep what we have, retry
                    fh.flush()
                    raise _Transient("connection", f"{url}: connection broken after {written} bytes "
                                                   f"({_first_line(exc)})") from exc
                fh.flush()
            if not checked:
                why = check_content(name, head, ctype, complete=True)
                if why:
                    part.unlink(missing_ok=True)
                    record.unlink(missing_ok=True)
                    raise FetchFailure("content-mismatch", f"{url}: {why}")
            if total is not None and written < total:
                raise _Transient("connection", f"{url}: the connection closed after {written} of {total} bytes")
        finally:
            resp.close()
            hashes.finish()


class _RestartWithoutRange(Exception):
    """The server answered a range we did not ask for: drop the partial file and start over."""


def _content_range(value: str | None) -> tuple[int, int, int | None]:
    # RFC 9110 14.4: "bytes START-END/TOTAL" (TOTAL may be "*")
    try:
        unit, _, rest = (value or "").partition(" ")
        span, _, total = rest.partition("/")
        start, _, end = span.partition("-")
        if unit.strip().lower() != "bytes":
            raise ValueError(value)
        return int(start), int(end), (None if total.strip() == "*" else int(total))
    except ValueError:
        return -1, -1, None


def _read_record(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_record(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
