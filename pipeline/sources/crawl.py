"""A polite image crawler: breadth-first over pages, collecting `<img>` (and `srcset`) images.

Politeness and safety rules:

- robots.txt per RFC 9309: the longest matching `Allow`/`Disallow` rule of the group for our
  user agent (or `*`) wins, `Allow` on ties; `*` and `$` patterns. An unreachable robots.txt or a
  5xx answer means "disallow everything" for that host; a 4xx answer means "allow everything".
- `X-Robots-Tag: noai` / `noimageai` (also in `<meta name="robots">`) on a page keeps its images
  out; on an image response it keeps that image out.
- a per-host rate limit (`--rate`), http/https only, addresses checked by the guard on every hop,
  a byte cap and a total deadline per response.

Each image keeps its provenance: image URL, page URL, alt text and depth.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

from pipeline.core import ui
from pipeline.core.errors import PipelineError
from pipeline.core.paths import atomic_write_text, sha256_file
from pipeline.sources.download import Download
from pipeline.sources.guard import AddressRefused
from pipeline.sources.http import Fetcher, FetchFailure, HttpOptions

AGENT = "pipeline-crawler"
PAGE_TYPES = ("text/html", "application/xhtml+xml")


# ----------------------------------------------------------------------------------------------
# robots.txt (RFC 9309)
# ----------------------------------------------------------------------------------------------


@dataclass
class Robots:
    """The rules of one host for our user agent; `allow_all`/`deny_all` for missing or broken files."""

    rules: list[tuple[bool, str]] = field(default_factory=list)  # (allow, pattern)
    deny_all: bool = False
    crawl_delay: float | None = None

    def allowed(self, path: str) -> bool:
        if self.deny_all:
            return False
        if path in ("/robots.txt",):
            return True
        best: tuple[int, bool] | None = None
        for allow, pattern in self.rules:
            if pattern and _robots_match(pattern, path):
                key = (len(pattern), allow)
                if best is None or key > best:
                    best = key
        return True if best is None else best[1]


def _robots_match(pattern: str, path: str) -> bool:
    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = "".join(".*" if c == "*" else re.escape(c) for c in body)
    return re.match(regex + ("$" if anchored else ""), path) is not None


def parse_robots(text: str, agent: str = AGENT) -> Robots:
    """Rules for `agent` from a robots.txt body (the `*` group when no group names the agent)."""
    groups: list[tuple[list[str], list[tuple[bool, str]], float | None]] = []
    agents: list[str] = []
    rules: list[tuple[bool, str]] = []
    delay = None
    in_rules = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, value = (x.strip() for x in line.split(":", 1))
        key = key.lower()
        if key == "user-agent":
            if in_rules:
                groups.append((agents, rules, delay))
                agents, rules, delay, in_rules = [], [], None, False
            agents.append(value.lower())
        elif key in ("allow", "disallow"):
            in_rules = True
            if agents:
                rules.append((key == "allow", value))
        elif key == "crawl-delay":
            in_rules = True
            try:
                delay = float(value)
            except ValueError:
                pass
    if agents:
        groups.append((agents, rules, delay))
    token = agent.lower()
    mine = [g for g in groups if any(a != "*" and token.startswith(a) for a in g[0])]
    chosen = mine or [g for g in groups if "*" in g[0]]
    merged = Robots()
    for _agents, r, d in chosen:
        merged.rules.extend(r)
        if d is not None:
            merged.crawl_delay = d
    return merged


def robots_tag_forbids(value: str, agent: str = AGENT) -> bool:
    """True when an X-Robots-Tag (or robots meta) value says noai/noimageai/none for us or everyone."""
    for part in value.split(","):
        part = part.strip().lower()
        if ":" in part:
            who, _, part = part.partition(":")
            if who.strip() not in (agent.lower(), "*") and part.strip() not in ("noai", "noimageai"):
                continue
            part = part.strip()
        for token in part.split():
            if token in ("noai", "noimageai"):
                return True
    return False


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------


@dataclass
class FoundImage:
    url: str
    alt: str
    page: str


class _PageParser(HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.links: list[str] = []
        self.images: list[tuple[str, str]] = []
        self.meta_robots: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and a.get("href"):
            self.base = urljoin(self.base, a["href"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "img":
            src = best_srcset(a.get("srcset", "")) or a.get("src", "")
            if src:
                self.images.append((src, a.get("alt", "").strip()))
        elif tag == "meta" and a.get("name", "").lower() in ("robots", AGENT):
            self.meta_robots.append(a.get("content", ""))


def best_srcset(value: str) -> str | None:
    """The largest candidate of a `srcset` (by width `w`, else density `x`), or None when empty."""
    best = None
    for cand in value.split(","):
        parts = cand.strip().split()
        if not parts:
            continue
        size = 1.0
        if len(parts) > 1:
            d = parts[1].lower()
            try:
                size = float(d[:-1]) * (1.0 if d.endswith("w") else 1000.0 if d.endswith("x") else 1.0)
            except ValueError:
                size = 1.0
        if best is None or size > best[0]:
            best = (size, parts[0])
    return best[1] if best else None


def parse_page(html: str, url: str) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """(links, (image URL, alt) pairs, robots meta values) of a page, URLs absolute, fragments dropped."""
    p = _PageParser(url)
    try:
        p.feed(html)
        p.close()
    except Exception:  # noqa: BLE001 - broken HTML: keep what was parsed
        pass
    links = [urldefrag(urljoin(p.base, h))[0] for h in p.links]
    images = [(urldefrag(urljoin(p.base, s))[0], alt) for s, alt in p.images]
    return links, images, p.meta_robots


# ----------------------------------------------------------------------------------------------
# The crawl
# ----------------------------------------------------------------------------------------------


@dataclass
class CrawlReport:
    pages: int = 0
    images: list[tuple[Path, dict]] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)  # reason -> count
    messages: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


@dataclass
class CrawlOptions:
    depth: int = 1
    max_images: int = 100
    same_host: bool = False
    page_bytes: int = 5 << 20
    image_bytes: int = 50 << 20
    deadline: float = 30.0  # total seconds per response
    respect_robots: bool = True


def fetch(start: str, raw: Path, *, options: CrawlOptions, http: HttpOptions) -> Download[CrawlReport]:
    """`crawl`, described for the import: the images collected, each with its provenance.

    The lineage (stage `crawl`) records the start URL and the limits, and the sha256 of each image
    keyed by its URL.
    """
    raw = Path(raw)
    report = crawl(start, raw, options=options, http=http)
    return Download(
        source="crawl", raw=raw, kind="images", stage="crawl", report=report, images=report.images,
        params={"source": "crawl", "start": start, "depth": options.depth, "max_images": options.max_images,
                "same_host": options.same_host},
        inputs={src["url"]: sha256_file(path) for path, src in report.images},
    )


def crawl(start: str, raw: Path, *, options: CrawlOptions, http: HttpOptions) -> CrawlReport:
    """Crawl from `start`, saving images into `raw/images` with `raw/provenance.jsonl`."""
    raw = Path(raw)
    images_dir = raw / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    report = CrawlReport()
    http.deadline = options.deadline
    start_host = (urlsplit(start).hostname or "").lower()
    robots_cache: dict[str, Robots] = {}
    seen_pages: set[str] = set()
    seen_images: set[str] = set()
    seen_content: set[str] = set()
    queue: deque[tuple[str, int]] = deque([(start, 0)])
    provenance: list[dict] = []

    def fail(reason: str, message: str) -> None:
        report.failures[reason] += 1
        report.messages.append(message)

    with Fetcher(http) as fetcher:
        fetcher.guard.check_url(start)

        def robots_for(url: str) -> Robots:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}".lower()
            if origin in robots_cache:
                return robots_cache[origin]
            try:
                page = fetcher.get_page(origin + "/robots.txt", max_bytes=500 * 1024, deadline=options.deadline)
                if 200 <= page.status < 300:
                    rules = parse_robots(page.body.decode("utf-8", "replace"))
                elif 400 <= page.status < 500:
                    rules = Robots()  # RFC 9309 2.3.1.3: unavailable -> allow
                else:
                    rules = Robots(deny_all=True)  # 2.3.1.4: unreachable -> disallow
            except AddressRefused:
                raise
            except PipelineError:
                rules = Robots(deny_all=True)
            if rules.crawl_delay:
                fetcher.limiter.set_interval(parts.hostname or "", min(rules.crawl_delay, 60.0))
            robots_cache[origin] = rules
            return rules

        def permitted(url: str) -> bool:
            if not options.respect_robots:
                return True
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            return robots_for(url).allowed(path)

        while queue and len(report.images) < options.max_images:
            url, depth = queue.popleft()
            if url in seen_pages:
                continue
            seen_pages.add(url)
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                report.skipped["non-http links"] += 1
                continue
            try:
                if not permitted(url):
                    fail("robots-disallowed", f"{url}: disallowed by robots.txt")
                    continue
                page = fetcher.get_page(url, max_bytes=options.page_bytes, deadline=options.deadline)
            except (FetchFailure, AddressRefused) as exc:
                fail(getattr(exc, "reason", "error"), str(exc))
                continue
            except PipelineError as exc:
                fail("error", str(exc))
                continue
            if page.status >= 400:
                fail(f"http-{page.status}", f"{url}: HTTP {page.status}")
                continue
            if page.content_type not in PAGE_TYPES:
                report.skipped["links that are not HTML pages"] += 1
                continue
            if page.truncated:
                report.skipped["pages cut at the byte cap"] += 1
            report.pages += 1
            links, found, meta = parse_page(page.body.decode(_charset(page.headers), "replace"), page.url)
            if robots_tag_forbids(page.headers.get("x-robots-tag", "")) or any(robots_tag_forbids(m) for m in meta):
                fail("noai", f"{page.url}: the page asks not to be used for AI (noai/noimageai)")
                found = []
            for img_url, alt in found:
                if len(report.images) >= options.max_images:
                    break
                if img_url in seen_images:
                    continue
                seen_images.add(img_url)
                if urlsplit(img_url).scheme.lower() not in ("http", "https"):
                    report.skipped["images not on http(s) (data:, ...)"] += 1
                    continue
                if options.same_host and (urlsplit(img_url).hostname or "").lower() != start_host:
                    report.skipped["images on other hosts (--same-host)"] += 1
                    continue
                _fetch_image(fetcher, img_url, alt, page.url, depth, images_dir, options, report,
                             seen_content, provenance, permitted, fail)
            if depth < options.depth:
                for link in links:
                    if link in seen_pages:
                        continue
                    if options.same_host and (urlsplit(link).hostname or "").lower() != start_host:
                        continue
                    queue.append((link, depth + 1))
    atomic_write_text(raw / "provenance.jsonl", "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in provenance))
    return report


def _charset(headers: dict[str, str]) -> str:
    m = re.search(r"charset=([\w-]+)", headers.get("content-type", ""), re.IGNORECASE)
    return m.group(1) if m else "utf-8"


def _fetch_image(fetcher: Fetcher, url: str, alt: str, page: str, depth: int, images_dir: Path,
                 options: CrawlOptions, report: CrawlReport, seen_content: set[str], provenance: list[dict],
                 permitted, fail) -> None:
    name = hashlib.sha256(url.encode()).hexdigest()[:20]
    tmp = images_dir / f".{name}.download"
    try:
        if not permitted(url):
            fail("robots-disallowed", f"{url}: disallowed by robots.txt")
            return
        # the name promises an image, so the magic-byte check applies whatever the URL looks like
        result = fetcher.download(url, tmp, name="image.png", max_bytes=options.image_bytes)
    except (FetchFailure, AddressRefused) as exc:
        fail(getattr(exc, "reason", "error"), str(exc))
        return
    except PipelineError as exc:
        fail("error", str(exc))
        return
    if result.robots_tag and robots_tag_forbids(result.robots_tag):
        tmp.unlink(missing_ok=True)
        fail("noai", f"{url}: the image asks not to be used for AI (noai/noimageai)")
        return
    if result.sha256 in seen_content:
        tmp.unlink(missing_ok=True)
        report.skipped["duplicate images (same bytes)"] += 1
        return
    seen_content.add(result.sha256)
    from pipeline.core.images import EXT_FOR_FORMAT, sniff_file

    ext = EXT_FOR_FORMAT.get(sniff_file(tmp) or "", "img")
    dest = images_dir / f"{result.sha256[:16]}.{ext}"
    tmp.replace(dest)
    source = {"url": url, "page": page, "alt": alt, "depth": depth}
    if result.final_url and result.final_url != url:
        source["final_url"] = result.final_url
    provenance.append({"file": dest.name, "sha256": result.sha256, **source})
    report.images.append((dest, source))
    ui.info(f"image {len(report.images)}: {url}")
