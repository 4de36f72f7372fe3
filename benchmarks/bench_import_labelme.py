"""Importing labelme JSON without embedded images: files per second on one core, memory per file.

Generates its own files in a temporary folder: one small PNG and one labelme 5.x JSON per image
(``imageData`` null, three rectangles, a polygon and a point each). The reference, timed in the same
run on the same files, is the floor any importer pays: ``json.loads`` of every file plus reading
every image's header with Pillow.

Target: >= 5,000 files/s for 10,000 files (``BENCH=full``), memory flat in the number of files
(peak traced allocations per file, measured at two sizes, must not grow).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.importing import import_files, import_rows, peak_traced, timed

TARGET = 5000.0


def make_files(root: Path, n: int, seed: int = 0) -> Path:
    """`n` labelme JSON files with their PNGs under `root/src` (natural layout: image beside JSON)."""
    rng = np.random.default_rng(seed)
    src = root / "src"
    src.mkdir(parents=True)
    base = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
    for i in range(n):
        arr = base.copy()
        arr[0, 0] = (i % 256, (i // 256) % 256, (i // 65536) % 256)  # distinct bytes per image
        name = f"img_{i:05d}"
        Image.fromarray(arr).save(src / f"{name}.png", compress_level=1)
        x, y = float(rng.integers(0, 16)), float(rng.integers(0, 10))
        shapes = [
            {"label": "digit", "points": [[x, y], [x + 8, y + 12]], "group_id": None, "description": "",
             "shape_type": "rectangle", "flags": {}, "mask": None},
            {"label": "digit", "points": [[x + 2, y + 1], [x + 9, y + 9]], "group_id": None, "description": "",
             "shape_type": "rectangle", "flags": {}, "mask": None},
            {"label": "sign", "points": [[1, 1], [30, 20]], "group_id": None, "description": "",
             "shape_type": "rectangle", "flags": {}, "mask": None},
            {"label": "sign", "points": [[1, 1], [20, 2], [25, 20], [3, 18]], "group_id": 1, "description": "",
             "shape_type": "polygon", "flags": {}, "mask": None},
            {"label": "sign", "points": [[5, 5]], "group_id": 1, "description": "", "shape_type": "point",
             "flags": {}, "mask": None},
        ]
        doc = {"version": "5.7.0", "flags": {}, "shapes": shapes, "imagePath": f"{name}.png", "imageData": None,
               "imageHeight": 24, "imageWidth": 32}
        (src / f"{name}.json").write_text(json.dumps(doc, indent=2))
    return src


def _reference(src: Path) -> int:
    n = 0
    for p in sorted(src.glob("*.json")):
        doc = json.loads(p.read_bytes())
        with Image.open(p.parent / doc["imagePath"]) as im:
            _ = im.size
        n += 1
    return n


def _peak_per_file(root: Path, src: Path, n: int) -> float:
    sub = root / f"sub{n}"
    sub.mkdir()
    for p in sorted(src.glob("*.json"))[:n]:
        os.link(p, sub / p.name)
        os.link(p.with_suffix(".png"), sub / p.with_suffix(".png").name)
    return peak_traced(import_files, "labelme", sub, root / f"out-mem{n}") / n


def run(quick: bool) -> list[dict]:
    n = 2000 if quick else 10000
    root = Path(tempfile.mkdtemp(prefix="bench-labelme-"))
    try:
        src = make_files(root, n)
        _reference(src)  # warm the page cache for both runs
        import_files("labelme", src, root / "warm")  # and the imports an import loads (as bench_import does)
        shutil.rmtree(root / "warm")
        ref_s, ref_cpu, _ = timed(_reference, src)
        ours_s, ours_cpu, count = timed(import_files, "labelme", src, root / "out")
        assert count == n
        small, large = max(200, n // 10), max(1000, n // 2)
        mem_small = _peak_per_file(root, src, small)
        mem_large = _peak_per_file(root, src, large)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return import_rows(f"labelme, {n} JSON files (imageData null)", n, TARGET, ours_s, ours_cpu, ref_s, ref_cpu,
                       "json.loads + Pillow header read of the same files", (small, mem_small, large, mem_large))


if __name__ == "__main__":
    import sys

    for row in run(quick="--full" not in sys.argv):
        print(row)
