"""The fetch stages (`pipeline.fetch`): download from a local server, then import what arrived."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline import fetch
from pipeline.core.dataset import load_dataset
from pipeline.core.errors import UsageError
from pipeline.sources.crawl import CrawlOptions
from pipeline.sources.download import Download
from pipeline.sources.http import HttpOptions
from pipeline.sources.url import UrlSpec
from tests.helpers import digit_png, zipped
from tests.sources.servers import LocalServer, Route


def opts() -> HttpOptions:
    return HttpOptions(allow_private=True, backoff=0.01, retries=0, read_timeout=5, connect_timeout=5)


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def test_url_images_become_a_labelled_dataset_with_provenance(server, tmp_path):
    server.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
    server.routes["/b.png"] = Route(digit_png(1, 2), content_type="image/png")
    specs = [UrlSpec(server.url("/a.png")), UrlSpec(server.url("/b.png"))]
    seen: list[Download] = []
    done = fetch.fetch_url(specs, tmp_path / "ds", options=opts(), label="digit", on_download=seen.append)
    assert [d.kind for d in seen] == ["images"] and done.download is seen[0]
    assert done.download.raw == tmp_path / "ds-raw"  # the default raw folder sits beside the dataset
    assert done.imported is not None and done.imported.kind == "images" and done.imported.imported == 2
    ds = load_dataset(tmp_path / "ds")
    assert ds.classes == ["digit"] and sorted(s.source["url"] for s in ds.samples) == [s.url for s in specs]
    entry = ds.info.lineage[-1]
    assert entry["stage"] == "fetch"
    assert entry["params"] == {"source": "url", "urls": [s.url for s in specs], "raw": str(tmp_path / "ds-raw")}
    assert entry["inputs"] == {server.url("/a.png"): hashlib.sha256(digit_png(0, 1)).hexdigest(),
                               server.url("/b.png"): hashlib.sha256(digit_png(1, 2)).hexdigest()}


def test_url_archive_is_extracted_and_its_format_detected(server, tmp_path):
    tree = {f"digits/train/{c}/{i}.png": digit_png(c, 10 * c + i) for c in (0, 1) for i in range(2)}
    server.routes["/d.zip"] = Route(zipped(tree), content_type="application/zip")
    done = fetch.fetch_url([UrlSpec(server.url("/d.zip"))], tmp_path / "ds", raw=tmp_path / "raw", options=opts())
    assert done.download.kind == "archive" and done.imported.kind == "imagefolder"
    assert (tmp_path / "raw" / "extracted" / "d").is_dir()
    assert load_dataset(tmp_path / "ds").splits() == {"train": 4}


def test_url_files_of_different_kinds_are_refused_after_the_download_is_shown(server, tmp_path):
    server.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
    server.routes["/t.csv"] = Route(b"label,pixel0,pixel1,pixel2,pixel3\n1,0,0,0,0\n", content_type="text/csv")
    seen: list[Download] = []
    with pytest.raises(UsageError, match="2 files of different kinds"):
        fetch.fetch_url([UrlSpec(server.url("/a.png")), UrlSpec(server.url("/t.csv"))], tmp_path / "ds",
                        options=opts(), on_download=seen.append)
    assert [d.kind for d in seen] == ["mixed"] and not (tmp_path / "ds").exists()


def test_url_download_only_imports_nothing(server, tmp_path):
    server.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
    done = fetch.fetch_url([UrlSpec(server.url("/a.png"))], tmp_path / "ds", options=opts(), do_import=False)
    assert done.imported is None and not (tmp_path / "ds").exists()
    assert done.download.files == [tmp_path / "ds-raw" / "a.png"]


def test_url_where_every_download_failed_imports_nothing(server, tmp_path):
    done = fetch.fetch_url([UrlSpec(server.url("/missing.png"))], tmp_path / "ds", options=opts())
    assert done.download.kind == "none" and done.imported is None
    assert len(done.download.report.failures) == 1 and not (tmp_path / "ds").exists()


def test_crawl_imports_the_images_with_stage_crawl(server, tmp_path):
    server.routes["/"] = Route(b'<html><img src="/a.png" alt="zero"></html>', content_type="text/html")
    server.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
    done = fetch.crawl(server.url("/"), tmp_path / "ds", options=CrawlOptions(depth=0), http=opts())
    ds = load_dataset(tmp_path / "ds")
    assert done.imported.imported == 1 and ds.samples[0].source["alt"] == "zero"
    entry = ds.info.lineage[-1]
    assert entry["stage"] == "crawl"
    assert entry["params"] == {"source": "crawl", "start": server.url("/"), "depth": 0, "max_images": 100,
                               "same_host": False}
    assert entry["inputs"] == {server.url("/a.png"): hashlib.sha256(digit_png(0, 1)).hexdigest()}


def test_crawl_without_images_says_so_after_showing_the_crawl(server, tmp_path):
    server.routes["/"] = Route(b"<html>no images here</html>", content_type="text/html")
    seen: list[Download] = []
    with pytest.raises(fetch.NothingCollected, match="no image could be collected") as caught:
        fetch.crawl(server.url("/"), tmp_path / "ds", options=CrawlOptions(depth=0), http=opts(),
                    on_download=seen.append)
    assert seen == [caught.value.download] and caught.value.download.report.pages == 1
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2


def test_crawl_without_images_is_fine_when_only_collecting(server, tmp_path):
    server.routes["/"] = Route(b"<html>no images here</html>", content_type="text/html")
    done = fetch.crawl(server.url("/"), tmp_path / "ds", options=CrawlOptions(depth=0), http=opts(), do_import=False)
    assert done.imported is None and done.download.images == []


def test_import_download_links_loose_files_into_one_folder(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, label in (("train.csv", 3), ("test.csv", 4)):
        (raw / name).write_text(f"label,pixel0,pixel1,pixel2,pixel3\n{label},0,255,0,255\n", encoding="utf-8")
    got = Download(source="kaggle", raw=raw, kind="files", report=None, files=[raw / "test.csv", raw / "train.csv"],
                   params={"source": "kaggle"}, inputs={"kaggle:o/s@1/train.csv": "0" * 64})
    outcome = fetch.import_download(got, tmp_path / "ds")
    assert outcome.kind == "pixel-csv" and outcome.imported == 2
    assert sorted(p.name for p in (raw / ".import").iterdir()) == ["test.csv", "train.csv"]
    ds = load_dataset(tmp_path / "ds")
    assert ds.splits() == {"train": 1, "test": 1}
    assert ds.info.lineage[-1]["inputs"] == {"kaggle:o/s@1/train.csv": "0" * 64}


def test_fetch_mnist_embedded_and_its_option_check(tmp_path):
    with pytest.raises(UsageError, match="--mirror and --raw do not apply"):
        fetch.fetch_mnist(tmp_path / "m", embedded=True, raw_dir=tmp_path / "raw")
    dataset, report = fetch.fetch_mnist(tmp_path / "m", embedded=True)
    assert len(dataset.samples) == 5000 and report.raw_dir is None
    assert Path(dataset.root) == tmp_path / "m"
