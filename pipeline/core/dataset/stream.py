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
            lines = body.split(b"\n") if ok and body else []
            if lines and body.endswith(b"\n"):
                lines.pop()
            for raw in lines:
                if raw.startswith(_ID_KEY):
                    end = raw.find(b'"', len(_ID_KEY))
                    sid = raw[len(_ID_KEY):end]
                    if end < 0 or b"\\" in sid or sid <= prev:
                        ok = False  # unsorted, repeated or escaped: `load_dataset` sorts and judges
                        break
                    prev = sid
                    count += 1
                elif raw.strip():
                    ok = False  # not our writer's shape (or blank by Unicode's reckoning only)
                    break
            if not block:
                break
    return Scan(samples_sha256=digest.hexdigest(), count=count, streamable=ok)


def _plain(data: bytes) -> bool:
    """Whether `data` (whole lines) is UTF-8 with no line break that `str.splitlines` knows besides "\\n"."""
    if len(data.translate(None, _ASCII_BREAKS)) != len(data):
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
