"""MNIST: the real dataset through torchvision's download code, or the 5,000-image subset in the repository.

Both arrive as MNIST's IDX files (read by `pipeline.sources.idx`) and become a canonical dataset of
28x28 grayscale PNGs, labels "0".."9":

- real MNIST: torchvision's `datasets.MNIST` downloads train and test (its mirror list, replaceable;
  its md5 checksums), official split train 60,000 / test 10,000, ids ``train-00000`` / ``test-00000``.
- embedded: ``datasets/embedded/`` (see its README), split train 4,000 / test 1,000, 100 test images
  per class, always the same ones; ids ``mnist5k-0000``.

Each sample's ``source`` names the IDX file and the index in it; the lineage records the files' sha256.
Raw downloads are kept (default: ``.downloads/mnist`` beside the output folder, ``--raw`` to choose),
and only files whose md5 matches stay there, so a re-run with verified files downloads nothing and
a corrupted or interrupted download is never trusted.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core import ui
from pipeline.core.dataset import Dataset, DatasetWriter, Sample
from pipeline.core.errors import DataError, NetworkError, UsageError
from pipeline.core.paths import sha256_bytes
from pipeline.core.rng import derive_seed
from pipeline.sources.idx import parse_idx

CLASSES = [str(d) for d in range(10)]
MIRRORS_ENV = "PIPELINE_MNIST_MIRRORS"

EMBEDDED_IMAGES = "mnist5k-images-idx3-ubyte.gz"
EMBEDDED_LABELS = "mnist5k-labels-idx1-ubyte.gz"
EMBEDDED_TEST_PER_CLASS = 100  # 500 per class in the subset: 400 train / 100 test

# split -> (images file, labels file), as torchvision names them
OFFICIAL_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

OFFLINE_FIX = "check the network or the --mirror URLs, or use the bundled 5,000-image subset: " \
              "pipeline fetch mnist --embedded --out DIR"


@dataclass
class FetchReport:
    """What a fetch did, for the summary."""

    source: str
    counts: Counter = field(default_factory=Counter)  # split -> samples
    downloaded: list[str] = field(default_factory=list)  # files fetched over the network this run
    reused: list[str] = field(default_factory=list)  # raw files already present and verified
    raw_dir: Path | None = None


# --------------------------------------------------------------------------------------------
# Reading IDX pairs
# --------------------------------------------------------------------------------------------


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Images (uint8 [N, H, W]) and labels (uint8 [N]) of an MNIST IDX pair, plus the files' sha256."""
    blobs = {}
    for p in (images_path, labels_path):
        try:
            blobs[p] = p.read_bytes()
        except OSError as exc:
            raise DataError(p, f"cannot read ({exc.strerror or exc})", fix="check the path") from exc
    images = parse_idx(blobs[images_path], images_path, dims=3)
    labels = parse_idx(blobs[labels_path], labels_path, dims=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        bad, arr = (images_path, images) if images.dtype != np.uint8 else (labels_path, labels)
        raise DataError(bad, "", field="type", expected="unsigned bytes (IDX type 0x08)", got=str(arr.dtype))
    if len(images) != len(labels):
        raise DataError(labels_path, "image and label counts differ", expected=f"{len(images)} labels "
                        f"(as many as in {images_path.name})", got=len(labels),
                        fix="the two files come from different downloads; fetch them again")
    if len(labels) and int(labels.max()) > 9:
        first = int(np.argmax(labels > 9))
        raise DataError(labels_path, "", field=f"label[{first}]", expected="a digit 0..9", got=int(labels[first]))
    hashes = {p.name: sha256_bytes(b) for p, b in blobs.items()}
    return images, labels, hashes


# --------------------------------------------------------------------------------------------
# Writing the dataset
# --------------------------------------------------------------------------------------------


@dataclass
class Part:
    """One IDX pair and how its samples are named and split."""

    images: np.ndarray
    labels: np.ndarray
    images_file: str
    id_prefix: str
    splits: Sequence[str]


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    from pipeline.core.images import encode_png

    return encode_png(Image.fromarray(arr, mode="L"))


def write_dataset(out: Path, parts: Iterable[Part], *, stage_params: dict, inputs: dict[str, str],
                  desc: str, overwrite: bool = False) -> Dataset:
    """Encode every image as PNG and write one canonical dataset (temp folder, renamed when complete)."""
    parts = list(parts)
    total = sum(len(p.labels) for p in parts)
    with DatasetWriter(out, task="classification", stage="fetch", classes=CLASSES, params=stage_params,
                       inputs=inputs, overwrite=overwrite) as w, ui.progress(total=total, desc=desc, unit="img") as bar:
        for part in parts:
            width = max(4, len(str(len(part.labels) - 1)))
            for i in range(len(part.labels)):
                h, wd = part.images.shape[1:]
                sample = Sample(id=f"{part.id_prefix}-{i:0{width}d}", width=int(wd), height=int(h),
                                split=part.splits[i], label=CLASSES[int(part.labels[i])],
                                source={"file": part.images_file, "index": i})
                w.add(sample, data=_png(part.images[i]), ext="png")
                bar.update(1)
        dataset = w.commit()
    return dataset


# --------------------------------------------------------------------------------------------
# Embedded subset
# --------------------------------------------------------------------------------------------


def embedded_dir() -> Path:
    """The folder of the embedded subset (``datasets/embedded`` in the repository)."""
    return Path(__file__).resolve().parents[2] / "datasets" / "embedded"


def embedded_splits(labels: np.ndarray, test_per_class: int = EMBEDDED_TEST_PER_CLASS) -> list[str]:
    """The fixed train/test split of the subset: per class, the `test_per_class` images whose
    hash of (subset, index) is smallest go to test. Depends on nothing but the labels."""
    splits = ["train"] * len(labels)
    for digit in range(10):
        idx = [int(i) for i in np.flatnonzero(labels == digit)]
        idx.sort(key=lambda i: derive_seed("mnist5k", "test", i))
        for i in idx[:test_per_class]:
            splits[i] = "test"
    return splits


def fetch_embedded(out: Path, *, folder: Path | None = None, overwrite: bool = False) -> tuple[Dataset, FetchReport]:
    """Write the embedded 5,000-image subset as a canonical dataset at `out` (an earlier dataset
    there replaced only with `overwrite`)."""
    folder = Path(folder) if folder is not None else embedded_dir()
    images_path, labels_path = folder / EMBEDDED_IMAGES, folder / EMBEDDED_LABELS
    missing = [p for p in (images_path, labels_path) if not p.is_file()]
    if missing:
        raise UsageError(f"{missing[0]}: the embedded MNIST subset is missing",
                         fix="run from a clone of the repository (pip install -e .), or restore datasets/embedded/")
    images, labels, hashes = read_pair(images_path, labels_path)
    splits = embedded_splits(labels)
    part = Part(images, labels, EMBEDDED_IMAGES, "mnist5k", splits)
    params = {"source": "mnist", "embedded": True, "test_per_class": EMBEDDED_TEST_PER_CLASS}
    dataset = write_dataset(out, [part], stage_params=params, inputs=hashes, desc="write mnist5k",
                            overwrite=overwrite)
    report = FetchReport(source=f"embedded subset ({folder})", counts=Counter(splits))
    return dataset, report


# --------------------------------------------------------------------------------------------
# Real MNIST through torchvision
# --------------------------------------------------------------------------------------------


def resolve_mirrors(mirrors: Sequence[str] = ()) -> list[str] | None:
    """--mirror options, else $PIPELINE_MNIST_MIRRORS (comma-separated), else None (torchvision's list).

    Each mirror is a base URL that the file names are appended to; a missing trailing '/' is added.
    """
    chosen = [m.strip() for m in mirrors if m.strip()]
    if not chosen:
        chosen = [m.strip() for m in os.environ.get(MIRRORS_ENV, "").split(",") if m.strip()]
    if not chosen:
        return None
    for m in chosen:
        if not m.startswith(("http://", "https://", "file://")):
            raise UsageError(f"mirror {m!r}: expected an http(s):// URL",
                             fix="e.g. --mirror https://ossci-datasets.s3.amazonaws.com/mnist/")
    return [m if m.endswith("/") else m + "/" for m in chosen]


def default_raw_dir(out: Path) -> Path:
    """Where raw downloads live unless --raw says otherwise: ``.downloads/mnist`` beside `out`
    (under ``datasets/`` that is git-ignored, like every output there)."""
    return Path(out).resolve().parent / ".downloads" / "mnist"


def _md5(path: Path) -> str:
    import hashlib

    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _mnist_class(raw: Path, mirrors: list[str] | None, resources: list[tuple[str, str]] | None):
    """torchvision's MNIST with our raw folder, mirror list and checksums; the download code
    (HTTP, md5 check, gunzip) is torchvision's own."""
    from torchvision.datasets import MNIST

    attrs: dict = {"raw_folder": property(lambda self: str(raw))}
    if mirrors is not None:
        attrs["mirrors"] = list(mirrors)
    if resources is not None:
        attrs["resources"] = list(resources)
    return type("MNIST", (MNIST,), attrs)


def _clean_raw(raw: Path, resources: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Keep only verified downloads in `raw`: remove .gz files whose md5 is wrong and every
    decompressed copy (torchvision trusts those by their mere presence). Returns (verified, removed)."""
    verified, removed = [], []
    for name, md5 in resources:
        gz = raw / name
        plain = raw / name[: -len(".gz")] if name.endswith(".gz") else None
        if plain is not None and plain.exists():
            plain.unlink()
        if gz.exists():
            if _md5(gz) == md5:
                verified.append(name)
            else:
                gz.unlink()
                removed.append(name)
    return verified, removed


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())


def download(raw: Path, *, mirrors: list[str] | None = None,
             resources: list[tuple[str, str]] | None = None) -> tuple[dict[str, Path], list[str], list[str]]:
    """Download MNIST's four .gz files with torchvision into the folder `raw`.

    Returns (name -> verified .gz path, names downloaded now, names reused). On any failure every
    unverified file is removed and a `NetworkError` says what happened in one line.
    """
    import http.client

    raw = Path(raw)
    cls = _mnist_class(raw, mirrors, resources)
    resources = list(cls.resources)
    created = not raw.exists()
    raw.mkdir(parents=True, exist_ok=True)
    reused, _ = _clean_raw(raw, resources)
    missing = [n for n, _ in resources if n not in reused]
    if missing:
        ui.info(f"downloading {', '.join(missing)} from {', '.join(cls.mirrors)}")
    interactive = sys.stderr.isatty() and not ui.is_quiet()
    sink = sys.stderr if interactive else io.StringIO()  # torchvision prints and draws its own bars
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            cls(str(raw), train=True, download=True)
    except (RuntimeError, OSError, ValueError, http.client.HTTPException) as exc:
        _, removed = _clean_raw(raw, resources)
        if created and not any(raw.iterdir()):
            raw.rmdir()
        text = str(exc)
        if "corrupted" in text or removed:
            name = next((n for n, _ in resources if f"downloading {n}" in text), removed[0] if removed else "a file")
            raise NetworkError(
                f"MNIST download: {name} arrived corrupted or incomplete (md5 mismatch) from every mirror "
                f"({', '.join(cls.mirrors)}); the bad file was deleted",
                fix="try again later or another --mirror; " + OFFLINE_FIX.split(", or ")[1],
            ) from exc
        name = next((n for n, _ in resources if f"downloading {n}" in text), "MNIST")
        detail = text.rsplit("got:", 1)[1] if "got:" in text else f"{type(exc).__name__}: {text}"
        raise NetworkError(f"MNIST download of {name} failed on every mirror ({', '.join(cls.mirrors)}; "
                           f"last error: {_first_line(detail)})", fix=OFFLINE_FIX) from exc
    except BaseException:
        _clean_raw(raw, resources)
        raise
    verified, _ = _clean_raw(raw, resources)
    if sorted(verified) != sorted(n for n, _ in resources):
        lost = sorted(set(n for n, _ in resources) - set(verified))
        raise NetworkError(f"MNIST download: {', '.join(lost)} missing after the download", fix=OFFLINE_FIX)
    paths = {n: raw / n for n, _ in resources}
    return paths, [n for n in missing], reused


def fetch_real(out: Path, *, raw_dir: Path | None = None, mirrors: Sequence[str] = (),
               resources: list[tuple[str, str]] | None = None, overwrite: bool = False) -> tuple[Dataset, FetchReport]:
    """Download (or reuse) the real MNIST and write it as a canonical dataset with the official split."""
    raw = Path(raw_dir) if raw_dir is not None else default_raw_dir(out)
    chosen = resolve_mirrors(mirrors)
    paths, downloaded, reused = download(raw, mirrors=chosen, resources=resources)
    parts, inputs = [], {}
    for split, (img_name, lbl_name) in OFFICIAL_FILES.items():
        if img_name not in paths or lbl_name not in paths:
            raise UsageError(f"the resource list has no {img_name} / {lbl_name}",
                             fix="MNIST needs the train and t10k image and label files")
        images, labels, hashes = read_pair(paths[img_name], paths[lbl_name])
        inputs.update(hashes)
        parts.append(Part(images, labels, img_name, split, [split] * len(labels)))
    params = {"source": "mnist", "embedded": False, "mirrors": chosen or "torchvision default",
              "raw": str(raw)}
    dataset = write_dataset(out, parts, stage_params=params, inputs=inputs, desc="write mnist", overwrite=overwrite)
    report = FetchReport(source="MNIST (torchvision download)", raw_dir=raw,
                         counts=Counter({p.id_prefix: len(p.labels) for p in parts}),
                         downloaded=downloaded, reused=reused)
    return dataset, report
