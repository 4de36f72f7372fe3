"""`crop` on kangaroo-sized photos: seconds for the whole stage and megabytes written.

Generates its own dataset in a temporary folder: textured JPEG photos of 900x650 (about 135 KB
each; 25 MB for 180, as the kangaroo set's 20 MB for 183) with one or two large boxes each (about
270 boxes for 180 photos, as the kangaroo set's 263 from 183). Ours is `crop_dataset` as it runs
by default (JPEG crops of JPEG photos, each photo decoded once); the reference, timed in the same
run on the same dataset, is the previous code path, every crop encoded as PNG (``encode="png"``,
still callable as `--encode png`).

Target: at least 3x faster than the reference.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

TARGET = 3.0


W, H = 900, 650  # the kangaroo photos' typical size (20 MB of JPEGs for 183 photos: about 110 KB each)


def make_dataset(root: Path, n: int, seed: int = 0) -> tuple[Path, int]:
    """`n` textured JPEG photos of `W` x `H` with 1-2 boxes each (an animal filling a good part of the
    frame: 150-600 x 150-500 pixels, as the kangaroo set's 74 MB of PNG crops, about 280 KB each,
    imply); returns the dataset and its box count."""
    from pipeline.core.dataset import DatasetWriter, Obj, Sample

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    boxes = 0
    with DatasetWriter(root, task="detection", stage="bench", classes=["kangaroo"]) as w:
        for i in range(n):
            phase = rng.uniform(0, 6.28, size=3)
            smooth = np.stack([np.sin(xx / (40 + 9 * c) + phase[c]) * np.cos(yy / (55 + 7 * c)) for c in range(3)], -1)
            arr = np.clip(128 + 80 * smooth + rng.normal(0, 6, size=(H, W, 3)), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=90)
            objs = []
            for _ in range(1 + int(i % 100 < 46)):  # about 1.46 boxes per photo, as the kangaroo set
                bw, bh = float(rng.integers(150, 600)), float(rng.integers(150, 500))
                x1, y1 = float(rng.integers(0, W - int(bw))), float(rng.integers(0, H - int(bh)))
                objs.append(Obj("kangaroo", bbox=[x1, y1, x1 + bw, y1 + bh]))
            boxes += len(objs)
            w.add(Sample(id=f"{i:05d}", width=W, height=H, split="train", objects=objs),
                  data=buf.getvalue(), ext="jpg")
    return root, boxes


def _crop(src: Path, out: Path, encode: str) -> tuple[float, int, int]:
    from pipeline.core.dataset import load_dataset
    from pipeline.crop import crop_dataset

    shutil.rmtree(out, ignore_errors=True)
    dataset = load_dataset(src)
    start = time.perf_counter()
    _, report = crop_dataset(dataset, out, encode=encode)
    seconds = time.perf_counter() - start
    return seconds, report.written, _size(out)


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "images").rglob("*") if p.is_file())


def run(quick: bool) -> list[dict]:
    n = 60 if quick else 180
    root = Path(tempfile.mkdtemp(prefix="bench-crop-"))
    try:
        src, boxes = make_dataset(root / "photos", n)
        source_mb = _size(src) / 1e6
        _crop(src, root / "warm", "auto")  # page cache and imports warm for both runs
        ref_s, ref_n, ref_bytes = _crop(src, root / "png", "png")
        ours_s, ours_n, ours_bytes = _crop(src, root / "jpeg", "auto")
        assert ours_n == ref_n == boxes
    finally:
        shutil.rmtree(root, ignore_errors=True)
    what = f"{boxes} crops from {n} JPEG photos of {W}x{H} ({source_mb:.1f} MB)"
    return [
        {"name": f"crop, {what}", "ours": ours_s, "reference": ref_s, "ratio": ours_s / ref_s, "unit": "s",
         "target": f">= {TARGET:.0f}x faster (ratio <= {1 / TARGET:.2f})",
         "note": f"reference: every crop as PNG (encode='png'); {os.cpu_count()} CPUs"},
        {"name": f"crop output, {what}", "ours": ours_bytes / 1e6, "reference": ref_bytes / 1e6,
         "ratio": ours_bytes / ref_bytes, "unit": "MB", "target": "smaller than the PNG crops",
         "note": "JPEG quality 95, the photo's chroma subsampling"},
    ]


if __name__ == "__main__":
    import sys

    for row in run(quick="--full" not in sys.argv):
        print(row)
