"""The crawler against a local static site: robots.txt, pages, images, redirects, slow and endless responses."""

from __future__ import annotations

import time

import pytest

from pipeline.sources.crawl import CrawlOptions, best_srcset, crawl, parse_robots, robots_tag_forbids
from pipeline.sources.http import HttpOptions
from tests.helpers import FakeClock, digit_png
from tests.sources.servers import LocalServer, Route


def html(body: str) -> Route:
    return Route(f"<!doctype html><html><body>{body}</body></html>".encode(), content_type="text/html; charset=utf-8")


def endless(h) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.end_headers()
    try:
        while True:
            h.wfile.write(b"<p>" + b"x" * 8192 + b"</p>")
    except OSError:
        return


def slow(h) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", "1000")
    h.end_headers()
    try:
        for _ in range(1000):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(0.05)
    except OSError:
        return


def site(srv: LocalServer, robots: Route | None = None) -> None:
    r = srv.routes
    r["/robots.txt"] = robots or Route(b"User-agent: *\nDisallow: /private/\nAllow: /private/ok.png\n",
                                       content_type="text/plain")
    r["/"] = html('<img src="/img/a.png" alt="digit zero">'
                  '<img srcset="/img/b-small.png 100w, /img/b.png 800w" src="/img/b-small.png" alt="big one">'
                  '<img src="/private/secret.png" alt="hidden"><img src="/private/ok.png" alt="allowed">'
                  '<img src="/img/fake.png" alt="html in disguise"><img src="/img/dup.png" alt="same bytes as a">'
                  '<a href="/page2.html">next</a><a href="/noai.html">noai</a><a href="/slow.html">slow</a>'
                  '<a href="/endless.html">endless</a><a href="/moved">moved</a><a href="mailto:x@y">mail</a>')
    r["/page2.html"] = html('<img src="/img/c.png" alt="from page two"><a href="/page3.html">deeper</a>')
    r["/page3.html"] = html('<img src="/img/deep.png" alt="too deep">')
    r["/noai.html"] = Route(b"<html><img src='/img/n.png'></html>", content_type="text/html",
                            headers={"X-Robots-Tag": "noai"})
    r["/moved"] = Route(b"", status=301, headers={"Location": "/page4.html"})
    r["/page4.html"] = html('<img src="/img/redir" alt="after a redirect">')
    r["/img/redir"] = Route(b"", status=302, headers={"Location": "/img/d.png"})
    r["/slow.html"] = slow
    r["/endless.html"] = endless
    for name, (label, seed) in {"a": (0, 1), "b": (1, 2), "b-small": (1, 3), "c": (2, 4), "d": (3, 5),
                                "deep": (4, 6), "n": (5, 7)}.items():
        r[f"/img/{name}.png"] = Route(digit_png(label, seed), content_type="image/png")
    r["/img/dup.png"] = Route(digit_png(0, 1), content_type="image/png")
    r["/private/secret.png"] = Route(digit_png(6, 8), content_type="image/png")
    r["/private/ok.png"] = Route(digit_png(7, 9), content_type="image/png")
    r["/img/fake.png"] = Route(b"<html>error</html>", content_type="image/png")


PAGES_READ = 4  # "/", page2.html, noai.html and page4.html (behind /moved); not slow, endless or page3 (depth 2)


def opts(**kw) -> HttpOptions:
    base = dict(allow_private=True, backoff=0.01, retries=1, read_timeout=2, connect_timeout=2)
    return HttpOptions(**{**base, **kw})


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def test_crawl_collects_with_provenance_and_rules(server, tmp_path):
    site(server)
    # each reading of the clock is 0.4 s after the last: a response read in one or two blocks ends
    # within the 1 s deadline, the dripping and the endless page run past it on their third block
    report = crawl(server.url("/"), tmp_path / "raw", options=CrawlOptions(depth=1, max_images=50, deadline=1.0),
                   http=opts(clock=FakeClock(tick=0.4)))
    got = {src["url"].rsplit("/", 1)[-1]: src for _, src in report.images}
    assert set(got) == {"a.png", "b.png", "ok.png", "c.png", "redir"}
    assert got["a.png"]["alt"] == "digit zero" and got["a.png"]["page"] == server.url("/")
    assert got["redir"]["final_url"].endswith("/img/d.png") and got["c.png"]["depth"] == 1
    assert server.requests["/private/secret.png"] == 0 and server.requests["/img/deep.png"] == 0
    assert server.requests["/img/n.png"] == 0 and server.requests["/img/b-small.png"] == 0
    assert report.failures["robots-disallowed"] == 1 and report.failures["noai"] == 1
    assert report.failures["content-mismatch"] == 1 and report.failures["deadline"] == 2
    assert server.requests["/slow.html"] == 1 and server.requests["/endless.html"] == 1
    assert report.skipped["duplicate images (same bytes)"] == 1
    assert report.skipped["pages cut at the byte cap"] == 0
    assert report.pages == PAGES_READ
    assert (tmp_path / "raw" / "provenance.jsonl").read_text().count("\n") == 5


def test_endless_page_is_cut_at_the_byte_cap(server, tmp_path):
    site(server)
    # the clock stands still, so the deadline can never end the read: only the byte cap does
    report = crawl(server.url("/endless.html"), tmp_path / "raw",
                   options=CrawlOptions(depth=0, page_bytes=100_000, deadline=5), http=opts(clock=FakeClock()))
    assert report.skipped["pages cut at the byte cap"] == 1 and report.pages == 1
    assert not report.failures and not report.images
    assert server.requests["/endless.html"] == 1


@pytest.mark.parametrize("robots, allowed", [
    (Route(b"", status=500), False),  # RFC 9309: a server error means disallow everything
    (Route(b"", status=404), True),  # unavailable (4xx) means allow everything
    (Route(b"User-agent: pipeline-crawler\nDisallow: /\n\nUser-agent: *\nAllow: /\n", content_type="text/plain"), False),
])
def test_robots_status_rules(server, tmp_path, robots, allowed):
    site(server, robots)
    report = crawl(server.url("/page3.html"), tmp_path / "raw", options=CrawlOptions(depth=0), http=opts(retries=0))
    assert (len(report.images) == 1) == allowed
    assert (server.requests["/page3.html"] == 1) == allowed


def test_robots_unreachable_means_disallow(tmp_path):
    with LocalServer() as srv:
        url = srv.url("/page.html")
    report = crawl(url, tmp_path / "raw", options=CrawlOptions(depth=0), http=opts(retries=0))
    assert report.failures["robots-disallowed"] == 1 and not report.images


@pytest.mark.parametrize("text, path, allowed", [
    ("User-agent: *\nDisallow: /a\nAllow: /a/b\n", "/a/b/c", True),  # longest match wins
    ("User-agent: *\nDisallow: /a\nAllow: /a/b\n", "/a/x", False),
    ("User-agent: *\nDisallow: /*.png$\n", "/x/y.png", False),
    ("User-agent: *\nDisallow: /*.png$\n", "/x/y.png?s=1", True),
    ("User-agent: *\nDisallow: /p\nAllow: /p\n", "/p", True),  # allow on ties
    ("User-agent: other\nDisallow: /\n", "/x", True),  # a group for someone else
    ("User-agent: PIPELINE-crawler\nUser-agent: x\nDisallow: /\n", "/x", False),  # case-insensitive, grouped agents
    ("", "/x", True),
])
def test_robots_parse_table(text, path, allowed):
    assert parse_robots(text).allowed(path) == allowed


@pytest.mark.parametrize("value, forbids", [
    ("noai", True), ("noimageai, noindex", True), ("noindex, nofollow", False),
    ("otherbot: noai", True), ("pipeline-crawler: noimageai", True), ("", False),
])
def test_robots_tag_table(value, forbids):
    assert robots_tag_forbids(value) == forbids


def test_best_srcset():
    assert best_srcset("a.png 1x, b.png 2x") == "b.png"
    assert best_srcset("a.png 480w, b.png 1080w, c.png 800w") == "b.png"
    assert best_srcset("") is None
