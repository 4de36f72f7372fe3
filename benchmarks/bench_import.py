"""Importing Pascal VOC XML: files per second on one core, memory per file, beside supervision.

Generates its own files in a temporary folder, laid out as labelImg leaves them: ``images/`` with
one small JPEG per annotation (distinct bytes) and ``annotations/`` with one VOC XML per image
whose ``<path>`` is an absolute path from another machine (so every image is found by name). Each
XML has two boxes, the ``pose``/``truncated``/``difficult`` tags and a ``<size>`` that matches.

The reference, timed in the same run on the same files, is supervision's
``DetectionDataset.from_pascal_voc`` (it parses the same XML and reads the images).

Target: >= 5,000 files/s for 10,000 files (``BENCH=full``), memory flat in the number of files
(peak traced allocations per file, measured at two sizes, must not grow).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.importing import import_files, import_rows, peak_traced, timed

TARGET = 5000.0

XML = """<annotation verified="yes">
\t<folder>images</folder>
\t<filename>{name}.jpg</filename>
\t<path>/Users/someone/Desktop/data/images/{name}.jpg</path>
\t<source>
\t\t<database>Unknown</database>
\t</source>
\t<size>
\t\t<width>32</width>
\t\t<height>24</height>
\t\t<depth>3</depth>
\t</size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>{a}</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>{x1}</xmin>
\t\t\t<ymin>{y1}</ymin>
\t\t\t<xmax>{x2}</xmax>
\t\t\t<ymax>{y2}</ymax>
\t\t</bndbox>
\t</object>
\t<object>
\t\t<name>sign</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>1</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox>
\t\t\t<xmin>2</xmin>
\t\t\t<ymin>2</ymin>
\t\t\t<xmax>30</xmax>
\t\t\t<ymax>22</ymax>
\t\t</bndbox>
\t</object>
</annotation>
"""


def make_files(root: Path, n: int, seed: int = 0) -> Path:
    """`n` VOC XML files and their JPEGs under `root/src` (``images/`` and ``annotations/``)."""
    rng = np.random.default_rng(seed)
    src = root / "src"
    (src / "images").mkdir(parents=True)
    (src / "annotations").mkdir()
    base = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, format="JPEG", quality=80)
    jpeg = bytearray(buf.getvalue())
    comment_at = 2  # a COM segment after SOI makes each file's bytes distinct without re-encoding
    for i in range(n):
        name = f"img_{i:05d}"
        tag = f"{i:08d}".encode()
        data = bytes(jpeg[:comment_at]) + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + bytes(jpeg[comment_at:])
        (src / "images" / f"{name}.jpg").write_bytes(data)
        x1, y1 = int(rng.integers(1, 16)), int(rng.integers(1, 10))
        (src / "annotations" / f"{name}.xml").write_text(
            XML.format(name=name, a="digit" if i % 3 else "letter", x1=x1, y1=y1, x2=x1 + 10, y2=y1 + 12))
    return src


def _supervision(src: Path) -> int:
    import supervision as sv

    ds = sv.DetectionDataset.from_pascal_voc(str(src / "images"), str(src / "annotations"))
    return len(ds)


def _peak_per_file(root: Path, src: Path, n: int) -> float:
    sub = root / f"sub{n}"
    (sub / "images").mkdir(parents=True)
    (sub / "annotations").mkdir()
    for p in sorted((src / "annotations").glob("*.xml"))[:n]:
        os.link(p, sub / "annotations" / p.name)
        os.link(src / "images" / f"{p.stem}.jpg", sub / "images" / f"{p.stem}.jpg")
    return peak_traced(import_files, "voc", sub, root / f"out-mem{n}") / n


def run(quick: bool) -> list[dict]:
    n = 2000 if quick else 10000
    root = Path(tempfile.mkdtemp(prefix="bench-voc-"))
    try:
        src = make_files(root, n)
        import_files("voc", src, root / "warm")  # warm the page cache and imports for both runs
        shutil.rmtree(root / "warm")
        ours_s, ours_cpu, count = timed(import_files, "voc", src, root / "out")
        assert count == n
        try:
            ref_s, ref_cpu, ref_n = timed(_supervision, src)
            assert ref_n == n
        except ImportError:
            ref_s = ref_cpu = None
        small, large = max(200, n // 10), max(1000, n // 2)
        mem_small = _peak_per_file(root, src, small)
        mem_large = _peak_per_file(root, src, large)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return import_rows(f"voc, {n} XML files", n, TARGET, ours_s, ours_cpu, ref_s, ref_cpu,
                       "supervision DetectionDataset.from_pascal_voc on the same files",
                       (small, mem_small, large, mem_large))


if __name__ == "__main__":
    import sys

    for row in run(quick="--full" not in sys.argv):
        print(row)
