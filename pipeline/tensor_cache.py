"""Decode a dataset once into a uint8 array on disk, memory-mapped, reused until the dataset changes.

The training loop never touches an image file: every image is decoded, converted (grayscale by
default) and resized to `size x size` exactly once, here, and stored in an `(N, C, size, size)`
uint8 `.npy` file. Training and validation read that array (memory-mapped, so a dataset larger
than RAM still works) and normalize whole batches as tensors.

Cache layout (under `cache_root()`, i.e. `$PIPELINE_CACHE_DIR`, else `$XDG_CACHE_HOME/pipeline`,
else `~/.cache/pipeline`)::

    tensors/<key>/images.npy    uint8 (N, C, S, S)
    tensors/<key>/labels.npy    int64 (N,)  hard label index (argmax of a soft label); -1 unlabelled
    tensors/<key>/soft.npy      float32 (N, K), only when some sample has a soft_label
    tensors/<key>/splits.npy    int8 (N,)   0 train, 1 val, 2 test, -1 none
    tensors/<key>/meta.json     ids, classes, source sizes, the dataset's path and content hash

`key` hashes the dataset's content hash (dataset.json's task and classes plus samples.jsonl, which
holds every image's sha256) with the preprocessing parameters, so an edited dataset gets a new
cache and the stale one for the same folder is removed. The folder is written under a temporary
name and renamed into place when complete, so a killed build never leaves a cache that is trusted.

With ``pipeline train --engine ray`` the images are decoded and resized by Ray workers
(`pipeline.engines`) and written here in order: the same arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core import ui
from pipeline.core.dataset import Dataset, Sample, is_streamed
from pipeline.core.errors import DataError
from pipeline.engines import Engine, given

CACHE_VERSION = 1
DECODE_CHUNK = 512  # images per Ray task when the build runs on Ray (`--engine ray`): ~0.5 MB back per task at 32x32
SPLIT_CODES = {"train": 0, "val": 1, "test": 2, None: -1}


def cache_root() -> Path:
    """Where caches live: $PIPELINE_CACHE_DIR, else $XDG_CACHE_HOME/pipeline, else ~/.cache/pipeline."""
    env = os.environ.get("PIPELINE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pipeline"


def to_mode(img: Image.Image, grayscale: bool = True) -> Image.Image:
    """8-bit grayscale ('L', luma as ITU-R 601) or RGB; 16/32-bit integer images scaled to 8 bits first."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), mode="L")
    return img.convert("L") if grayscale else img.convert("RGB")


def to_array(img: Image.Image, size: int, grayscale: bool = True) -> np.ndarray:
    """One image as the model sees it before normalization: uint8 (C, size, size).

    `to_mode` (grayscale by default, as the seed), then a bilinear (antialiased) resize to exactly
    `size x size`, as torchvision's `Resize(32)` does for square inputs. Train, validate and
    predict all call this.
    """
    img = to_mode(img, grayscale)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


@dataclass
class TensorCache:
    """A dataset decoded to uint8 arrays (images memory-mapped)."""

    path: Path
    images: np.ndarray  # uint8 (N, C, S, S), memory-mapped
    labels: np.ndarray  # int64 (N,)
    soft: np.ndarray | None  # float32 (N, K) or None
    splits: np.ndarray  # int8 (N,)
    ids: Sequence[str]  # a list when read; read from meta.json when first used after a build
    classes: list[str]
    sizes: np.ndarray  # int32 (N, 2): the source images' (width, height)
    build_seconds: float | None  # None when read from an existing cache

    def __len__(self) -> int:
        return len(self.labels)

    def indices(self, split: str | None) -> np.ndarray:
        """Row indices of one split (`None`: samples without a split)."""
        return np.flatnonzero(self.splits == SPLIT_CODES[split])

    def split_counts(self) -> dict[str, int]:
        out = {}
        for name, code in SPLIT_CODES.items():
            n = int((self.splits == code).sum())
            if n:
                out[name or "none"] = n
        return out

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """Probability targets (N, K) float32 for `rows`: soft labels where given, one-hot otherwise."""
        if self.soft is not None:
            return np.ascontiguousarray(self.soft[rows], dtype=np.float32)
        out = np.zeros((len(rows), len(self.classes)), dtype=np.float32)
        out[np.arange(len(rows)), self.labels[rows]] = 1.0
        return out


def cache_key(content_hash: str, size: int, grayscale: bool) -> str:
    text = json.dumps({"dataset": content_hash, "size": size, "grayscale": grayscale, "v": CACHE_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load_or_build(dataset: Dataset, *, size: int = 32, grayscale: bool = True, root: Path | None = None,
                  workers: int | None = None, labels: bool = True, engine: Engine | None = None) -> TensorCache:
    """The dataset's tensor cache: read it when present, otherwise decode every image once and write it.

    With `labels` (classifiers) every sample must have a class; without (autoencoders, which learn
    from the pixels alone) unlabelled samples get label -1. `engine` (`pipeline.engines`): where
    the images are decoded when the cache is built (a cache already there is read without it).
    """
    root = Path(root) if root is not None else cache_root()
    content = dataset.content_hash
    key = cache_key(content, size, grayscale)
    folder = root / "tensors" / key
    cache = None
    if (folder / "meta.json").is_file():
        try:
            cache = _open(folder, None)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            shutil.rmtree(folder, ignore_errors=True)  # damaged by hand; rebuilt below
    if cache is None:
        cache = _build(dataset, folder, content, size, grayscale, workers, engine)
    if labels:
        unlabelled = np.flatnonzero(cache.labels < 0)
        if len(unlabelled):
            raise _unlabelled(dataset, cache.ids[int(unlabelled[0])])
    return cache


def _unlabelled(dataset: Dataset, sample_id: str) -> DataError:
    return DataError(dataset.root / "samples.jsonl", "sample without a label", field="label",
                     expected="a class name (classification)", got=sample_id,
                     fix="label it, or remove it from the dataset")


def _open(folder: Path, build_seconds: float | None) -> TensorCache:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    images = np.load(folder / "images.npy", mmap_mode="r")
    soft = np.load(folder / "soft.npy") if (folder / "soft.npy").is_file() else None
    labels = np.load(folder / "labels.npy")
    if images.shape[0] != len(labels) or len(meta["ids"]) != len(labels):
        raise ValueError("inconsistent cache")
    return TensorCache(
        path=folder, images=images, labels=labels, soft=soft, splits=np.load(folder / "splits.npy"),
        ids=list(meta["ids"]), classes=list(meta["classes"]), sizes=np.asarray(meta["sizes"], dtype=np.int32),
        build_seconds=build_seconds,
    )


_DECODED = 4096  # decoded images kept: a small image pool under many samples is decoded once
_CHUNK = 1024  # samples decoded together (the thread pool's work list)


def _build(dataset: Dataset, folder: Path, content: str, size: int, grayscale: bool,
           workers: int | None, engine: Engine | None = None) -> TensorCache:
    """Decode every sample once into a new cache folder. The samples are read once, in order
    (a streamed dataset in bounded memory): images go straight into the memory-mapped array, the
    ids into meta.json as they come, labels and splits into arrays of a few bytes a sample."""
    start = time.perf_counter()
    classes = dataset.classes
    index = {c: i for i, c in enumerate(classes)}
    n, k = len(dataset.samples), len(classes)
    channels = 1 if grayscale else 3
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    images = None
    try:
        # Written block by block in row order, straight to the file: peak memory stays small for any N.
        images = open(tmp / "images.npy", "wb")  # noqa: SIM115 (closed below, also on errors)
        np.lib.format.write_array_header_1_0(images, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                                      "fortran_order": False, "shape": (n, channels, size, size)})
        labels = np.zeros(n, dtype=np.int64)
        splits = np.zeros(n, dtype=np.int8)
        sizes = np.zeros((n, 2), dtype=np.int64)
        soft: np.ndarray | None = None  # allocated at the first soft label
        decoded: OrderedDict[tuple, np.ndarray] = OrderedDict()
        workers = workers or min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
                open(tmp / "ids.part", "w", encoding="ascii") as ids, \
                ui.progress(total=n, desc="decode images (once)", unit="img") as bar:
            header = images.tell()
            remote = engine is not None and not engine.is_local
            i = _fill_plain(dataset, images, ids, labels, splits, sizes, decoded, pool, size, grayscale, bar) \
                if is_streamed(dataset) and not remote else None
            if i is None:  # read sample by sample
                images.seek(header)
                images.truncate()
                ids.seek(0)
                ids.truncate()
                bar.reset()
                held: dict[str, np.ndarray] = {}  # "soft": allocated at the first soft label
                counted = [0]

                def rows(chunk_size: int):
                    """The samples in chunks, each sample's row recorded as it is read."""
                    chunk: list = []
                    for i, s in enumerate(dataset.samples):
                        if i >= n:
                            raise DataError(dataset.root / "samples.jsonl", "changed while the cache was built",
                                            fix="run again once the stage writing it has finished")
                        _record(i, s, index, labels, splits, sizes, held, n, k)
                        ids.write((", " if i else "") + json.dumps(s.id))
                        counted[0] = i + 1
                        chunk.append(s)
                        if len(chunk) == chunk_size:
                            yield chunk
                            chunk = []
                    if chunk:
                        yield chunk

                if remote:
                    spec = (Dataset(Path(dataset.root).resolve(), dataset.info, []), size, grayscale)  # (no samples)
                    with engine:
                        blocks = engine.map(given, spec, _decode_samples, rows(DECODE_CHUNK))
                        for block in blocks:
                            images.write(block.tobytes())
                            bar.update(len(block))
                else:
                    for chunk in rows(_CHUNK):
                        images.write(_decode_chunk(dataset, chunk, decoded, pool, size, grayscale).tobytes())
                        bar.update(len(chunk))
                i = counted[0]
                soft = held.get("soft")
        if i != n:
            raise DataError(dataset.root / "samples.jsonl", "changed while the cache was built",
                            fix="run again once the stage writing it has finished")
        images.close()
        np.save(tmp / "labels.npy", labels)
        np.save(tmp / "splits.npy", splits)
        if soft is not None:
            np.save(tmp / "soft.npy", soft)
        head = {
            "version": CACHE_VERSION, "dataset": str(Path(dataset.root).resolve()), "content_hash": content,
            "size": size, "grayscale": grayscale, "classes": classes,
        }
        _write_meta(tmp, head, sizes)
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        if images is not None:
            images.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(folder, head["dataset"], content)
    return TensorCache(path=folder, images=np.load(folder / "images.npy", mmap_mode="r"), labels=labels, soft=soft,
                       splits=splits, ids=_MetaIds(folder / "meta.json", n), classes=list(classes),
                       sizes=sizes.astype(np.int32), build_seconds=time.perf_counter() - start)


def _fill_plain(dataset: Dataset, images, ids, labels: np.ndarray, splits: np.ndarray, sizes: np.ndarray,
                decoded: OrderedDict, pool: ThreadPoolExecutor, size: int, grayscale: bool, bar) -> int | None:
    """The cache's rows of a plain file (`core.dataset.columns`: an image label, no soft labels)
    from DuckDB's batches, each distinct image decoded once; the row count, or None when the file
    is not plain (the caller starts again sample by sample)."""
    import pyarrow.compute as pc

    from pipeline.core.dataset.columns import NotPlain, plain_rows

    row = 0
    try:
        for batch in plain_rows(dataset.root, dataset.info, len(dataset.samples), ids=True, images=True):
            for at in range(0, len(batch["split"]), _CHUNK * 8):
                part = slice(at, at + _CHUNK * 8)
                end = row + len(batch["split"][part])
                splits[row:end] = batch["split"][part]
                labels[row:end] = batch["label"][part]
                sizes[row:end, 0] = batch["width"][part]
                sizes[row:end, 1] = batch["height"][part]
                ids.write((", " if row else "") + ", ".join(json.dumps(x) for x in batch["id"][part].to_pylist()))
                encoded = pc.dictionary_encode(batch["image"][part])
                chunk = [Sample(id="", image=p) for p in encoded.dictionary.to_pylist()]
                images.write(_decode_chunk(dataset, chunk, decoded, pool, size, grayscale)[
                    encoded.indices.to_numpy()].tobytes())
                bar.update(end - row)
                row = end
    except NotPlain:
        return None
    return row


def _decode_chunk(dataset: Dataset, chunk: list, decoded: OrderedDict, pool: ThreadPoolExecutor,
                  size: int, grayscale: bool) -> np.ndarray:
    """The images of `chunk` (samples) as one uint8 block, each distinct file decoded once (the
    last `_DECODED` decoded are remembered)."""
    todo: dict[tuple, object] = {}
    for s in chunk:
        key = _image_key(s)
        if key not in decoded and key not in todo:
            todo[key] = s
    for key, arr in zip(todo, pool.map(lambda s: to_array(dataset.open_image(s), size, grayscale), todo.values()),
                        strict=True):
        decoded[key] = arr
    block = np.empty((len(chunk), 1 if grayscale else 3, size, size), dtype=np.uint8)
    for j, s in enumerate(chunk):
        key = _image_key(s)
        block[j] = decoded[key]
        decoded.move_to_end(key)
    while len(decoded) > _DECODED:
        decoded.popitem(last=False)
    return block


def _record(i: int, s: Sample, index: dict[str, int], labels: np.ndarray, splits: np.ndarray, sizes: np.ndarray,
            held: dict[str, np.ndarray], n: int, k: int) -> None:
    """Row `i`'s split, size and label (a soft label's weights in ``held["soft"]``, allocated at the
    first one, the hard labels before it written into it as one-hot rows)."""
    splits[i] = SPLIT_CODES.get(s.split, -1)
    sizes[i] = (s.width, s.height)
    soft = held.get("soft")
    if s.soft_label and soft is None:
        soft = held["soft"] = np.zeros((n, k), dtype=np.float32)
        hard = np.flatnonzero(labels[:i] >= 0)
        soft[hard, labels[hard]] = 1.0
    if s.soft_label:
        for name, weight in s.soft_label.items():
            soft[i, index[name]] = weight  # type: ignore[index]
        labels[i] = int(np.argmax(soft[i]))  # type: ignore[index]
    elif s.label is not None:
        labels[i] = index[s.label]
        if soft is not None:
            soft[i, labels[i]] = 1.0
    else:
        labels[i] = -1  # unlabelled: fine for an autoencoder; load_or_build refuses it for a classifier


def _decode_samples(context: tuple[Dataset, int, bool], samples: list) -> np.ndarray:
    """A chunk of samples as uint8 (n, C, size, size), on an engine's worker (`--engine ray`)."""
    dataset, size, grayscale = context
    return np.stack([to_array(dataset.open_image(s), size, grayscale) for s in samples])


def _image_key(s) -> tuple:
    return (s.image,) if s.pack is None else (s.image, s.pack.get("file"), s.pack.get("offset"), s.pack.get("length"))


def _write_meta(tmp: Path, head: dict, sizes: np.ndarray) -> None:
    """meta.json: `head`, then the ids (already in ``ids.part``) and the sizes, the bytes
    ``json.dumps`` gives for the whole object, written piece by piece."""
    with open(tmp / "meta.json", "w", encoding="ascii") as fh:
        fh.write(json.dumps(head)[:-1] + ', "ids": [')
        with open(tmp / "ids.part", encoding="ascii") as ids:
            shutil.copyfileobj(ids, fh)
        fh.write('], "sizes": [')
        for start in range(0, len(sizes), 65536):
            block = sizes[start:start + 65536].tolist()
            fh.write((", " if start else "") + ", ".join(f"[{w}, {h}]" for w, h in block))
        fh.write("]}")
    (tmp / "ids.part").unlink()


class _MetaIds(Sequence):
    """The ids of a cache just built, read from its meta.json when first asked for (a build of ten
    million samples does not hold them)."""

    def __init__(self, meta: Path, n: int) -> None:
        self._meta = meta
        self._n = n
        self._ids: list[str] | None = None

    def _load(self) -> list[str]:
        if self._ids is None:
            self._ids = list(json.loads(self._meta.read_text(encoding="utf-8"))["ids"])
        return self._ids

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        return self._load()[index]

    def __iter__(self):
        return iter(self._load())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented


def _remove_stale(keep: Path, dataset_path: str, content: str) -> None:
    """Delete older caches of the same dataset folder (its content changed since they were built)."""
    for other in sorted(keep.parent.iterdir()):
        if other == keep or other.name.startswith("."):
            continue
        try:
            meta = json.loads((other / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if meta.get("dataset") == dataset_path and meta.get("content_hash") != content:
            shutil.rmtree(other, ignore_errors=True)


def channel_stats(images: np.ndarray, rows: np.ndarray, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (in [0, 1] units) over `rows`, computed in chunks (no float copy of all)."""
    c = images.shape[1]
    total = np.zeros(c, dtype=np.float64)
    total_sq = np.zeros(c, dtype=np.float64)
    count = 0
    for start in range(0, len(rows), chunk):
        block = np.asarray(images[np.sort(rows[start:start + chunk])], dtype=np.float64) / 255.0
        total += block.sum(axis=(0, 2, 3))
        total_sq += (block * block).sum(axis=(0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    if count == 0:
        return [0.5] * c, [0.5] * c
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 1e-12))
    return [float(m) for m in mean], [float(max(s, 1e-3)) for s in std]


def border_level(images: np.ndarray, rows: np.ndarray, chunk: int = 8192) -> float:
    """Mean brightness (0..255) of the one-pixel border of the images in `rows` (all channels)."""
    total, count = 0.0, 0
    for start in range(0, len(rows), chunk):
        block = np.asarray(images[np.sort(rows[start:start + chunk])], dtype=np.float64)
        ring = np.concatenate([block[:, :, 0, :], block[:, :, -1, :], block[:, :, 1:-1, 0], block[:, :, 1:-1, -1]],
                              axis=2)
        total += float(ring.sum())
        count += ring.size
    return total / count if count else 0.0
