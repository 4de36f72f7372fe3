"""`pipeline.core.paths`: natural sort, hashes, containment, safe names, atomic writes, links."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipeline.core.paths import (
    atomic_write_bytes,
    atomic_write_text,
    is_within,
    link_or_copy,
    natural_key,
    natural_sorted,
    safe_stem,
    sha256_bytes,
    sha256_file,
)


def test_natural_sort_orders_numbers_by_value() -> None:
    assert natural_sorted(["img10", "img2", "img1", "Img3"]) == ["img1", "img2", "Img3", "img10"]
    assert natural_sorted([Path("b/10.png"), Path("b/9.png")], key=str) == [Path("b/9.png"), Path("b/10.png")]
    assert natural_key("a2") < natural_key("a10")


def test_safe_stem_keeps_unicode_and_blocks_escapes() -> None:
    assert safe_stem("ü/chat été") == "ü/chat_été"
    assert ".." not in safe_stem("../../etc/passwd").split("/")
    assert safe_stem("a:b*c") == "a_b_c"


@pytest.mark.parametrize("sample_id, stem", [
    ("a\\b\\c", "a/b/c"),  # Windows separators become folders
    ("/abs/x", "abs/x"),  # no leading slash: always relative
    ("..", "_"),
    ("", "_"),  # nothing left: one placeholder
    ("a//b", "a/b"),  # empty parts dropped
])
def test_safe_stem_table(sample_id: str, stem: str) -> None:
    assert safe_stem(sample_id) == stem


def test_hashes_of_bytes_and_files_agree(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # more than one read chunk
    (tmp_path / "f").write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_bytes(data) == want and sha256_file(tmp_path / "f") == want
    assert sha256_file(tmp_path / "f", chunk=1000) == want


def test_is_within_resolves_links_and_dots(tmp_path: Path) -> None:
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside")
    assert is_within(tmp_path / "root" / "a", tmp_path / "root")
    assert not is_within(tmp_path / "root" / "a" / ".." / ".." / "outside", tmp_path / "root")
    assert not is_within(tmp_path / "root" / "link", tmp_path / "root")


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "x" / "f.bin", b"abc")
    assert (tmp_path / "x" / "f.bin").read_bytes() == b"abc"
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["f.bin"]
    atomic_write_text(tmp_path / "x" / "f.bin", "été")
    assert (tmp_path / "x" / "f.bin").read_bytes() == "été".encode()


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_link_or_copy_links_and_replaces(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"one")
    dest = tmp_path / "deep" / "dest.bin"
    assert link_or_copy(src, dest) is False  # a hard link: nothing new to sync
    assert dest.read_bytes() == b"one" and os.path.samefile(src, dest)
    other = tmp_path / "other.bin"
    other.write_bytes(b"two")
    assert link_or_copy(other, dest) is False  # an existing dest is replaced
    assert dest.read_bytes() == b"two" and src.read_bytes() == b"one"


def test_link_or_copy_copies_where_links_fail(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"bytes")

    def no_links(a, b):
        raise OSError("cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    assert link_or_copy(src, tmp_path / "copy.bin") is True
    assert (tmp_path / "copy.bin").read_bytes() == b"bytes" and not os.path.samefile(src, tmp_path / "copy.bin")
