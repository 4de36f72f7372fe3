"""Small filesystem helpers: natural sort, hashing, safe relative paths, atomic writes."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

_NUM = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """Sort key that orders 'img2' before 'img10' (and is total: ties break on the raw text)."""
    parts = _NUM.split(str(text))
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p.casefold()) for p in parts)
    return (key, str(text))


def natural_sorted(items: Iterable, key=None) -> list:
    """`sorted` with `natural_key` applied to `key(item)` (default: str(item))."""
    k = key or str
    return sorted(items, key=lambda item: natural_key(k(item)))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_within(path: Path, root: Path) -> bool:
    """True when `path` (resolved) lies inside `root` (resolved)."""
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


_UNSAFE = re.compile(r"[^\w.\-/]+", re.UNICODE)


def safe_stem(sample_id: str) -> str:
    """A filesystem-safe relative path derived from a sample id (unicode letters kept, no '..')."""
    parts = []
    for part in sample_id.replace("\\", "/").split("/"):
        part = _UNSAFE.sub("_", part).strip(" ")
        if part in ("", ".", ".."):
            part = "_" if part else ""
        if part:
            parts.append(part)
    return "/".join(parts) or "_"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsync, rename. The
    file's mode follows the umask, like any file a program creates (not mkstemp's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def link_or_copy(src: str | os.PathLike, dest: str | os.PathLike, *, make_parent: bool = True) -> bool:
    """Hard-link `src` to `dest` (a copy across file systems), replacing `dest`; the folder is created
    unless the caller already did (`make_parent=False`). Returns True when it copied (the new bytes
    are not on the disk yet)."""
    if make_parent:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except FileExistsError:
        os.unlink(dest)
        return link_or_copy(src, dest, make_parent=False)
    except OSError:
        shutil.copyfile(src, dest)
        return True
    return False
