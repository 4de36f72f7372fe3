"""Importing an ImageFolder tree of MNIST-sized PNGs: files per second on one core.

Data: the real MNIST training PNGs from ``../shared/data/mnist/mnist-train-png.tar.gz`` when present
(``BENCH=quick``: the first 5,000 files of the archive; ``BENCH=full``: all 60,000), extracted to
a temporary folder outside the repository; otherwise generated 28x28 grayscale PNGs in the same
layout. The reference, timed in the same run on the same files, is what any verifying importer
pays at least: torchvision's ``datasets.ImageFolder`` listing the tree plus a full Pillow decode of
every image (ours also hashes each file, hard-links it and writes the dataset).

Target: the full 60,000 files in under 30 s, i.e. >= 2,000 files/s.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.importing import import_files, timed

TARGET = 2000.0
ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "mnist-train-png.tar.gz"


def make_tree(root: Path, n: int) -> tuple[Path, str]:
    """`n` PNGs as ``training/<digit>/<index>.png`` under `root`; returns (tree, description)."""
    tree = root / "mnist"
    if ARCHIVE.is_file():
        with tarfile.open(ARCHIVE) as tar:
            members = []
            for m in tar:
                if m.isfile() and m.name.endswith(".png"):
                    members.append(m)
                    if len(members) >= n:
                        break
            tar.extractall(tree, members=members, filter="data")
        return tree, f"real MNIST PNGs from {ARCHIVE.name}"
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = tree / "training" / str(i % 10)
        folder.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 40, size=(28, 28), dtype=np.uint8)
        arr[6:22, 4 + i % 10: 8 + i % 10] = 230
        Image.fromarray(arr, mode="L").save(folder / f"{i}.png")
    return tree, "generated 28x28 PNGs (../shared/data absent)"


def _reference(src: Path) -> int:
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(src / "training"), loader=lambda p: p)
    for path, _ in folder.samples:
        with Image.open(path) as im:
            im.load()
    return len(folder.samples)


def run(quick: bool) -> list[dict]:
    n = 5000 if quick else 60000
    root = Path(tempfile.mkdtemp(prefix="bench-imagefolder-"))
    try:
        src, what = make_tree(root, n)
        n = _reference(src)  # also warms the page cache for both timed runs
        ref_s, _, _ = timed(_reference, src)
        ours_s, _, count = timed(import_files, "imagefolder", src, root / "out")
        assert count == n, (count, n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ours, ref = n / ours_s, n / ref_s
    return [
        {"name": f"import imagefolder, {n} MNIST-sized PNGs", "ours": round(ours, 1), "reference": round(ref, 1),
         "ratio": round(ours / ref, 3), "unit": "files/s", "target": f">= {TARGET:.0f} files/s (60k in < 30 s)",
         "note": f"{what}; {ours_s:.1f} s for ours; reference: torchvision ImageFolder listing + Pillow full decode"},
    ]


if __name__ == "__main__":
    import sys

    for row in run(quick="--full" not in sys.argv):
        print(row)
