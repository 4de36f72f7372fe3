"""The journal of an `augment` run: what is done, where its images wait, and what a rerun takes back.

Everything lives in the run's state folder (``.NAME.augment-state``) beside the work folder
(``.NAME.augment-work``, where the new dataset is being written):

- ``plan.json``: the run's inputs (`prepare_state`); a rerun with other inputs starts clean.
- ``records/PID.jsonl``: one `Record` per finished sample, appended by the process that made its
  copies: a head line (the record's version, the sample id, where its packed images sit, the class
  names its copies use, how many copies follow), then each copy's samples.jsonl body.
- ``spool/PID.bin``: the packed copies a worker process made (the original first when it travels
  with them), appended before their records are.
- ``packs/``: an interrupted run's packs, moved here by the rerun and read back from here.

A record is trusted on resume only when it parses whole, its version is this one and its images
still hash as recorded (`intact`); a record cut by a kill, or of another version, is left out and
its sample redone. A new process whose pid is reused starts on a fresh line.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import failpoints
from pipeline.core.dataset import Sample
from pipeline.core.errors import DataError
from pipeline.core.packs import PACK_SUFFIX, PACKS_DIR
from pipeline.core.paths import atomic_write_bytes, sha256_bytes

RECORD_VERSION = 1  # of the records' head lines; a record of another version is redone
PACKS_KEPT = "packs"  # in the state folder: an interrupted run's packs, read back by the rerun
RECORDS = "records"
SPOOL = "spool"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RecordError(ValueError):
    """A record that cannot be trusted: cut short by a kill, of another version, or malformed."""


@dataclass(slots=True)
class Spooled:
    """Where a worker's spool file holds a sample's images: one run of bytes from `offset`."""

    file: str
    offset: int
    lengths: list[int]


@dataclass(slots=True)
class Packed:
    """Where a pack of an earlier run (kept in the state folder) holds a sample's copies."""

    file: str
    offsets: list[int]
    lengths: list[int]


@dataclass(slots=True)
class Record:
    """The augmented copies of one sample: their samples.jsonl bodies (`dumps_body`; the line is
    completed where the image is stored) and the class names they use; for packed copies, where
    their images wait (`spool`, the original first when `with_original`, or `pack`), or the images
    themselves (`blobs`, and `original`) while the process that made them holds them. Only the
    first group is logged (`to_json`)."""

    id: str
    bodies: list[str]
    names: list[str]
    spool: Spooled | None = None
    with_original: bool = False
    pack: Packed | None = None
    blobs: list[bytes] | None = None  # (in memory only)
    original: bytes | None = None  # (in memory only)
    files: list[tuple[str, bytes]] | None = None  # copies not packed, made by a Ray worker: (path, bytes) (in memory only)
    _hashes: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def packed(self) -> bool:
        """Whether the copies go into packs (else they are files in the work folder)."""
        return self.blobs is not None or self.spool is not None or self.pack is not None

    def to_json(self) -> str:
        """The record as logged: its head line, then one line per copy (each ended by a newline)."""
        head: dict = {"record": RECORD_VERSION, "id": self.id, "copies": len(self.bodies), "names": self.names}
        if self.spool is not None:
            head["spool"] = [self.spool.file, self.spool.offset, self.spool.lengths]
            head["original"] = self.with_original
        if self.pack is not None:
            head["pack"] = [self.pack.file, self.pack.offsets, self.pack.lengths]
        return "\n".join([_encode(head), *self.bodies]) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Record:
        """The record `to_json` rendered; `RecordError` when it is cut short or not this version."""
        head, *bodies = text.split("\n")
        return cls.from_lines(_head(head), bodies)

    @classmethod
    def from_lines(cls, head: dict | None, lines: list[str]) -> Record:
        """The record of the parsed head line `head`, its copies the first of `lines`."""
        if head is None:
            raise RecordError("not a record's head line")
        if head.get("record") != RECORD_VERSION:
            raise RecordError(f"record version {head.get('record')!r}, expected {RECORD_VERSION}")
        try:
            count, sample_id, names = head["copies"], head["id"], head["names"]
            spool, pack = head.get("spool"), head.get("pack")
            bodies = lines[:count]
            if len(bodies) != count:
                raise RecordError(f"{len(bodies)} of {count} copies")
            return cls(sample_id, bodies, names,
                       Spooled(spool[0], spool[1], spool[2]) if spool is not None else None,
                       head.get("original") is True,
                       Packed(pack[0], pack[1], pack[2]) if pack is not None else None)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise RecordError(f"malformed head ({exc})") from exc

    def hashes(self) -> list[str]:
        """The SHA-256 of each copy's image, from its body; `RecordError` when a body is cut short."""
        if self._hashes is not None:
            return self._hashes
        try:
            out = [Sample.from_json({"id": self.id, "image": "", **json.loads(body)}).sha256 for body in self.bodies]
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"a copy's line is unreadable ({exc})") from exc
        if not all(isinstance(h, str) for h in out):
            raise RecordError("a copy without its image's sha256")
        self._hashes = out
        return out


def _head(line: str) -> dict | None:
    """The parsed head line of a record, or None for any other line (a copy's body, or a line torn
    by a kill)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "record" in data else None


def read_records(text: str, *, check: bool = False) -> Iterator[Record]:
    """The records in `text` (a log, or the part of one a worker just wrote). Records that cannot
    be trusted (cut short by a kill, another version) are left out; `check`: a log left by an
    earlier run, each record's copy lines parsed too."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        head = _head(lines[i]) if lines[i] else None  # (a log ends with an empty "line")
        i += 1
        if head is None:
            continue  # (only in a log torn by a kill: the rest of a sample whose head was cut)
        count = head.get("copies")
        try:
            record = Record.from_lines(head, lines[i:i + count] if isinstance(count, int) and count >= 0 else [])
            if check:
                record.hashes()
        except RecordError:
            continue  # that sample is redone
        i += len(record.bodies)
        yield record


def read_logs(state: Path, copies: int) -> dict[str, Record]:
    """The records logged by earlier runs, by sample id (their images are checked by `intact`)."""
    done: dict[str, Record] = {}
    folder = state / RECORDS
    if not folder.is_dir():
        return done
    for log in sorted(folder.glob("*.jsonl")):
        for record in read_records(log.read_bytes().decode("utf-8", errors="replace"), check=True):
            if len(record.bodies) == copies:
                done[record.id] = record
    return done


class Journal:
    """This process's files in the state folder: its records log and its image spool, appended to
    with one write each (a kill cuts at most the last one)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self._files: dict[str, list] = {}  # kind -> [fd, file name, size, pid that opened it]

    def append(self, kind: str, data: bytes) -> tuple[str, int]:
        """Append `data` to this process's `kind` file (`RECORDS` or `SPOOL`); returns the file's
        name and the offset the data starts at."""
        entry = self._files.get(kind)
        if entry is None or entry[3] != os.getpid():  # (a forked child opens its own)
            entry = self._files[kind] = self._open(kind)
        offset = entry[2]
        os.write(entry[0], data)
        entry[2] += len(data)
        failpoints.hit(f"journal.{kind}")
        return entry[1], offset

    def _open(self, kind: str) -> list:
        folder = self.state / kind
        folder.mkdir(exist_ok=True)
        name = f"{os.getpid()}.{'jsonl' if kind == RECORDS else 'bin'}"
        fd = os.open(folder / name, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if kind == RECORDS and size and os.pread(fd, 1, size - 1) != b"\n":
            size += os.write(fd, b"\n")  # a line torn by a kill ends here; the new records start afresh
        return [fd, name, size, os.getpid()]

    def log(self, records: Iterable[Record]) -> tuple[str, int, int]:
        """Log `records`; returns where they went: ``(file name, offset, length)``."""
        data = "".join(r.to_json() for r in records).encode("utf-8")
        name, offset = self.append(RECORDS, data)
        return name, offset, len(data)

    def spool(self, records: list[Record]) -> None:
        """Append the images of `records` to the spool (the original first, when it travels with
        its copies) and note in each record where they went."""
        datas = [[r.original, *r.blobs] if r.original is not None else r.blobs for r in records]
        name, offset = self.append(SPOOL, b"".join(b"".join(d) for d in datas))
        for record, data in zip(records, datas, strict=True):
            record.spool = Spooled(name, offset, [len(d) for d in data])
            record.with_original = record.original is not None
            offset += sum(len(d) for d in data)

    def close(self) -> None:
        """Close the files this process opened."""
        for fd, _, _, pid in self._files.values():
            if pid == os.getpid():
                os.close(fd)
        self._files.clear()


class Spools:
    """Reads back what the worker processes wrote into the state folder: records from their logs,
    images from their spool files and from the packs an earlier run left."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.fds: dict[tuple[str, str], int] = {}

    def _pread(self, kind: str, name: str, length: int, offset: int) -> bytes | None:
        key = (kind, name)
        if key not in self.fds:
            try:
                self.fds[key] = os.open(self.state / kind / Path(name).name, os.O_RDONLY)
            except FileNotFoundError:
                return None
        data = os.pread(self.fds[key], length, offset)
        return data if len(data) == length else None

    def records(self, where: tuple[str, int, int]) -> list[Record]:
        """The records a worker logged at ``(name, offset, length)``."""
        name, offset, length = where
        data = self._pread(RECORDS, name, length, offset)
        if data is None:
            raise DataError(self.state / RECORDS / name, "a worker's records are missing",
                            fix=f"remove {self.state} and run again")
        return list(read_records(data.decode("utf-8")))

    def read(self, record: Record) -> list[bytes] | None:
        """The images of a spooled record (the original first when it was spooled too), or of one
        logged with its place in an earlier run's pack; None when they are gone."""
        if record.pack is not None:
            pack = record.pack
            out = [self._pread(PACKS_KEPT, pack.file, n, at) for at, n in zip(pack.offsets, pack.lengths, strict=True)]
            return None if any(b is None for b in out) else out
        spool = record.spool
        blob = self._pread(SPOOL, spool.file, sum(spool.lengths), spool.offset)
        if blob is None:
            return None
        out, pos = [], 0
        for n in spool.lengths:
            out.append(blob[pos:pos + n])
            pos += n
        return out

    def close(self) -> None:
        """Close the files read so far."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def discard(self) -> None:
        """Empty and remove the spool files once every copy in them is in a pack: their pages are
        dropped instead of being written back by the sync that follows. A run killed after this
        redoes the samples whose copies were spooled (their records no longer check out)."""
        self.close()
        for folder in (self.state / SPOOL, self.state / PACKS_KEPT):
            if folder.is_dir():
                for path in folder.iterdir():
                    os.truncate(path, 0)  # also when a worker still holds it open
                    path.unlink()


def intact(work: Path, spools: Spools, record: Record, images: list[str]) -> bool:
    """Whether every image of a logged record is present with the logged hash; `images`: where
    its copies are written as files, under `work`."""
    hashes = record.hashes()
    if record.spool is not None or record.pack is not None:
        blobs = spools.read(record)
        if blobs is None:
            return False
        if record.spool is not None and record.with_original:
            blobs = blobs[1:]
        return all(sha256_bytes(b) == h for b, h in zip(blobs, hashes, strict=True))
    for image, h in zip(images, hashes, strict=True):
        path = work / image
        if not path.is_file() or sha256_bytes(path.read_bytes()) != h:
            return False
    return True


def prepare_state(work: Path, state: Path, fingerprint: dict) -> bool:
    """Keep a previous run's work when it was for the same inputs (True); otherwise start clean."""
    marker = state / "plan.json"
    text = json.dumps(fingerprint, sort_keys=True)
    if marker.is_file() and work.is_dir() and marker.read_text(encoding="utf-8") == text:
        for folder in (work, state):  # half-written files of a killed run (atomic writes' temporaries)
            for tmp in folder.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        packs = work / PACKS_DIR  # the packs the run wrote: out of the new packs' way, read from there
        if packs.is_dir():
            (state / PACKS_KEPT).mkdir(exist_ok=True)
            for path in packs.glob(f"*{PACK_SUFFIX}"):
                os.replace(path, state / PACKS_KEPT / path.name)
        return True
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    (state / RECORDS).mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, text.encode("utf-8"))
    return False
