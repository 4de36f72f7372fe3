"""`pipeline fetch url` on the command line: refusals before any request (exit 2, one line), the
summary, exit 1 when a URL failed. Downloads in depth are in tests/sources/test_url.py and test_http.py."""

from __future__ import annotations

import pytest

from pipeline.core.dataset import load_dataset
from tests.helpers import digit_png
from tests.sources.servers import LocalServer, Route


@pytest.fixture
def server():
    with LocalServer() as srv:
        srv.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
        yield srv


@pytest.mark.parametrize("args, message", [
    ([], "no URLs given"),
    (["ftp://example.org/a.png"], "ftp://example.org/a.png: not an http(s) URL"),
    (["http://example.org/a.png", "http://example.org/b.png", "--sha256", "0" * 64],
     "--sha256/--md5 apply to exactly one URL on the command line"),
    (["http://example.org/a.png", "--max-size", "lots"], "size 'lots': expected a number"),
])
def test_refusals_are_one_line_exit_2(tmp_path, main, args, message):
    proc = main("fetch", "url", *args, "--out", tmp_path / "ds")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds-raw").exists()


def test_one_image_with_a_label_and_its_summary(server, tmp_path, main):
    out = tmp_path / "ds"
    proc = main("fetch", "url", server.url("/a.png"), "--out", out, "--label", "zero", "--allow-private",
                "--rate", "0")
    assert proc.returncode == 0, proc.stderr
    assert "fetched 1 of 1 URLs" in proc.stdout and "downloaded         1" in proc.stdout
    assert f"raw                {tmp_path / 'ds-raw'}" in proc.stdout
    ds = load_dataset(out)
    assert [s.label for s in ds.samples] == ["zero"] and ds.samples[0].source["url"] == server.url("/a.png")


def test_a_failed_url_is_listed_and_exits_1(server, tmp_path, main):
    proc = main("fetch", "url", server.url("/a.png"), server.url("/gone.png"), "--out", tmp_path / "ds",
                "--allow-private", "--rate", "0", "--retries", "0")
    assert proc.returncode == 1
    assert "fetched 1 of 2 URLs" in proc.stdout and "http-404" in proc.stdout
    assert server.url("/gone.png") in proc.stderr
    assert len(load_dataset(tmp_path / "ds").samples) == 1


def test_no_import_only_downloads(server, tmp_path, main):
    proc = main("fetch", "url", server.url("/a.png"), "--out", tmp_path / "ds", "--raw", tmp_path / "raw",
                "--no-import", "--allow-private", "--rate", "0")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "raw" / "a.png").read_bytes() == digit_png(0, 1)
    assert not (tmp_path / "ds").exists()
