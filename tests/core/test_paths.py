"""`pipeline.core.paths`: natural sort, hashes, containment, safe names, atomic writes, links."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.paths import (
    atomic_write_bytes,
    atomic_write_text,
    export_stem,
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


@pytest.mark.parametrize(("sample_id", "stem"), [
    ("street (1)", "street (1)"),  # spaces and parentheses: a name every file system takes, kept
    ("sub dir/ünï (2)", "sub dir/ünï (2)"),
    ("a:b*c?d", "a_b_c_d"),  # what Windows refuses, replaced
    ("../../etc/passwd", "etc/passwd"),  # never out of the export folder
    ("a\\b", "a/b"),
    ("dots. ", "dots"),  # (Windows drops trailing dots and spaces)
    ("tab\there", "tab_here"),
    ("..", "_"),
    ("", "_"),
])
def test_export_stem_keeps_the_names_a_file_system_takes(sample_id: str, stem: str) -> None:
    assert export_stem(sample_id) == stem


@pytest.mark.parametrize("sample_id, stem", [
    ("a\\b\\c", "a/b/c"),  # Windows separators become folders
    ("/abs/x", "abs/x"),  # no leading slash: always relative
    ("..", "_"),
    ("", "_"),  # nothing left: one placeholder
    ("a//b", "a/b"),  # empty parts dropped
])
def test_safe_stem_table(sample_id: str, stem: str) -> None:
    assert safe_stem(sample_id) == stem


def _safe_stem_by_parts(sample_id: str) -> str:
    """`safe_stem`'s definition, part by part (what its one-match shortcut must agree with)."""
    parts = []
    for part in sample_id.replace("\\", "/").split("/"):
        part = re.sub(r"[^\w.\-/]+", "_", part).strip(" ")
        if part in ("", ".", ".."):
            part = "_" if part else ""
        if part:
            parts.append(part)
    return "/".join(parts) or "_"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", "é", "1", "_", "-", ".", "/", "\\", " ", "\n", "\u00a0", "٣", ":"]),
               max_size=10))
def test_safe_stem_equals_its_part_by_part_definition(sample_id: str) -> None:
    assert safe_stem(sample_id) == _safe_stem_by_parts(sample_id)


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


# --------------------------------------------------------------------------------------------
# SafeFiles: what an import may open
# --------------------------------------------------------------------------------------------

from pipeline.core.errors import DataError  # noqa: E402
from pipeline.core.paths import (  # noqa: E402
    LINK_BROKEN,
    LINK_LOOP,
    LINK_OUTSIDE,
    SPECIAL_FILE,
    SafeFiles,
    read_fd,
    read_regular,
)


def _guard(root: Path) -> tuple[SafeFiles, list]:
    heard: list = []
    return SafeFiles([root], on_refused=heard.append), heard


def _all_files(guard: SafeFiles, root: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _dirs, files in guard.walk(root) for f in files)


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """root/ with a file and a folder, outside/ beside it with a secret file and folder."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"a")
    (root / "sub" / "b.jpg").write_bytes(b"b")
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(b"secret")
    (outside / "dir" / "c.jpg").write_bytes(b"c")
    return root, outside


@pytest.mark.parametrize("link, target, allowed", [
    ("rel.jpg", "a.jpg", True),  # relative, inside
    ("sub/up.jpg", "../a.jpg", True),  # relative, inside, through ..
    ("abs_in.jpg", "{root}/sub/b.jpg", True),  # absolute, inside
    ("rel_out.jpg", "../outside/secret.jpg", False),  # relative, escaping the root
    ("abs_out.jpg", "{outside}/secret.jpg", False),  # absolute, escaping the root
    ("chain.jpg", "abs_out.jpg", False),  # a link to a link that leaves
])
def test_file_links_followed_only_inside_the_root(box, link: str, target: str, allowed: bool) -> None:
    root, outside = box
    if link == "chain.jpg":
        (root / "abs_out.jpg").symlink_to(outside / "secret.jpg")
    (root / link).symlink_to(target.format(root=root, outside=outside))
    guard, heard = _guard(root)
    assert guard.is_file(root / link) is allowed
    assert (link in _all_files(guard, root)) is allowed
    if allowed:
        assert not heard
        assert guard.read_bytes(root / link) in (b"a", b"b")
    else:
        assert heard and heard[0].reason == LINK_OUTSIDE and heard[0].path == str(root / link)
        assert "outside the import folder" in heard[0].describe(link) and "secret.jpg" in heard[0].describe(link)
        with pytest.raises(DataError, match="outside"):
            guard.read_bytes(root / link, link)


def test_folder_links_inside_followed_outside_skipped(box) -> None:
    root, outside = box
    (root / "in_dir").symlink_to("sub")  # a folder link inside: walked
    (root / "out_dir").symlink_to(outside / "dir")  # a folder link out: not walked, reported
    guard, heard = _guard(root)
    assert _all_files(guard, root) == ["a.jpg", "in_dir/b.jpg", "sub/b.jpg"]
    assert [(r.path, r.reason, r.target) for r in heard] == [(str(root / "out_dir"), LINK_OUTSIDE, str(outside / "dir"))]
    assert guard.is_dir(root / "in_dir") and not guard.is_dir(root / "out_dir")
    assert not guard.is_file(root / "out_dir" / "c.jpg")  # a path through the link is outside too


@pytest.mark.parametrize("where, target", [
    ("sub/loop", ".."),  # back to the root
    ("sub/self", "."),  # to its own folder
    ("sub/top", "{root}"),  # absolute, to the root
])
def test_folder_link_loops_end(box, where: str, target: str) -> None:
    root, _ = box
    (root / where).symlink_to(target.format(root=root))
    guard, heard = _guard(root)
    assert _all_files(guard, root) == ["a.jpg", "sub/b.jpg"]
    assert [r.reason for r in heard] == [LINK_LOOP]


def test_crossed_folder_links_end(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "x.png").write_bytes(b"x")
    (root / "a" / "to_b").symlink_to("../b")
    (root / "b" / "to_a").symlink_to("../a")
    guard, heard = _guard(root)
    files = _all_files(guard, root)  # each folder once per walk path, never round and round
    assert files == ["a/x.png", "b/to_a/x.png"]
    assert {r.reason for r in heard} == {LINK_LOOP}


def test_broken_link_skipped_and_reported(box) -> None:
    root, _ = box
    (root / "gone.jpg").symlink_to("nowhere.jpg")
    guard, heard = _guard(root)
    assert _all_files(guard, root) == ["a.jpg", "sub/b.jpg"]
    assert [(r.reason, r.target) for r in heard] == [(LINK_BROKEN, "nowhere.jpg")]


def test_fifo_is_skipped_without_being_opened(box) -> None:
    root, _ = box
    os.mkfifo(root / "b.jpg")  # opening it for reading would block until a writer comes
    guard, heard = _guard(root)
    assert _all_files(guard, root) == ["a.jpg", "sub/b.jpg"]
    assert [r.reason for r in heard] == [SPECIAL_FILE] and "a FIFO" in heard[0].describe("b.jpg")
    assert not guard.is_file(root / "b.jpg")
    with pytest.raises(DataError, match="b.jpg: a FIFO, not a regular file"):
        read_regular(root / "b.jpg", "b.jpg")
    (root / "link.jpg").symlink_to("b.jpg")  # a link to it: the same
    with pytest.raises(DataError, match="not a regular file"):
        read_regular(root / "link.jpg", "link.jpg")
    with pytest.raises(DataError, match="not a regular file"):
        link_or_copy(root / "link.jpg", root / "copy.jpg")


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 70_000])
def test_read_fd_reads_to_the_end_whatever_fstat_said(tmp_path: Path, size: int) -> None:
    p = tmp_path / "a.bin"
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        assert read_fd(fd, size) == data  # the size as fstat gives it
        os.lseek(fd, 0, os.SEEK_SET)
        assert read_fd(fd, max(0, size - 100)) == data  # grew since: read on to the end
        os.lseek(fd, 0, os.SEEK_SET)
        assert read_fd(fd, size + 100) == data  # shrank since
    finally:
        os.close(fd)
    assert read_regular(p) == data


def test_socket_is_skipped(tmp_path: Path) -> None:
    import socket

    root = tmp_path / "r"
    root.mkdir()
    (root / "ok.png").write_bytes(b"x")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "s.png"))
        guard, heard = _guard(root)
        assert _all_files(guard, root) == ["ok.png"]
        assert [r.reason for r in heard] == [SPECIAL_FILE] and "a socket" in heard[0].describe("s.png")
    finally:
        sock.close()


def test_device_is_skipped(tmp_path: Path) -> None:
    import stat

    root = tmp_path / "r"
    root.mkdir()
    try:
        os.mknod(root / "dev.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    except (PermissionError, OSError):
        dev = Path("/dev/null")  # without the right to make one: a link to the system's
        (root / "dev.jpg").symlink_to(dev)
        guard, heard = _guard(root)
        assert _all_files(guard, root) == [] and heard[0].reason == LINK_OUTSIDE
        return
    guard, heard = _guard(root)
    assert _all_files(guard, root) == []
    assert [r.reason for r in heard] == [SPECIAL_FILE] and "a device" in heard[0].describe("dev.jpg")


def test_each_refusal_reported_once(box) -> None:
    root, outside = box
    (root / "out.jpg").symlink_to(outside / "secret.jpg")
    guard, heard = _guard(root)
    for _ in range(3):
        guard.is_file(root / "out.jpg")
        _all_files(guard, root)
    assert len(heard) == 1


def test_a_linked_root_is_its_target(box) -> None:
    root, _ = box
    alias = root.parent / "alias"
    alias.symlink_to(root)
    guard, heard = _guard(alias)
    assert _all_files(guard, alias) == ["a.jpg", "sub/b.jpg"] and not heard


def test_link_or_copy_stores_the_target_not_the_link(tmp_path: Path) -> None:
    (tmp_path / "img.png").write_bytes(b"pixels")
    (tmp_path / "rel.png").symlink_to("img.png")
    (tmp_path / "abs.png").symlink_to(tmp_path / "img.png")
    for name in ("rel.png", "abs.png"):
        dest = tmp_path / "out" / name
        link_or_copy(tmp_path / name, dest)
        assert dest.is_file() and not dest.is_symlink() and dest.read_bytes() == b"pixels"
        assert os.path.samefile(dest, tmp_path / "img.png")  # a hard link to the real file
