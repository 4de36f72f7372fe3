"""Safe extraction of downloaded archives: zip (PKWARE APPNOTE), tar (POSIX ustar/pax, GNU; plain,
gzip, bzip2, xz) and single-file gzip (RFC 1952).

Every member is checked by this module before a byte is written; `tarfile`'s extraction filters
are not relied on (the `data` filter of some Python releases can be bypassed). An archive is
refused as a whole, with nothing left behind, when a member:

- names a path outside the destination: `..` components, absolute paths, drive letters or UNC
  names, NUL bytes;
- is a symbolic or hard link whose target lies outside the destination;
- is a device, a FIFO or any other special file;
- pushes the member count, the total extracted size or the compression ratio past the limits
  (zip bombs; declared sizes are not trusted: the bytes actually written are counted).

Links that stay inside are written as copies of their target (no link is ever created on disk, so
no later member can write through one). Extraction goes into a hidden temporary folder beside
the destination, renamed into place when complete: a killed extraction leaves no destination
and is redone on the next run.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import outputs, ui
from pipeline.core.dataset import replace_dir
from pipeline.core.errors import DataError
from pipeline.core.paths import fsync_dir, natural_sorted, sha256_file

COPY_CHUNK = 1 << 20


@dataclass
class ArchiveLimits:
    """Caps that make a hostile archive fail fast instead of filling the disk."""

    max_members: int = 1_000_000
    max_total: int = 64 << 30  # bytes written in all
    max_ratio: float = 200.0  # extracted bytes per compressed byte
    ratio_floor: int = 8 << 20  # below this many extracted bytes ratios are not judged (small files compress well)


@dataclass
class Extracted:
    """The result of one extraction."""

    archive: Path
    dest: Path
    files: list[str] = field(default_factory=list)  # relative paths, natural order
    total: int = 0
    links_copied: int = 0


class ArchiveRefused(DataError):
    """An archive that would write outside its folder, or is a bomb; nothing of it was kept."""

    reason = "unsafe-archive"


_DRIVE = re.compile(r"^[A-Za-z]:")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".gz", ".bz2", ".xz")


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_kind(path: str | os.PathLike) -> str | None:
    """'zip', 'tar' (any compression) or 'gz'/'bz2'/'xz' (one compressed file), from the bytes; None otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    opener = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
    for magic, open_ in opener.items():
        if head.startswith(magic):
            try:
                with open_(path, "rb") as fh:
                    inner = fh.read(512)
            except (OSError, EOFError, lzma.LZMAError):
                return None
            if len(inner) >= 262 and inner[257:262] == b"ustar":
                return "tar"
            return {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}[magic]
    return None


def member_parts(name: str, where: str) -> list[str]:
    """The path components of a member name, or `ArchiveRefused` when it escapes the destination."""
    if "\x00" in name:
        raise ArchiveRefused(where, "member name contains a NUL byte", field="member", got=name)
    text = name.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise ArchiveRefused(where, "absolute member path", field="member", expected="a relative path", got=name,
                             fix="this archive writes outside its folder; get it from a trusted source")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveRefused(where, "member path leaves the destination ('..')", field="member",
                             expected="a path inside the archive folder", got=name,
                             fix="this archive writes outside its folder; get it from a trusted source")
    if any(_DRIVE.match(p) for p in parts):
        raise ArchiveRefused(where, "member path contains a drive letter", field="member", got=name)
    return parts


def _link_target(member_dir: list[str], target: str, where: str, name: str, *, hard: bool) -> list[str]:
    """The in-archive path a link points to, or `ArchiveRefused` when it points outside."""
    text = target.replace("\\", "/")
    if not text or text.startswith("/") or _DRIVE.match(text) or "\x00" in text:
        raise ArchiveRefused(where, f"{'hard' if hard else 'symbolic'} link points outside the destination",
                             field="member", expected="a link inside the archive", got=f"{name} -> {target}")
    stack = [] if hard else list(member_dir)
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise ArchiveRefused(where, f"{'hard' if hard else 'symbolic'} link points outside the destination",
                                     field="member", expected="a link inside the archive", got=f"{name} -> {target}")
            stack.pop()
        else:
            stack.append(part)
    return stack


class _Writer:
    """Writes members into the temporary folder, counting bytes against the limits."""

    def __init__(self, tmp: Path, where: str, limits: ArchiveLimits, compressed_size: int) -> None:
        self.tmp = tmp
        self.where = where
        self.limits = limits
        self.compressed = max(1, compressed_size)
        self.total = 0
        self.members = 0
        self.files: dict[str, Path] = {}

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise ArchiveRefused(self.where, "too many members", expected=f"at most {self.limits.max_members}",
                                 got=self.members, fix="extract it yourself if you trust it")

    def _grow(self, n: int) -> None:
        self.total += n
        if self.total > self.limits.max_total:
            raise ArchiveRefused(self.where, "extracts to more than the size limit",
                                 expected=f"at most {self.limits.max_total} bytes", got=self.total)
        if self.total > self.limits.ratio_floor and self.total / self.compressed > self.limits.max_ratio:
            raise ArchiveRefused(self.where, "compression ratio too high (a decompression bomb?)",
                                 expected=f"at most {self.limits.max_ratio:g}:1",
                                 got=f"{self.total / self.compressed:.0f}:1 after {self.total} bytes")

    def path(self, parts: list[str]) -> Path:
        target = self.tmp.joinpath(*parts)
        # parents must be real folders created by us (no member may replace one with a file or link)
        for i in range(1, len(parts)):
            p = self.tmp.joinpath(*parts[:i])
            if p.exists() and (p.is_symlink() or not p.is_dir()):
                raise ArchiveRefused(self.where, "member path goes through a file", field="member",
                                     got="/".join(parts))
        if target.is_symlink() or target.is_dir():
            raise ArchiveRefused(self.where, "member replaces a folder", field="member", got="/".join(parts))
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def mkdir(self, parts: list[str]) -> None:
        if not parts:
            return
        target = self.tmp.joinpath(*parts)
        if target.exists() and not target.is_dir():
            raise ArchiveRefused(self.where, "folder member replaces a file", field="member", got="/".join(parts))
        target.mkdir(parents=True, exist_ok=True)

    def write(self, parts: list[str], source, declared: int | None = None) -> None:
        target = self.path(parts)
        written = 0
        with open(target, "wb") as out:
            while True:
                block = source.read(COPY_CHUNK)
                if not block:
                    break
                written += len(block)
                if declared is not None and written > declared:
                    raise ArchiveRefused(self.where, "member is larger than declared", field="member",
                                         got="/".join(parts))
                self._grow(len(block))
                out.write(block)
        self.files["/".join(parts)] = target

    def copy(self, parts: list[str], target_parts: list[str]) -> bool:
        src = self.files.get("/".join(target_parts))
        if src is None or not src.is_file():
            return False
        with open(src, "rb") as fh:
            self.write(parts, fh)
        return True


MARKER = ".pipeline-extracted.json"


def extracted_from(dest: str | os.PathLike) -> str | None:
    """The sha256 of the archive a completed extraction at `dest` came from (None: not extracted)."""
    try:
        return json.loads((Path(dest) / MARKER).read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


def extract(archive: str | os.PathLike, dest: str | os.PathLike, limits: ArchiveLimits | None = None,
            *, sha256: str | None = None) -> Extracted:
    """Extract `archive` into the folder `dest` (created; replaced when it exists), checking every member.

    `sha256` (of the archive) is recorded in a marker file so a re-run can tell the extraction is
    complete and current (`extracted_from`).
    """
    archive = Path(archive)
    dest = Path(dest)
    limits = limits or ArchiveLimits()
    kind = archive_kind(archive)
    where = archive.name
    if kind is None:
        raise DataError(archive, "not a zip, tar or compressed file", fix="check what was downloaded")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.extract-*"):
        shutil.rmtree(stale, ignore_errors=True)
    outputs.sweep_stale(dest)  # an earlier extraction a kill caught mid-replacement
    tmp = dest.with_name(f".{dest.name}.extract-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    writer = _Writer(tmp, where, limits, archive.stat().st_size)
    links = 0
    try:
        if kind == "zip":
            links = _extract_zip(archive, writer)
        elif kind == "tar":
            links = _extract_tar(archive, writer)
        else:
            opener = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[kind]
            stem = archive.name
            for suffix in (".gz", ".bz2", ".xz"):
                if stem.lower().endswith(suffix):
                    stem = stem[: -len(suffix)]
            parts = member_parts(stem or "data", where)
            writer.count_member()
            try:
                with opener(archive, "rb") as fh:
                    writer.write(parts, fh)
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise DataError(archive, f"corrupt {kind} data ({exc})", fix="download it again") from exc
        if sha256:
            (tmp / MARKER).write_text(json.dumps({"archive": archive.name, "sha256": sha256}), encoding="utf-8")
        fsync_dir(tmp)
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = natural_sorted(writer.files)
    return Extracted(archive=archive, dest=dest, files=files, total=writer.total, links_copied=links)


def unpack(files: list[Path], raw: Path) -> list[tuple[Path, Path]]:
    """Extract each archive in `files` to `raw/extracted/NAME/` unless already done: [(archive, folder)]."""
    out = []
    for f in natural_sorted(files, key=lambda p: p.name):
        if not is_archive_name(f.name):
            continue
        stem = f.name
        for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".zip", ".tar", ".gz", ".bz2", ".xz"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        dest = raw / "extracted" / (stem or "archive")
        digest = sha256_file(f)
        if extracted_from(dest) != digest:
            ui.info(f"extracting {f.name}")
            extract(f, dest, sha256=digest)
        out.append((f, dest))
    return out


def _extract_zip(archive: Path, writer: _Writer) -> int:
    where = writer.where
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(archive, f"not a readable zip archive ({exc})", fix="download it again") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > writer.limits.max_members:
            raise ArchiveRefused(where, "too many members", expected=f"at most {writer.limits.max_members}",
                                 got=len(infos))
        declared = sum(i.file_size for i in infos)
        if declared > writer.limits.max_total:
            raise ArchiveRefused(where, "declares more than the size limit",
                                 expected=f"at most {writer.limits.max_total} bytes", got=declared)
        pending: list[tuple[list[str], list[str]]] = []
        plan: list[tuple[zipfile.ZipInfo, list[str], str]] = []
        for info in infos:
            parts = member_parts(info.filename, where)
            mode = info.external_attr >> 16
            if info.file_size > writer.limits.ratio_floor and \
                    info.file_size / max(1, info.compress_size) > writer.limits.max_ratio:
                raise ArchiveRefused(where, "compression ratio too high (a zip bomb?)", field="member",
                                     expected=f"at most {writer.limits.max_ratio:g}:1",
                                     got=f"{info.filename}: {info.file_size} bytes from {info.compress_size}")
            if stat.S_ISLNK(mode):
                if info.file_size > 4096:
                    raise ArchiveRefused(where, "symbolic link target too long", field="member", got=info.filename)
                target = zf.read(info).decode("utf-8", "replace")
                pending.append((parts, _link_target(parts[:-1], target, where, info.filename, hard=False)))
                plan.append((info, parts, "link"))
            elif mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
                raise ArchiveRefused(where, "special file (device, FIFO or socket)", field="member",
                                     got=info.filename)
            elif info.is_dir():
                plan.append((info, parts, "dir"))
            else:
                plan.append((info, parts, "file"))
        for info, parts, what in plan:
            writer.count_member()
            if what == "dir":
                writer.mkdir(parts)
            elif what == "file":
                if not parts:
                    continue
                try:
                    with zf.open(info) as fh:
                        writer.write(parts, fh, declared=info.file_size)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                    raise DataError(archive, f"{info.filename}: corrupt or unsupported member ({exc})",
                                    fix="download it again") from exc
        return _resolve_links(pending, writer)


def _extract_tar(archive: Path, writer: _Writer) -> int:
    where = writer.where
    pending: list[tuple[list[str], list[str]]] = []
    try:
        tf = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(archive, f"not a readable tar archive ({exc})", fix="download it again") from exc
    try:
        with tf:
            for member in tf:  # streaming: members are read in order, never all at once
                writer.count_member()
                parts = member_parts(member.name, where)
                if member.issym():
                    pending.append((parts, _link_target(parts[:-1], member.linkname, where, member.name, hard=False)))
                elif member.islnk():
                    pending.append((parts, _link_target([], member.linkname, where, member.name, hard=True)))
                elif member.isdir():
                    writer.mkdir(parts)
                elif member.isfile():
                    if not parts:
                        continue
                    if writer.total + member.size > writer.limits.max_total:
                        raise ArchiveRefused(where, "extracts to more than the size limit",
                                             expected=f"at most {writer.limits.max_total} bytes",
                                             got=writer.total + member.size)
                    fh = tf.extractfile(member)
                    if fh is None:
                        continue
                    with fh:
                        writer.write(parts, fh, declared=member.size)
                else:
                    raise ArchiveRefused(where, "special file (device, FIFO or other)", field="member",
                                         got=member.name, fix="this archive is not plain data; get it from a trusted source")
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as exc:
        raise DataError(archive, f"corrupt tar archive ({exc})", fix="download it again") from exc
    return _resolve_links(pending, writer)


def _resolve_links(pending: list[tuple[list[str], list[str]]], writer: _Writer) -> int:
    """Write links that stay inside as copies of their (file) targets; chains resolved in a few passes."""
    copied = 0
    for _ in range(8):
        left = []
        for parts, target in pending:
            if parts and writer.copy(parts, target):
                copied += 1
            else:
                left.append((parts, target))
        if len(left) == len(pending):
            break
        pending = left
    return copied
