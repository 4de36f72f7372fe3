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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core import ui
from pipeline.core.dataset import Dataset
from pipeline.core.errors import DataError
from pipeline.engines import Engine, chunks, given

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
    ids: list[str]
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
    the images are decoded and resized when the cache is built (default: threads of this process);
    the arrays are the same bytes either way.
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


def _build(dataset: Dataset, folder: Path, content: str, size: int, grayscale: bool,
           workers: int | None, engine: Engine | None = None) -> TensorCache:
    start = time.perf_counter()
    samples = dataset.samples
    classes = dataset.classes
    index = {c: i for i, c in enumerate(classes)}
    n, k = len(samples), len(classes)
    channels = 1 if grayscale else 3
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        # Written straight into a memory-mapped file: peak memory stays small for any N.
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                           shape=(n, channels, size, size))
        labels = np.zeros(n, dtype=np.int64)
        splits = np.zeros(n, dtype=np.int8)
        soft = np.zeros((n, k), dtype=np.float32) if any(s.soft_label for s in samples) else None
        for i, s in enumerate(samples):
            splits[i] = SPLIT_CODES.get(s.split, -1)
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

        if engine is not None and not engine.is_local:
            _decode_on(engine, dataset, images, size, grayscale)
        else:
            def decode(i: int) -> None:
                images[i] = to_array(dataset.open_image(samples[i]), size, grayscale)

            workers = workers or min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                bar = ui.progress(total=n, desc="decode images (once)", unit="img")
                with bar:
                    for _ in pool.map(decode, range(n), chunksize=256):
                        bar.update(1)
        images.flush()
        np.save(tmp / "labels.npy", labels)
        np.save(tmp / "splits.npy", splits)
        if soft is not None:
            np.save(tmp / "soft.npy", soft)
        meta = {
            "version": CACHE_VERSION, "dataset": str(Path(dataset.root).resolve()), "content_hash": content,
            "size": size, "grayscale": grayscale, "classes": classes,
            "ids": [s.id for s in samples], "sizes": [[s.width, s.height] for s in samples],
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(folder, meta["dataset"], content)
    return _open(folder, time.perf_counter() - start)


def _decode_on(engine: Engine, dataset: Dataset, images: np.ndarray, size: int, grayscale: bool) -> None:
    """Every image decoded and resized by the engine's workers (Ray), in chunks of `DECODE_CHUNK`,
    written into `images` in order as the chunks come back."""
    spec = (Dataset(Path(dataset.root).resolve(), dataset.info, []), size, grayscale)  # (images only: no samples)
    with engine, ui.progress(total=len(images), desc="decode images (once)", unit="img") as bar:
        start = 0
        for block in engine.map(given, spec, _decode_chunk, chunks(dataset.samples, DECODE_CHUNK)):
            images[start:start + len(block)] = block
            start += len(block)
            bar.update(len(block))


def _decode_chunk(context: tuple[Dataset, int, bool], samples: list) -> np.ndarray:
    """A chunk of samples as uint8 (n, C, size, size), on a worker."""
    dataset, size, grayscale = context
    return np.stack([to_array(dataset.open_image(s), size, grayscale) for s in samples])


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
