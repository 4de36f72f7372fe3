"""Safe extraction: a hostile archive set must leave nothing outside (or inside) the destination."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.sources.archive import (
    ArchiveLimits,
    ArchiveRefused,
    archive_kind,
    extract,
    extracted_from,
    unpack,
)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: list[tuple[str, str, object]], mode: str = "w:gz") -> Path:
    """members: (name, kind, payload) with kind file/dir/sym/hard/fifo/chr."""
    with tarfile.open(path, mode) as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = payload
            tf.addfile(info)
    return path


@pytest.fixture
def box(tmp_path):
    """tmp/box/{archives,out}: everything outside `out` is watched for new files."""
    (tmp_path / "archives").mkdir()
    return tmp_path


HOSTILE = [
    # (description, builder)
    ("zip slip", lambda d: make_zip(d / "slip.zip", {"ok.txt": b"x", "../../evil.txt": b"pwned"})),
    ("zip absolute", lambda d: make_zip(d / "abs.zip", {"/tmp/evil-abs.txt": b"pwned"})),
    ("zip drive letter", lambda d: make_zip(d / "drive.zip", {"C:/evil.txt": b"pwned"})),
    ("zip backslash slip", lambda d: make_zip(d / "bs.zip", {"..\\..\\evil.txt": b"pwned"})),
    ("zip symlink out", lambda d: make_zip(d / "sym.zip", {}, {"link": "../../etc/passwd"})),
    ("tar symlink escape", lambda d: make_tar(d / "sym.tar.gz", [("a/link", "sym", "../../../etc"),
                                                                  ("a/link/passwd", "file", b"pwned")])),
    ("tar absolute symlink", lambda d: make_tar(d / "asym.tar", [("link", "sym", "/etc/passwd")], mode="w")),
    ("tar hardlink escape", lambda d: make_tar(d / "hard.tar.bz2", [("h", "hard", "../outside.txt")], mode="w:bz2")),
    ("tar absolute path", lambda d: make_tar(d / "abs.tar.xz", [("/tmp/evil-tar.txt", "file", b"pwned")], mode="w:xz")),
    ("tar dotdot", lambda d: make_tar(d / "dd.tar.gz", [("x/../../evil.txt", "file", b"pwned")])),
    ("tar fifo", lambda d: make_tar(d / "fifo.tar.gz", [("pipe", "fifo", None)])),
    ("tar device", lambda d: make_tar(d / "dev.tar.gz", [("dev", "chr", None)])),
]


@pytest.mark.parametrize("desc, build", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_archives_are_refused_whole(box, desc, build):
    archive = build(box / "archives")
    before = files_under(box)
    out = box / "data"
    with pytest.raises(ArchiveRefused):
        extract(archive, out)
    assert files_under(box) == before  # nothing new anywhere: no partial extraction, no temp folder
    assert not Path("/tmp/evil-abs.txt").exists() and not Path("/tmp/evil-tar.txt").exists()


def test_zip_bomb_refused_before_writing(box):
    path = box / "archives" / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (30 << 20))
    assert path.stat().st_size < 100_000
    with pytest.raises(ArchiveRefused, match="ratio"):
        extract(path, box / "out")
    assert not (box / "out").exists()


def test_tar_bomb_and_member_caps(box):
    tar = make_tar(box / "archives" / "z.tar.gz", [("zeros.bin", "file", b"\0" * (12 << 20))])
    with pytest.raises(ArchiveRefused, match="ratio"):
        extract(tar, box / "out")
    many = make_zip(box / "archives" / "many.zip", {f"f{i}.txt": b"x" for i in range(20)})
    with pytest.raises(ArchiveRefused, match="too many members"):
        extract(many, box / "out", ArchiveLimits(max_members=10))
    with pytest.raises(ArchiveRefused, match="size limit"):
        extract(many, box / "out", ArchiveLimits(max_total=10))
    assert not (box / "out").exists()


def test_gz_bomb_single_file(box):
    path = box / "archives" / "big.bin.gz"
    path.write_bytes(gzip.compress(b"\0" * (12 << 20)))
    with pytest.raises(ArchiveRefused, match="ratio"):
        extract(path, box / "out")


def test_good_archives_extract_with_inside_links_as_copies(box):
    tar = make_tar(box / "archives" / "ok.tar.gz", [
        ("data", "dir", None), ("data/cat/1.txt", "file", b"one"), ("data/dog/2.txt", "file", b"two"),
        ("data/alias.txt", "sym", "cat/1.txt"), ("data/hard.txt", "hard", "data/dog/2.txt"),
        ("data/dangling", "sym", "nowhere.txt"),
    ])
    got = extract(tar, box / "out", sha256="abc")
    assert got.files == ["data/alias.txt", "data/cat/1.txt", "data/dog/2.txt", "data/hard.txt"]
    assert (box / "out" / "data" / "alias.txt").read_bytes() == b"one"
    assert not (box / "out" / "data" / "alias.txt").is_symlink()
    assert (box / "out" / "data" / "hard.txt").read_bytes() == b"two"
    assert extracted_from(box / "out") == "abc"
    z = make_zip(box / "archives" / "ok.zip", {"a/b.txt": b"b", "ünï/çødé.txt": b"u"})
    assert extract(z, box / "z").files == ["a/b.txt", "ünï/çødé.txt"]
    gz = box / "archives" / "table.csv.gz"
    gz.write_bytes(gzip.compress(b"label,pixel0\n"))
    assert extract(gz, box / "g").files == ["table.csv"]


def test_killed_extraction_is_redone(box):
    z = make_zip(box / "archives" / "ok.zip", {"a.txt": b"a"})
    stale = box / ".out.extract-999-deadbeef"
    stale.mkdir()
    (stale / "half.txt").write_text("half")
    extract(z, box / "out")
    assert not stale.exists() and files_under(box / "out") == {"a.txt"}


@pytest.mark.parametrize("name, data, kind", [
    ("a.zip", b"PK\x03\x04" + b"\0" * 40, "zip"),
    ("a.gz", gzip.compress(b"hello", mtime=0), "gz"),
    ("a.bin", b"hello world", None),
])
def test_archive_kind(tmp_path, name, data, kind):
    (tmp_path / name).write_bytes(data)
    assert archive_kind(tmp_path / name) == kind


def test_corrupt_zip_is_a_data_error(tmp_path):
    from pipeline.core.errors import DataError

    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04" + os.urandom(100))
    with pytest.raises(DataError):
        extract(tmp_path / "bad.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unpack_extracts_each_archive_once_under_extracted(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    a = make_zip(raw / "b-set.tar.gz.zip", {"x.txt": b"x"})
    b = raw / "a-set.tar.gz"
    with tarfile.open(b, "w:gz") as tf:
        info = tarfile.TarInfo("y.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"y"))
    (raw / "notes.txt").write_text("not an archive")
    got = unpack([a, raw / "notes.txt", b], raw)
    # in name order, non-archives left out, the longest archive suffix taken off the folder name
    assert got == [(b, raw / "extracted" / "a-set"), (a, raw / "extracted" / "b-set.tar.gz")]
    assert (raw / "extracted" / "a-set" / "y.txt").read_bytes() == b"y"
    stamp = (raw / "extracted" / "a-set" / "y.txt").stat().st_mtime_ns
    assert unpack([b], raw) == [(b, raw / "extracted" / "a-set")]
    assert (raw / "extracted" / "a-set" / "y.txt").stat().st_mtime_ns == stamp  # the same bytes: not redone



def test_extracted_files_follow_the_umask(box):
    archive = make_zip(box / "archives" / "a.zip", {"d/a.txt": b"a"})
    old = os.umask(0o077)
    try:
        done = extract(archive, box / "out")
    finally:
        os.umask(old)
    assert os.stat(done.dest / "d" / "a.txt").st_mode & 0o777 == 0o600
