"""`Download`: the typed result every remote source returns, and the folder it is imported from."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from pipeline.core.errors import UsageError
from pipeline.sources.download import KINDS, Download, default_raw


def make(tmp_path: Path, kind: str, **kw) -> Download:
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    return Download(source="url", raw=raw, kind=kind, report=None, **kw)


def test_default_raw_sits_beside_the_dataset(tmp_path):
    assert default_raw(tmp_path / "datasets" / "digits") == tmp_path / "datasets" / "digits-raw"
    assert default_raw(Path("digits")) == Path("digits-raw")


def test_an_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="expected one of archive, files, folder, images, mixed, none"):
        make(tmp_path, "zip")
    assert KINDS == ("archive", "files", "folder", "images", "mixed", "none")


def test_defaults_name_a_fetch_with_empty_lineage_keys(tmp_path):
    got = make(tmp_path, "none")
    assert (got.stage, got.params, got.inputs, got.files, got.images, got.folder) == ("fetch", {}, {}, [], [], None)


def test_an_archive_is_extracted_once(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner/a.txt", b"a")
    got = make(tmp_path, "archive")
    archive = got.raw / "data.zip"
    archive.write_bytes(buf.getvalue())
    got.files = [archive]
    folder = got.unpacked()
    assert folder == got.raw / "extracted" / "data" and (folder / "inner" / "a.txt").read_bytes() == b"a"
    (folder / "inner" / "a.txt").write_bytes(b"changed")  # an unchanged archive is not extracted again
    assert got.unpacked() == folder and (folder / "inner" / "a.txt").read_bytes() == b"changed"


def test_loose_files_are_linked_into_one_folder_again_on_a_rerun(tmp_path):
    got = make(tmp_path, "files")
    for name in ("a.csv", "b.csv"):
        (got.raw / name).write_text(name, encoding="utf-8")
    got.files = [got.raw / "a.csv", got.raw / "b.csv"]
    folder = got.unpacked()
    assert folder == got.raw / ".import"
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv", "b.csv"]
    assert (folder / "a.csv").stat().st_ino == (got.raw / "a.csv").stat().st_ino  # a link, not a copy
    assert got.unpacked() == folder


def test_a_folder_is_imported_as_it_is(tmp_path):
    got = make(tmp_path, "folder", folder=tmp_path / "raw")
    assert got.unpacked() == tmp_path / "raw"


def test_mixed_files_are_refused_with_where_they_are(tmp_path):
    got = make(tmp_path, "mixed", files=[tmp_path / "raw" / "a.png", tmp_path / "raw" / "b.csv"], arrived="mixed")
    with pytest.raises(UsageError, match=r"downloaded 2 files of different kinds \(mixed\)") as caught:
        got.unpacked()
    assert str(tmp_path / "raw") in str(caught.value)


@pytest.mark.parametrize("kind", ["images", "none"])
def test_images_and_nothing_have_no_folder(tmp_path, kind):
    with pytest.raises(UsageError, match=f"a {kind} download has no folder to import"):
        make(tmp_path, kind).unpacked()
