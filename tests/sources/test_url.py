"""`pipeline fetch url` end to end against a local server: import, idempotent re-runs, failure summary."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.core.errors import UsageError
from pipeline.sources.url import UrlSpec, build_specs, fetch, parse_list, plan_names
from tests.helpers import digit_png, zipped
from tests.helpers import run_cli as run
from tests.sources.servers import LocalServer, Route


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def files_outside(root: Path, allowed: list[Path]) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not any(a in p.parents for a in allowed)]


def test_imagefolder_zip_end_to_end_and_rerun_downloads_nothing(server, tmp_path, capsys):
    tree = {f"digits/{split}/{c}/{i}.png": digit_png(c, i + 10 * c) for split in ("train", "test") for c in (0, 1)
            for i in range(3)}
    blob = zipped(tree)
    server.routes["/digits.zip"] = Route(blob, content_type="application/zip")
    out = tmp_path / "ds"
    args = ["fetch", "url", server.url("/digits.zip"), "--sha256", hashlib.sha256(blob).hexdigest(),
            "--out", str(out), "--allow-private", "--rate", "0"]
    assert run(args) == 0
    ds = load_dataset(out)
    assert ds.classes == ["0", "1"] and ds.splits() == {"train": 6, "test": 6}
    entry = ds.info.lineage[-1]
    assert entry["inputs"][server.url("/digits.zip")] == hashlib.sha256(blob).hexdigest()
    assert entry["params"]["source"] == "url"
    capsys.readouterr()
    assert run(args) == 2 and "--overwrite" in capsys.readouterr().err  # the dataset is not replaced without it
    assert run([*args, "--overwrite"]) == 0
    text = capsys.readouterr().out
    assert server.requests["/digits.zip"] == 1 and re.search(r"already present\s+1\n", text)


def test_url_list_counts_every_failure(server, tmp_path, capsys):
    server.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
    server.routes["/b.png"] = Route(digit_png(1, 2), content_type="image/png")
    server.routes["/copy-of-a.png"] = Route(digit_png(0, 1), content_type="image/png")
    server.routes["/login.jpg"] = Route(b"<html>please log in</html>", content_type="text/html")
    server.routes["/busy.png"] = Route(digit_png(2, 3), fail_first=[(503, {"Retry-After": "0"})] * 10)
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join([
        "# images",
        server.url("/a.png"),
        server.url("/b.png") + "  sha256:" + "0" * 64,
        server.url("/copy-of-a.png") + "   # same bytes as a",
        server.url("/missing.png"),
        server.url("/login.jpg"),
        server.url("/busy.png"),
    ]) + "\n")
    out = tmp_path / "ds"
    code = run(["fetch", "url", "--list", str(listing), "--out", str(out), "--allow-private", "--rate", "0",
                "--retries", "1", "--label", "digit"])
    captured = capsys.readouterr()
    assert code == 1
    for row in ("failed: checksum", "failed: content-mismatch", "failed: http-404", "failed: http-503",
                "duplicates (same bytes)", "imported"):
        assert row in captured.out
    assert re.search(r"duplicates \(same bytes\)\s+1\n", captured.out)
    ds = load_dataset(out)
    assert len(ds.samples) == 1 and ds.samples[0].source["url"] == server.url("/a.png")
    raw = tmp_path / "ds-raw"
    assert sorted(p.name for p in raw.iterdir() if not p.name.startswith(".")) == ["a.png"]


def test_pixel_csv_by_url(server, tmp_path):
    rows = ["label," + ",".join(f"pixel{i}" for i in range(784))]
    rows += [f"{r % 2}," + ",".join(str((r + i) % 256) for i in range(784)) for r in range(5)]
    rows.append("1," + ",".join(["300"] * 784))  # out of range: reported, left out
    server.routes["/train.csv"] = Route(("\n".join(rows) + "\n").encode(), content_type="text/csv")
    out = tmp_path / "ds"
    assert run(["fetch", "url", server.url("/train.csv"), "--out", str(out), "--allow-private"]) == 0
    ds = load_dataset(out)
    assert len(ds.samples) == 5 and ds.samples[0].width == 28 and ds.splits() == {"train": 5}


def test_hostile_zip_by_url_writes_nothing_outside(server, tmp_path, capsys):
    server.routes["/evil.zip"] = Route(zipped({"ok/0/a.png": digit_png(0, 0), "../../../evil.png": b"x"}),
                                       content_type="application/zip")
    work = tmp_path / "work"
    work.mkdir()
    code = run(["fetch", "url", server.url("/evil.zip"), "--out", str(work / "ds"), "--allow-private"])
    assert code == 2 and "leaves the destination" in capsys.readouterr().err
    assert files_outside(tmp_path, [work / "ds-raw"]) == []
    assert not (work / "ds").exists()
    assert not [p for p in (work / "ds-raw" / "extracted").rglob("*")]  # no partial extraction kept


def test_refused_without_allow_private(server, tmp_path, capsys):
    server.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
    code = run(["fetch", "url", server.url("/a.png"), "--out", str(tmp_path / "ds")])
    assert code == 1 and "failed: refused-address" in capsys.readouterr().out
    assert sum(server.requests.values()) == 0


def test_list_parsing_and_names(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("https://x.org/a.png md5:" + "a" * 32 + "\n\n# c\nhttps://y.org/a.png\nhttps://z.org/dir/\n")
    specs = parse_list(p)
    assert [s.md5 for s in specs] == ["a" * 32, None, None]
    names = plan_names([s.url for s in specs])
    assert names["https://z.org/dir/"] == "download"
    assert names["https://x.org/a.png"] != names["https://y.org/a.png"]
    p.write_text("ftp://x.org/a.png\n")
    with pytest.raises(Exception, match="not an http"):
        parse_list(p)


def test_build_specs_checks_what_the_command_line_gives(tmp_path):
    listed = tmp_path / "l.txt"
    listed.write_text("https://y.org/b.png\n")
    specs = build_specs(("https://x.org/a.png",), listed, sha256="A" * 64)
    assert [(s.url, s.sha256) for s in specs] == [("https://x.org/a.png", "a" * 64), ("https://y.org/b.png", None)]
    assert build_specs(("https://x.org/a.png",), md5="b" * 32)[0].md5 == "b" * 32
    with pytest.raises(UsageError, match="no URLs given"):
        build_specs(())
    with pytest.raises(UsageError, match="ftp://x.org/a.png: not an http"):
        build_specs(("ftp://x.org/a.png",))
    with pytest.raises(UsageError, match="exactly one URL"):
        build_specs(("https://x.org/a.png", "https://x.org/b.png"), sha256="a" * 64)


@pytest.mark.parametrize("paths, kind", [
    (["/a.png", "/b.png"], "images"),  # any number of images
    (["/t.csv"], "folder"),  # one data file: its folder
    (["/d.zip"], "archive"),  # one archive
    (["/d.zip", "/e.zip"], "mixed"),  # two archives are not imported together
    (["/a.png", "/t.csv"], "mixed"),
    (["/gone.png"], "none"),  # nothing arrived
])
def test_fetch_says_how_to_import_what_arrived(server, tmp_path, paths, kind):
    server.routes["/a.png"] = Route(digit_png(0, 1), content_type="image/png")
    server.routes["/b.png"] = Route(digit_png(1, 2), content_type="image/png")
    server.routes["/t.csv"] = Route(b"label,pixel0,pixel1,pixel2,pixel3\n1,0,0,0,0\n", content_type="text/csv")
    server.routes["/d.zip"] = Route(zipped({"x/0/a.png": digit_png(0, 1)}), content_type="application/zip")
    server.routes["/e.zip"] = Route(zipped({"x/1/b.png": digit_png(1, 2)}), content_type="application/zip")
    from pipeline.sources.http import HttpOptions

    got = fetch([UrlSpec(server.url(p)) for p in paths], tmp_path / "raw",
                options=HttpOptions(allow_private=True, retries=0))
    assert got.kind == kind and got.source == "url" and got.stage == "fetch"
    assert got.params["urls"] == [server.url(p) for p in paths]
    assert set(got.inputs) == {r.url for r in got.report.done}
    if kind == "folder":
        assert got.folder == tmp_path / "raw"
    if kind == "images":
        assert [src["url"] for _, src in got.images] == [server.url(p) for p in paths]

