"""Reading a dataset folder: `load_dataset` (validated, sorted by id), `iter_samples` (streamed),
`content_hash` and `is_dataset`."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.core.dataset.model import DATASET_JSON, SAMPLES_JSONL, Dataset, DatasetInfo, Sample
from pipeline.core.dataset.validation import parse_sample_line, read_info
from pipeline.core.errors import DataError, UsageError
from pipeline.core.outputs import pid_alive
from pipeline.core.paths import sha256_bytes


def is_dataset(path: str | os.PathLike) -> bool:
    """Whether `path` holds a dataset.json and a samples.jsonl."""
    return (Path(path) / DATASET_JSON).is_file() and (Path(path) / SAMPLES_JSONL).is_file()


def finish_update(root: Path, samples_sha256: str) -> bool:
    """Complete an in-place update (`rewrite_samples`) that a kill cut between its two renames:
    the new samples.jsonl is in place and the new dataset.json, whose recorded hash matches it,
    still waits in its temporary file, and its writer no longer runs. True when one was renamed
    into place."""
    prefix = f".{DATASET_JSON}.tmp-"
    for name in sorted(os.listdir(root)):
        pid = name[len(prefix):]
        if not name.startswith(prefix) or not pid.isdigit() or pid_alive(int(pid)):
            continue  # (a running update renames it itself)
        try:
            pending = json.loads((root / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(pending, dict) and pending.get("samples_sha256") == samples_sha256:
            os.replace(root / name, root / DATASET_JSON)
            return True
    return False


def content_hash(root: str | os.PathLike) -> str:
    """sha256 over dataset.json's task, classes and class ids and the bytes of samples.jsonl."""
    root = Path(root)
    info = read_info(root)
    h = hashlib.sha256()
    head: dict = {"task": info.task, "classes": info.classes}
    if info.class_ids is not None:  # (absent: the hash of a dataset without ids is as it always was)
        head["class_ids"] = info.class_ids
    h.update(json.dumps(head, sort_keys=True).encode())
    with open(root / SAMPLES_JSONL, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def iter_samples(root: str | os.PathLike, info: DatasetInfo | None = None) -> Iterator[Sample]:
    """Stream validated samples from samples.jsonl (errors name the line and the field)."""
    root = Path(root)
    info = info or read_info(root)
    classes = set(info.classes)
    path = root / SAMPLES_JSONL
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            yield parse_sample_line(line, classes, where=SAMPLES_JSONL, line=lineno, root=root)


def check_samples_hash(root: Path, info: DatasetInfo, digest: str) -> DatasetInfo:
    """The dataset.json to use, given the sha256 of samples.jsonl's bytes: `info` when it records that
    hash (or none), the one an interrupted update left ready (`finish_update`), else a `DataError`."""
    if info.samples_sha256 and digest != info.samples_sha256:
        if not finish_update(root, digest):
            raise DataError(
                root / DATASET_JSON,
                "does not match samples.jsonl (an update was interrupted, or the file was edited by hand)",
                field="samples_sha256",
                fix="re-run the stage that wrote this dataset, or run `pipeline split --redo` / re-import",
            )
        return read_info(root)
    return info


def load_dataset(root: str | os.PathLike, *, check_hash: bool = True) -> Dataset:
    """Load and validate a dataset folder. Raises `DataError`/`UsageError` with file:line: field messages."""
    root = Path(root)
    info = read_info(root)
    raw = (root / SAMPLES_JSONL).read_bytes() if (root / SAMPLES_JSONL).is_file() else None
    if raw is None:
        raise UsageError(f"{root}: not a pipeline dataset (no {SAMPLES_JSONL})", fix="re-run the stage that wrote it")
    if check_hash:
        info = check_samples_hash(root, info, sha256_bytes(raw))
    classes = set(info.classes)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    text = raw.decode("utf-8", errors="strict")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        sample = parse_sample_line(line, classes, where=SAMPLES_JSONL, line=lineno, root=root)
        if sample.id in seen:
            raise DataError(
                SAMPLES_JSONL, "duplicate id", line=lineno, field="id",
                expected=f"an id not already used on line {seen[sample.id]}", got=sample.id,
            )
        seen[sample.id] = lineno
        samples.append(sample)
    samples.sort(key=lambda s: s.id)
    return Dataset(root=root, info=info, samples=samples)


class StoredSamples(Sequence):
    """The samples of a dataset just written, read from its samples.jsonl (`load_dataset`) when
    first used: a stage that streamed a large dataset to disk does not hold it in memory twice.
    Its length and its samples per split are known without reading (`split_counts`)."""

    def __init__(self, root: str | os.PathLike, count: int, splits: dict[str | None, int]) -> None:
        self._root = Path(root)
        self._count = count
        self._splits = dict(splits)
        self._items: list[Sample] | None = None

    def _all(self) -> list[Sample]:
        if self._items is None:
            self._items = load_dataset(self._root).samples
        return self._items

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):  # type: ignore[override]
        return self._all()[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, StoredSamples)):
            return self._all() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # (a list's equality, so no hash, as a list)

    def split_counts(self) -> dict[str | None, int]:
        """Samples per split (None: no split), without reading the samples."""
        return dict(self._splits)
