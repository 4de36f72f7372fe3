"""Files from plain URLs: concurrent, rate-limited, resumable, verified, deduplicated by content.

Downloads land in a raw folder with a manifest (`.downloads.json`: URL -> file, sha256, size,
ETag). A re-run whose files are present and match the manifest (and any checksum given)
downloads nothing; an interrupted one continues from the partial files (`http.Fetcher`).

A URL list file has one URL per line, optionally followed by a checksum, `#` starts a comment::

    https://example.org/digits.zip  sha256:9f86d08...
    https://example.org/cat.jpg     md5:0cc175b9c0f1b6a831c399e269772661
    https://example.org/dog.png     9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.core import ui
from pipeline.core.errors import DataError, PipelineError, UsageError
from pipeline.core.paths import atomic_write_text, sha256_file
from pipeline.sources.download import Download
from pipeline.sources.http import DownloadResult, Fetcher, HttpOptions, expected_kind

MANIFEST = ".downloads.json"
# Failure reasons (from sources.http) that mean the host could not be reached at all: refused, reset,
# timed out, name not resolved. A server's answer (404, 503, wrong content) is not one of them.
NETWORK_REASONS = frozenset({"connection"})
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


@dataclass
class UrlSpec:
    """One URL to fetch and the checksums it must match."""

    url: str
    sha256: str | None = None
    md5: str | None = None


@dataclass
class FetchReport:
    """Outcome of fetching a list of URLs: what is on disk, what failed and why."""

    raw: Path
    done: list[DownloadResult] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (url, reason, message)
    duplicates: dict[str, str] = field(default_factory=dict)  # url -> file it duplicates

    def reasons(self) -> Counter:
        return Counter(reason for _, reason, _ in self.failures)

    def unreachable(self) -> list[tuple[str, str, str]]:
        """The failures where the network failed (refused, reset, timed out, DNS), not the server's answer."""
        return [f for f in self.failures if f[1] in NETWORK_REASONS]

    @property
    def downloaded(self) -> int:
        return sum(1 for r in self.done if not r.skipped)

    @property
    def present(self) -> int:
        return sum(1 for r in self.done if r.skipped)

    @property
    def transferred(self) -> int:
        return sum(r.transferred for r in self.done)


def parse_checksum(text: str, where: str = "checksum") -> tuple[str | None, str | None]:
    """`sha256:HEX`, `md5:HEX` or a bare hex digest (64 digits sha256, 32 md5) -> (sha256, md5)."""
    algo, _, digest = text.partition(":") if ":" in text else ("", "", text)
    algo = algo.lower()
    if not _HEX.match(digest or "") or (algo and algo not in ("sha256", "md5")):
        raise UsageError(f"{where}: expected sha256:HEX, md5:HEX or a bare hex digest, got {text!r}")
    if algo == "sha256" or (not algo and len(digest) == 64):
        if len(digest) != 64:
            raise UsageError(f"{where}: a sha256 digest has 64 hex digits, got {len(digest)}")
        return digest.lower(), None
    if algo == "md5" or (not algo and len(digest) == 32):
        if len(digest) != 32:
            raise UsageError(f"{where}: an md5 digest has 32 hex digits, got {len(digest)}")
        return None, digest.lower()
    raise UsageError(f"{where}: a bare digest must have 64 (sha256) or 32 (md5) hex digits, got {len(digest)}")


def build_specs(urls: list[str] | tuple[str, ...], list_file: Path | None = None, *, sha256: str | None = None,
                md5: str | None = None) -> list[UrlSpec]:
    """The URLs to fetch: those given (checked to be http(s)), then a list file's; `sha256`/`md5`
    are the expected digests of the one URL given directly."""
    specs = [UrlSpec(u) for u in urls]
    if list_file:
        specs += parse_list(list_file)
    if not specs:
        raise UsageError("no URLs given", fix="pass URLs as arguments or --list FILE")
    for s in specs[: len(urls)]:
        if urlsplit(s.url).scheme.lower() not in ("http", "https"):
            raise UsageError(f"{s.url}: not an http(s) URL")
    if sha256 or md5:
        if len(urls) != 1:
            raise UsageError("--sha256/--md5 apply to exactly one URL on the command line",
                             fix="put checksums next to each URL in a --list file")
        if sha256:
            specs[0].sha256 = parse_checksum(f"sha256:{sha256}", "--sha256")[0]
        if md5:
            specs[0].md5 = parse_checksum(f"md5:{md5}", "--md5")[1]
    return specs


def parse_list(path: Path) -> list[UrlSpec]:
    """Read a URL list file (see the module docstring); errors name the line."""
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file", fix="--list takes a text file with one URL per line")
    specs = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = re.sub(r"\s+#.*$", "", text)
        parts = text.split()
        if len(parts) > 2:
            raise DataError(path, "too many fields", line=lineno, expected="URL [CHECKSUM]", got=text)
        url = parts[0]
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise DataError(path, "not an http(s) URL", line=lineno, got=url)
        sha, md5 = parse_checksum(parts[1], f"{path}:{lineno}") if len(parts) == 2 else (None, None)
        specs.append(UrlSpec(url, sha, md5))
    if not specs:
        raise DataError(path, "no URLs in the list", fix="one URL per line")
    return specs


def file_name(url: str) -> str:
    """A safe local file name from the last path segment of `url` ('download' when it has none)."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).strip("._") or "download"
    return name[:150]


def plan_names(urls: list[str]) -> dict[str, str]:
    """Local names for URLs; names shared by several URLs get a short hash of the URL in front."""
    names = {u: file_name(u) for u in urls}
    counts = Counter(names.values())
    return {u: (n if counts[n] == 1 else f"{hashlib.sha256(u.encode()).hexdigest()[:8]}-{n}") for u, n in names.items()}


def read_manifest(raw: Path) -> dict[str, dict]:
    try:
        data = json.loads((raw / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _verified(raw: Path, entry: dict | None, spec: UrlSpec) -> str | None:
    """The sha256 of the file a manifest entry names when it is present and still matches; else None."""
    if not entry or not entry.get("file"):
        return None
    path = raw / entry["file"]
    if not path.is_file() or path.stat().st_size != entry.get("size"):
        return None
    digest = sha256_file(path)
    if digest != entry.get("sha256") or (spec.sha256 and digest != spec.sha256):
        return None
    if spec.md5:
        md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        if md5 != spec.md5:
            return None
    return digest


def fetch_urls(specs: list[UrlSpec], raw: Path, *, options: HttpOptions | None = None,
               concurrency: int = 4) -> FetchReport:
    """Download every URL into `raw` (concurrently, per-host rate-limited); failures are collected, not raised."""
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    unique = []
    for s in specs:
        if s.url not in seen:
            seen.add(s.url)
            unique.append(s)
    names = plan_names([s.url for s in unique])
    manifest = read_manifest(raw)
    report = FetchReport(raw=raw)
    lock = threading.Lock()
    bar = ui.progress(total=len(unique), desc="download", unit="file")
    last_save = [0.0]

    def save_manifest(force: bool = True) -> None:
        # at most once a second while downloading (a long list would rewrite it for every file)
        now = time.monotonic()
        if force or now - last_save[0] >= 1.0:
            atomic_write_text(raw / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            last_save[0] = now

    def one(spec: UrlSpec, fetcher: Fetcher) -> None:
        entry = manifest.get(spec.url)
        digest = _verified(raw, entry, spec)
        try:
            if digest is not None:
                path = raw / entry["file"]
                result = DownloadResult(url=spec.url, path=path, size=path.stat().st_size, sha256=digest, md5="",
                                        final_url=entry.get("final_url", spec.url), etag=entry.get("etag"),
                                        skipped=True, attempts=0)
            else:
                result = fetcher.download(spec.url, raw / names[spec.url], sha256=spec.sha256, md5=spec.md5)
            with lock:
                report.done.append(result)
                manifest[spec.url] = {"file": result.path.name, "sha256": result.sha256, "size": result.size,
                                      "etag": result.etag, "final_url": result.final_url or spec.url}
                save_manifest(force=False)
        except PipelineError as exc:
            with lock:
                report.failures.append((spec.url, getattr(exc, "reason", "error"), str(exc)))
        finally:
            bar.update(1)

    try:
        with Fetcher(options) as fetcher:
            workers = max(1, min(concurrency, len(unique)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for fut in [pool.submit(one, s, fetcher) for s in unique]:
                    fut.result()
    finally:
        bar.close()
    order = {s.url: i for i, s in enumerate(unique)}
    report.done.sort(key=lambda r: order[r.url])
    report.failures.sort(key=lambda f: order[f[0]])
    _dedupe(report, manifest)
    save_manifest()
    return report


def fetch(specs: list[UrlSpec], raw: Path, *, options: HttpOptions | None = None,
          concurrency: int = 4) -> Download[FetchReport]:
    """Download every URL into `raw` and say how to import what arrived (`Download`).

    Images become an image dataset (each with its URL, and the final URL after redirects); a
    single archive is extracted; a single data file (e.g. a pixel CSV) is imported from its folder.
    The lineage records the URLs asked for and the sha256 of each file, keyed by its URL.
    """
    raw = Path(raw)
    report = fetch_urls(specs, raw, options=options, concurrency=concurrency)
    kept = [r for r in report.done if r.url not in report.duplicates]
    files = [r.path for r in kept]
    arrived = import_kind(report)
    got = Download(source="url", raw=raw, kind="mixed", report=report, files=files, arrived=arrived,
                   params={"source": "url", "urls": [s.url for s in specs], "raw": str(raw)},
                   inputs={r.url: r.sha256 for r in report.done})
    if not report.done:
        got.kind = "none"
    elif arrived == "images":
        got.kind = "images"
        got.images = [(r.path, {"url": r.url, **({"final_url": r.final_url} if r.final_url not in ("", r.url) else {})})
                      for r in kept]
    elif arrived == "archive" and len(files) == 1:
        got.kind = "archive"
    elif arrived == "data" and len(files) == 1:
        got.kind, got.folder = "folder", files[0].parent
    return got


def _dedupe(report: FetchReport, manifest: dict[str, dict]) -> None:
    """Keep one file per content: later URLs with the same bytes point at the first file."""
    first: dict[str, DownloadResult] = {}
    for r in report.done:
        kept = first.get(r.sha256)
        if kept is None:
            first[r.sha256] = r
            continue
        report.duplicates[r.url] = kept.path.name
        if r.path != kept.path and r.path.exists():
            r.path.unlink()
        manifest[r.url] = dict(manifest[kept.url])
        r.path = kept.path


def describe_failures(report: FetchReport) -> list[tuple[str, object]]:
    """Summary rows: failures by reason."""
    return [(f"failed: {reason}", n) for reason, n in sorted(report.reasons().items())]


def import_kind(report: FetchReport) -> str:
    """What the successful downloads are: 'archive', 'images', 'data' or 'mixed'."""
    kinds = {expected_kind(r.path.name) for r in report.done if r.url not in report.duplicates}
    kinds = {"archive" if k == "archive" else "images" if k == "image" else "data" for k in kinds}
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")
