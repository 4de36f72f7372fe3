"""Reading a dataset in bounded memory: `open_dataset` and `SampleStream`.

`load_dataset` builds every sample as a Python object: about 1.6 KB a sample, so ten million do
not fit a laptop. `open_dataset` gives the same `Dataset` with `samples` as a `SampleStream`: a
sequence that parses and validates samples.jsonl line by line each time it is iterated (the same
`parse_sample_line`, so the same samples and the same errors), holding one sample at a time.

Streaming needs the file as our writers leave it: lines in strictly increasing id order (so the
stream is already in `load_dataset`'s order and no id repeats), UTF-8, ended by newlines only.
`open_dataset` checks that in one pass over the bytes, together with ``samples_sha256``; a file
that fails any of it (hand-edited, unsorted, a duplicate id, an odd line break, a line whose id
is not plainly its first key) is read by `load_dataset` instead, which reports its errors exactly
as before. So a caller always gets `load_dataset`'s samples, in its order, with its errors.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.dataset.io import check_samples_hash, load_dataset
from pipeline.core.dataset.model import SAMPLES_JSONL, Dataset, DatasetInfo, Sample
from pipeline.core.dataset.validation import parse_sample_line, read_info
from pipeline.core.errors import UsageError

_BLOCK = 1 << 22  # bytes read at a time
_ID_KEY = b'{"id":"'  # how every line our writers write begins (`lines.sample_line`)
_ASCII_BREAKS = b"\r\x0b\x0c\x1c\x1d\x1e"  # line breaks of str.splitlines besides "\n"
_UTF8_BREAKS = ("\x85", "\u2028", "\u2029")


@dataclass(frozen=True)
class Scan:
    """What one pass over samples.jsonl's bytes found."""

    samples_sha256: str  # sha256 of the file
    count: int  # non-blank lines
    streamable: bool  # ids strictly increasing and plainly first, UTF-8, "\n" line ends only


def scan(root: str | os.PathLike) -> Scan:
    """Hash samples.jsonl, count its samples and tell whether it can be streamed (module docstring)."""
    path = Path(root) / SAMPLES_JSONL
    digest = hashlib.sha256()
    count = 0
    ok = True
    prev = b""
    carry = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(_BLOCK)
            digest.update(block)
            data = carry + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            body, carry = data[:cut], data[cut:]
            if ok and body:
                ok = _plain(body)
            if ok and body:
                found = _ordered_ids(body, prev)
                if found is None:
                    ok, n, prev = _lines_one_by_one(body, prev)
                else:
                    n, prev = found
                count += n
            if not block:
                break
    return Scan(samples_sha256=digest.hexdigest(), count=count, streamable=ok)


def _lines_one_by_one(body: bytes, prev: bytes) -> tuple[bool, int, bytes]:
    """(ok, ids counted, last id) of the whole lines `body` whose ids must follow `prev` (see
    `scan`), a Python step per line: for what `_ordered_ids` does not settle."""
    lines = body.split(b"\n")
    if body.endswith(b"\n"):
        lines.pop()
    count = 0
    for raw in lines:
        if raw.startswith(_ID_KEY):
            end = raw.find(b'"', len(_ID_KEY))
            sid = raw[len(_ID_KEY):end]
            if end < 0 or b"\\" in sid or sid <= prev:
                return False, count, prev  # unsorted, repeated or escaped: `load_dataset` sorts and judges
            prev = sid
            count += 1
        elif raw.strip():
            return False, count, prev  # not our writer's shape (or blank by Unicode's reckoning only)
    return True, count, prev


_MAX_ID = 64  # longest id `_ordered_ids` compares (a longer one goes line by line)


def _ordered_ids(body: bytes, prev: bytes) -> tuple[int, bytes] | None:
    """(lines, last id) when every line of `body` (whole lines, `_plain`) begins with the id key
    and an id of 1 to `_MAX_ID` bytes without a backslash, the ids increasing strictly from
    `prev`; else None, and `_lines_one_by_one` says what and where. The same verdict, with array
    operations over the whole block instead of a Python step per line."""
    import numpy as np

    if not body.endswith(b"\n") or b"\x00" in body:
        return None  # (a last line without its newline; the NUL-padded ids below need ids without NUL)
    arr = np.frombuffer(body, dtype=np.uint8)
    last = len(arr) - 1
    starts = np.flatnonzero(arr == 10)  # each line's newline ...
    starts[1:] = starts[:-1] + 1  # ... moved to where each line begins
    starts[0] = 0
    for k, byte in enumerate(_ID_KEY):  # (a blank or short line fails it at its newline)
        if not (arr[np.minimum(starts + k, last)] == byte).all():
            return None
    first = starts + len(_ID_KEY)  # each id's first byte
    table = np.zeros((len(first), _MAX_ID), dtype=np.uint8)
    open_ = np.ones(len(first), dtype=bool)  # ids whose closing quote is not reached yet
    for k in range(_MAX_ID + 1):
        col = arr[np.minimum(first + k, last)]
        quote = col == 34
        if k == 0 and quote.any():
            return None  # an empty id
        if (open_ & ((col == 10) | (col == 92))).any():
            return None  # a backslash in an id, or no closing quote on its line
        open_ &= ~quote
        if not open_.any():
            break
        if k == _MAX_ID:
            return None  # a longer id
        table[:, k] = np.where(open_, col, 0)
    ids = table[:, :k].copy().view(f"S{k}").ravel()  # NUL-padded: in the order of the ids' bytes
    if not (ids[0] > prev and (ids[1:] > ids[:-1]).all()):
        return None
    return len(first), bytes(ids[-1])


def _plain(data: bytes) -> bool:
    """Whether `data` (whole lines) is UTF-8 with no line break that `str.splitlines` knows besides "\\n"."""
    if any(bytes((b,)) in data for b in _ASCII_BREAKS):
        return False
    if data.isascii():
        return True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(c in text for c in _UTF8_BREAKS)


class SampleStream:
    """The samples of a dataset folder, parsed and validated line by line on each iteration, in id
    order (see the module docstring). Iterate it as often as needed; `len` is known up front."""

    def __init__(self, root: Path, info: DatasetInfo, found: Scan) -> None:
        self.root = root
        self.info = info
        self.scan = found
        self._classes = set(info.classes)

    def __len__(self) -> int:
        return self.scan.count

    def __bool__(self) -> bool:
        return self.scan.count > 0

    def __iter__(self) -> Iterator[Sample]:
        classes, root = self._classes, self.root
        for lineno, line in self.lines():
            yield parse_sample_line(line, classes, where=SAMPLES_JSONL, line=lineno, root=root)

    def lines(self) -> Iterator[tuple[int, str]]:
        """(line number, text) of each non-blank line, without its newline."""
        with open(self.root / SAMPLES_JSONL, encoding="utf-8", newline="\n") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    yield lineno, line.rstrip("\n")

    def ids(self) -> Iterator[str]:
        """The ids, in order, without parsing the lines (each begins with its id: `scan` saw to it)."""
        start = len(_ID_KEY)
        for _, line in self.lines():
            yield line[start:line.index('"', start)]

    def having(self, *keys: str) -> Iterator[Sample]:
        """The samples whose line may hold one of these keys; the other lines are not parsed."""
        needles = tuple(f'"{key}":' for key in keys)
        classes, root = self._classes, self.root
        for lineno, line in self.lines():
            if any(n in line for n in needles):
                yield parse_sample_line(line, classes, where=SAMPLES_JSONL, line=lineno, root=root)

    def __getitem__(self, index: int) -> Sample:
        """One sample by position (a pass over the file up to it: for the odd lookup only)."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        for i, sample in enumerate(self):
            if i == index:
                return sample
        raise IndexError(index)  # (the file shrank since it was opened)


def open_dataset(root: str | os.PathLike, *, check_hash: bool = True) -> Dataset:
    """`load_dataset`'s dataset with its samples streamed (`SampleStream`) where the file allows;
    otherwise (module docstring) `load_dataset`'s, in memory. Same checks, same errors."""
    root = Path(root)
    info = read_info(root)
    if not (root / SAMPLES_JSONL).is_file():
        raise UsageError(f"{root}: not a pipeline dataset (no {SAMPLES_JSONL})", fix="re-run the stage that wrote it")
    found = scan(root)
    fresh = check_samples_hash(root, info, found.samples_sha256) if check_hash else info
    if not found.streamable:
        return load_dataset(root, check_hash=False)
    return Dataset(root=root, info=fresh, samples=SampleStream(root, fresh, found))  # type: ignore[arg-type]


def is_streamed(dataset: Dataset) -> bool:
    """Whether `dataset`'s samples are a `SampleStream` (opened with `open_dataset`)."""
    return isinstance(dataset.samples, SampleStream)
