"""Small filesystem helpers: natural sort, hashing, safe relative paths, atomic writes, and the one
rule for which files an import may open (`SafeFiles`).

The rule: an import opens only regular files and folders that lie inside its roots (SRC, and
folders named like ``--images``). A link, to a file or a folder, is followed only when its
target resolves inside the roots; a link pointing elsewhere, a broken link, a link back to a
folder being walked (a loop), and FIFOs, sockets and devices are skipped without being opened,
each reported once (`Refused`) so the import summary counts it and warns with the link's target.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import DataError

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


# an id that is its own safe stem: parts of letters, digits, '_', '.' and '-', none of them '.' or '..'
_SAFE_ID = re.compile(r"(?!\.\.?(?:/|\Z))[\w.\-]+(?:/(?!\.\.?(?:/|\Z))[\w.\-]+)*", re.UNICODE)


def safe_stem(sample_id: str) -> str:
    """A filesystem-safe relative path derived from a sample id (unicode letters kept, no '..')."""
    if _SAFE_ID.fullmatch(sample_id):  # the usual id: nothing to replace (one match, not one per part)
        return sample_id
    parts = []
    for part in sample_id.replace("\\", "/").split("/"):
        part = _UNSAFE.sub("_", part).strip(" ")
        if part in ("", ".", ".."):
            part = "_" if part else ""
        if part:
            parts.append(part)
    return "/".join(parts) or "_"


# what a file name may not hold on Linux, macOS or Windows (control characters, <>:"|?* and the separators)
_NOT_PORTABLE = re.compile(r'[\x00-\x1f\x7f<>:"|?*]+')


def export_stem(sample_id: str) -> str:
    """A relative path for an exported file named after a sample id: the id's own names kept as
    they are where every common file system takes them (spaces, parentheses, any letter: a name
    that went in comes back out), characters no file system takes replaced by ``_``, no ``..``."""
    parts = []
    for part in sample_id.replace("\\", "/").split("/"):
        part = _NOT_PORTABLE.sub("_", part).strip(" ").rstrip(".")  # (Windows drops trailing dots and spaces)
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
    """Hard-link the regular file `src` to `dest` (a copy across file systems), replacing `dest`; the
    folder is created unless the caller already did (`make_parent=False`). Returns True when it
    copied (the new bytes are not on the disk yet).

    A link `src` is resolved first, so `dest` is always a real file: a hard link to the target,
    never to the link itself (which would dangle or point outside the dataset). Anything but a
    regular file (a FIFO, a socket, a device) is a `DataError` and is never opened."""
    if make_parent:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.lstat(src).st_mode
        if stat.S_ISLNK(mode):  # (only the last part matters: os.link follows links to folders)
            src = os.path.realpath(src)
            mode = os.stat(src).st_mode
    except OSError as exc:
        raise DataError(src, f"cannot read ({exc.strerror or exc})", fix="check the file") from exc
    if not stat.S_ISREG(mode):
        raise DataError(src, f"{_kind(src)}, not a regular file", fix="remove it or replace it with a file")
    try:
        os.link(src, dest)
    except FileExistsError:
        os.unlink(dest)
        return link_or_copy(src, dest, make_parent=False)
    except OSError:
        shutil.copyfile(src, dest)
        return True
    return False


# --------------------------------------------------------------------------------------------
# Which files an import may open
# --------------------------------------------------------------------------------------------

LINK_OUTSIDE = "links pointing outside the import folder"
LINK_BROKEN = "broken links"
LINK_LOOP = "links to a folder that holds them (loops)"
SPECIAL_FILE = "special files (FIFOs, sockets, devices)"
REFUSALS = (LINK_OUTSIDE, LINK_BROKEN, LINK_LOOP, SPECIAL_FILE)  # every reason a path is not opened


@dataclass(frozen=True)
class Refused:
    """A path an import skipped without opening it: why (one of the reasons above) and, for a
    link, where it points (as written in the link)."""

    path: str
    reason: str
    target: str = ""
    resolved: str = ""  # where the link ends up, when that differs from `target`

    def describe(self, shown: str) -> str:
        """One line for the user, `shown` being the path as they know it."""
        if self.reason == SPECIAL_FILE:
            return f"{shown}: {_kind(self.path)}, not a regular file; skipped without opening it"
        what = {LINK_OUTSIDE: "outside the import folder", LINK_BROKEN: "which does not exist",
                LINK_LOOP: "a folder that holds the link (a loop)"}.get(self.reason, self.reason)
        via = f" (resolving to {self.resolved})" if self.resolved and self.resolved != self.target else ""
        return f"{shown}: a link to {self.target}{via}, {what}; skipped"


def _kind(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a special file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class SafeFiles:
    """The files an import may open: regular files and folders inside `roots`, links followed only
    when their target resolves inside them (see the module docstring). `on_refused` hears about
    each skipped path once."""

    def __init__(self, roots: Iterable[str | os.PathLike],
                 on_refused: Callable[[Refused], None] | None = None) -> None:
        real = []
        for r in roots:
            r = os.path.abspath(r)
            real.append(os.path.realpath(r if os.path.isdir(r) else os.path.dirname(r)))
        self.roots = real
        self.on_refused = on_refused
        self._reported: set[str] = set()
        # folder -> its resolved path and whether that lies inside the roots, once per folder (as `walk`)
        self._real_dirs: dict[str, tuple[str, bool]] = {}

    def inside(self, real: str) -> bool:
        """True when the resolved path `real` lies inside one of the roots."""
        return any(_within(real, r) for r in self.roots)

    def _refuse(self, path: str, reason: str, target: str = "", resolved: str = "") -> None:
        key = os.path.abspath(path)
        if key in self._reported:
            return
        self._reported.add(key)
        if self.on_refused is not None:
            self.on_refused(Refused(path, reason, target, resolved))

    def _link(self, path: str) -> tuple[str, os.stat_result] | None:
        """A link's resolved target and its stat when it may be followed; None (reported) otherwise."""
        try:
            written = os.readlink(path)
        except OSError:
            written = "?"
        real = os.path.realpath(path)
        if not self.inside(real):
            self._refuse(path, LINK_OUTSIDE, written, real)
            return None
        try:
            st = os.stat(real)
        except OSError:  # broken, or a loop of links
            self._refuse(path, LINK_BROKEN, written)
            return None
        return real, st

    def check(self, path: str | os.PathLike) -> str | None:
        """'file' or 'dir' when `path` may be opened (links resolved inside the roots), else None.
        A path that does not exist is None without a report; any other refusal is reported."""
        path = os.path.abspath(path)
        try:
            lst = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(lst.st_mode):
            real = os.path.realpath(path)
            inside = self.inside(real)
        else:  # its folder resolved (and placed) once for all its files: one lstat per file, not one per path part
            folder, name = os.path.split(path)
            known = self._real_dirs.get(folder)
            if known is None:
                real_folder = os.path.realpath(folder)
                known = self._real_dirs[folder] = (real_folder, self.inside(real_folder))
            real = os.path.join(known[0], name)
            inside = known[1] or self.inside(real)  # (a file in a folder inside the roots is inside them)
        if not inside:  # the path itself, or a folder on the way, links out
            self._refuse(path, LINK_OUTSIDE, os.readlink(path) if stat.S_ISLNK(lst.st_mode) else real, real)
            return None
        if stat.S_ISLNK(lst.st_mode):
            found = self._link(path)
            if found is None:
                return None
            lst = found[1]
        if stat.S_ISREG(lst.st_mode):
            return "file"
        if stat.S_ISDIR(lst.st_mode):
            return "dir"
        self._refuse(path, SPECIAL_FILE)
        return None

    def is_file(self, path: str | os.PathLike) -> bool:
        """A regular file (or a link to one) inside the roots."""
        return self.check(path) == "file"

    def is_dir(self, path: str | os.PathLike) -> bool:
        """A folder (or a link to one) inside the roots."""
        return self.check(path) == "dir"

    def scan(self, folder: str | os.PathLike, real: str | None = None, chain: tuple[str, ...] = (),
             onerror: Callable[[OSError], None] | None = None) -> tuple[list[str], list[str], dict[str, str]]:
        """The (sub-folder names, file names, sub-folder name -> resolved path) of one folder,
        sorted by name: regular files and folders, and links whose target may be followed; links
        to a folder in `chain` (the resolved folders above, `real` included) are loops. A folder
        that cannot be listed is empty (`onerror` hears why)."""
        folder = os.fspath(folder)
        real = real or os.path.realpath(folder)
        dirs: list[str] = []
        files: list[str] = []
        reals: dict[str, str] = {}
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if onerror is not None:
                onerror(exc)
            return dirs, files, reals
        walked = (*chain, real)
        for e in entries:
            try:
                if e.is_symlink():
                    found = self._link(e.path)
                    if found is None:
                        continue
                    target, st = found
                    if stat.S_ISDIR(st.st_mode):
                        if any(_within(c, target) for c in walked):
                            self._refuse(e.path, LINK_LOOP, os.readlink(e.path))
                            continue
                        dirs.append(e.name)
                        reals[e.name] = target
                    elif stat.S_ISREG(st.st_mode):
                        files.append(e.name)
                    else:
                        self._refuse(e.path, SPECIAL_FILE)
                elif e.is_dir(follow_symlinks=False):
                    dirs.append(e.name)
                    reals[e.name] = os.path.join(real, e.name)
                elif e.is_file(follow_symlinks=False):
                    files.append(e.name)
                else:
                    self._refuse(e.path, SPECIAL_FILE)
            except OSError:
                continue
        return dirs, files, reals

    def walk(self, top: str | os.PathLike,
             onerror: Callable[[OSError], None] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
        """`os.walk(top)` (top-down; prune by editing the folder list; `onerror` hears of folders
        that cannot be listed) over what may be opened: links into the roots are followed once
        per walk path, never in a loop. Paths start with `top` as given (relative stays relative)."""
        top = os.fspath(top)
        if self.check(top) != "dir":
            return
        stack: list[tuple[str, str, tuple[str, ...]]] = [(top, os.path.realpath(top), ())]
        while stack:
            folder, real, chain = stack.pop()
            dirs, files, reals = self.scan(folder, real, chain, onerror)
            yield folder, dirs, files
            for name in reversed(dirs):
                if name in reals:
                    stack.append((os.path.join(folder, name), reals[name], (*chain, real)))

    def read_bytes(self, path: str | os.PathLike, where: str | os.PathLike | None = None) -> bytes:
        """The bytes of `path` when `check` allows it, else a `DataError` naming `where`."""
        if self.check(path) != "file":
            raise DataError(where or path, "not a regular file inside the import folder (a link pointing "
                                           "outside it, a FIFO, a socket or a device) or missing",
                            fix="copy the file itself into the import folder")
        return read_regular(path, where)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


def read_fd(fd: int, size: int) -> bytes:
    """Every byte of the open file `fd` from its position to its end, `size` (its ``fstat`` size)
    being what is expected: one ``read`` when the file still is that long, more reads until the end
    when it grew or a read came back short. Raw reads, without a buffered file object (whose set-up
    costs more than reading a small file)."""
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    chunks = [data]
    while True:
        more = os.read(fd, 1 << 20)
        if not more:
            return b"".join(chunks)
        chunks.append(more)


def read_regular(path: str | os.PathLike, where: str | os.PathLike | None = None) -> bytes:
    """The bytes of a regular file (a link to one is followed); a FIFO, socket or device is a
    `DataError` and is never opened, so a FIFO named ``b.jpg`` cannot hang a reader."""
    where = where or path
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(where, f"{_kind(os.fspath(path))}, not a regular file", fix="remove it or replace it with a file")
        fd = os.open(path, _READ_FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # swapped since the stat
                raise DataError(where, "not a regular file", fix="remove it or replace it with a file")
            return read_fd(fd, info.st_size)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DataError(where, f"cannot read ({exc.strerror or exc})", fix="check the file and its permissions") from exc
