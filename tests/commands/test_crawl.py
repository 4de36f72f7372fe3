"""`pipeline crawl` on the command line, against a tiny local site: the dataset and summary, the
address guard (exit 2, nothing requested), nothing collected (exit 2), failures (exit 1).
The crawler's rules in depth are in tests/sources/test_crawl.py."""

from __future__ import annotations

import pytest

from pipeline.core.dataset import load_dataset
from tests.helpers import digit_png, invoke
from tests.sources.servers import LocalServer, Route


def _page(body: str) -> Route:
    return Route(f"<!doctype html><html><body>{body}</body></html>".encode(), content_type="text/html")


@pytest.fixture
def site():
    with LocalServer() as srv:
        srv.routes["/robots.txt"] = Route(b"User-agent: *\nAllow: /\n", content_type="text/plain")
        srv.routes["/"] = _page('<img src="/a.png" alt="zero"><img src="/b.png" alt="one"><img src="/gone.png">')
        srv.routes["/empty.html"] = _page("<p>no pictures here</p>")
        srv.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
        srv.routes["/b.png"] = Route(digit_png(1, 2), content_type="image/png")
        yield srv


def test_collects_a_dataset_and_exits_1_for_the_failed_image(site, tmp_path, main):
    out = tmp_path / "ds"
    proc = main("crawl", site.url("/"), "--out", out, "--allow-private", "--rate", "0", "--retries", "0",
                "--label", "digit")
    assert proc.returncode == 1  # /gone.png answered 404
    assert "crawled 1 pages" in proc.stdout and "images            2" in proc.stdout
    assert "failed: http-404  1" in proc.stdout and site.url("/gone.png") in proc.stderr
    ds = load_dataset(out)
    assert len(ds.samples) == 2 and ds.classes == ["digit"] and ds.info.lineage[-1]["stage"] == "crawl"
    assert sorted(s.source["alt"] for s in ds.samples) == ["one", "zero"]
    assert {s.source["page"] for s in ds.samples} == {site.url("/")}


def test_loopback_is_refused_without_allow_private(site, tmp_path, main):
    proc = main("crawl", site.url("/"), "--out", tmp_path / "ds")
    assert proc.returncode == 2 and "refused loopback address" in proc.stderr
    assert sum(site.requests.values()) == 0 and not (tmp_path / "ds").exists()


def test_a_page_without_images_is_exit_2_after_the_summary(site, tmp_path, main):
    proc = main("crawl", site.url("/empty.html"), "--out", tmp_path / "ds", "--allow-private", "--rate", "0")
    assert proc.returncode == 2
    assert "crawled 1 pages" in proc.stdout
    assert proc.stderr.endswith("no image could be collected. Fix: see the failures above\n")
    assert not (tmp_path / "ds").exists()


def test_no_import_keeps_images_and_provenance(site, tmp_path, main):
    proc = main("crawl", site.url("/"), "--out", tmp_path / "ds", "--raw", tmp_path / "raw", "--allow-private",
                "--rate", "0", "--retries", "0", "--no-import")
    assert proc.returncode == 1
    assert (tmp_path / "raw" / "provenance.jsonl").read_text().count("\n") == 2
    assert not (tmp_path / "ds").exists()


def test_depth_is_bounded(tmp_path):
    result = invoke("crawl", "https://example.org/", "--out", tmp_path / "ds", "--depth", "11")
    assert result.exit_code == 2 and "Invalid value for '--depth'" in result.output
