"""Importing one large COCO file: time against pycocotools' own loader, memory against the file.

Generates its own data in a temporary folder: ``images/`` with small JPEGs of distinct bytes and
``annotations.json`` with 100,000 box annotations spread over them (50 per image, in both modes:
the size the target names), each with ``area``, ``iscrowd`` and a ``segmentation`` polygon, as
COCO's own files carry them, in COCO's own key order (images, annotations, categories).

Rows:

- time: `pipeline import coco` in-process with its default workers (the CPUs it may use, at most
  2: a forked process reads the second part of the annotations array) against
  ``pycocotools.coco.COCO(path)`` alone on the same file (which only parses the JSON and builds
  its indexes, in one process; ours also checks and converts every annotation, hashes every image,
  reads its header and writes the dataset), interleaved, best of 2. Target: ours no slower (ratio
  of speeds >= 1). This is the row with the target.
- the same in CPU time, the forked reader's included (two processes spend more than one would:
  this row is higher than one process's and has no target of its own beyond showing it).
- memory: peak memory of the import in a fresh process (VmHWM less the process's size before the
  import, measured after a first import of a one-image file has loaded the libraries an import
  uses: numpy, Pillow) plus the forked reader's peak RSS less the same size (the pages it shares
  with the parent, the file's text among them, counted twice), against the JSON file's size.
  Target: at most 3x.
"""

from __future__ import annotations

import gc
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.importing import timed


def timed_with_workers(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and the processes it started and waited for)."""
    gc.collect()
    t0, c0 = time.perf_counter(), os.times()
    fn(*args)
    wall, c1 = time.perf_counter() - t0, os.times()
    return wall, sum(c1[:4]) - sum(c0[:4])

PER_IMAGE = 50


def make_files(root: Path, annotations: int, seed: int = 0) -> Path:
    """`annotations` COCO boxes over annotations / PER_IMAGE small JPEGs under `root/src`."""
    rng = np.random.default_rng(seed)
    src = root / "src"
    (src / "images").mkdir(parents=True)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=80)
    jpeg = bytearray(buf.getvalue())
    n_images = annotations // PER_IMAGE
    images, anns = [], []
    for i in range(n_images):
        jpeg[-3] = i % 251  # distinct bytes, same header
        jpeg[-4] = i // 251 % 251
        name = f"{i:06d}.jpg"
        (src / "images" / name).write_bytes(jpeg)
        images.append({"id": i + 1, "file_name": name, "width": 64, "height": 48})
    boxes = rng.uniform(0, 1, size=(annotations, 4))
    for k in range(annotations):
        x, y = float(boxes[k, 0] * 40), float(boxes[k, 1] * 30)
        w, h = float(1 + boxes[k, 2] * 20), float(1 + boxes[k, 3] * 15)
        anns.append({"id": k + 1, "image_id": k // PER_IMAGE + 1, "category_id": 1 + k % 3,
                     "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(w * h, 2),
                     "iscrowd": 0, "segmentation": [[round(x, 2), round(y, 2), round(x + w, 2), round(y, 2),
                                                     round(x + w, 2), round(y + h, 2)]]})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}, {"id": 3, "name": "dog"}]}
    (src / "annotations.json").write_text(json.dumps(doc))
    return src


MEMORY_SCRIPT = """
import os, resource, sys, threading
from pathlib import Path
from pipeline.core import ui
from pipeline.formats import coco, ingest  # imported before the baseline
def vm(key, pid="self", name="status"):
    try:
        for line in open(f"/proc/{pid}/{name}"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
def together():  # anonymous memory of this process and its forked reader, shared pages counted once (PSS)
    kids = open(f"/proc/self/task/{os.getpid()}/children").read().split()
    return vm("Pss_Anon:", name="smaps_rollup") + sum(vm("Pss_Anon:", kid, "smaps_rollup") for kid in kids)
ui.set_quiet(True)
ingest.import_dataset("coco", Path(sys.argv[3]), Path(sys.argv[4]))  # the libraries an import loads
base, base_anon = vm("VmRSS:"), together()
peak, done = [0], threading.Event()
def sample():
    while not done.wait(0.002):
        peak[0] = max(peak[0], together())
sampler = threading.Thread(target=sample)
sampler.start()
ingest.import_dataset("coco", Path(sys.argv[1]), Path(sys.argv[2]))
done.set()
sampler.join()
worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # (the forked reader: 0 when none ran)
print(vm("VmHWM:") - base, max(peak[0] - base_anon, 0), max(worker - base, 0))
"""


def run(quick: bool) -> list[dict]:
    from pycocotools.coco import COCO

    from benchmarks.importing import import_files
    from pipeline.formats.coco import default_workers

    n = 100_000  # (what the target names, in both modes: a few seconds)
    root = Path(tempfile.mkdtemp(prefix="bench-coco-"))
    try:
        src = make_files(root, n)
        tiny = make_files(root / "tiny", PER_IMAGE, seed=1)
        ann = src / "annotations.json"
        size = ann.stat().st_size
        ours, ours_cpu, refs, refs_cpu = [], [], [], []
        for r in range(2):
            out = root / f"out{r}"
            wall_s, cpu_s = timed_with_workers(import_files, "coco", src, out)
            ours.append(wall_s)
            ours_cpu.append(cpu_s)
            shutil.rmtree(out)
            devnull = open(os.devnull, "w")
            try:
                stdout, sys.stdout = sys.stdout, devnull  # COCO() prints its progress
                wall_s, cpu_s, _ = timed(COCO, str(ann))
                refs.append(wall_s)
                refs_cpu.append(cpu_s)
            finally:
                sys.stdout = stdout
                devnull.close()
        wall, ref, cpu, ref_cpu = min(ours), min(refs), min(ours_cpu), min(refs_cpu)
        workers = default_workers()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        parent, together, worker = map(int, subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(src), str(root / "mem"), str(tiny), str(root / "mem-tiny")],
            env=env, check=True, capture_output=True, text=True).stdout.split()[-3:])
        peak = max(parent, together)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        {"name": f"import coco, one file with {n:,} annotations", "ours": round(n / wall, 1),
         "reference": round(n / ref, 1), "ratio": round(ref / wall, 3), "unit": "annotations/s",
         "target": "ratio >= 1 (no slower than pycocotools' COCO(path))",
         "note": f"ours {wall:.2f} s (parse, {n // PER_IMAGE} image hashes and headers, dataset written; "
                 f"{workers} process(es): the default, the CPUs we may use, at most 2) vs COCO(path) {ref:.2f} s "
                 f"(parse and index only, one process); best of 2"},
        {"name": f"import coco, one file with {n:,} annotations, CPU time only", "ours": round(n / cpu, 1),
         "reference": round(n / ref_cpu, 1), "ratio": round(ref_cpu / cpu, 3), "unit": "annotations/s",
         "target": "none (information: the target is the wall-time row)",
         "note": f"CPU time of the process and its forked reader: ours {cpu:.2f} s vs COCO(path) {ref_cpu:.2f} s, "
                 "best of 2 (two processes spend more CPU than one: the cut, the fork and the groups sent back)"},
        {"name": "import coco, peak memory against the JSON file", "ours": round(peak / 2**20, 1),
         "reference": round(size / 2**20, 1), "ratio": round(peak / size, 3), "unit": "MiB",
         "target": "ratio <= 3",
         "note": f"the larger of: VmHWM of a fresh process less its size before the import (after a one-image "
                 f"import loaded numpy and Pillow; {parent / 2**20:.1f} MiB), and the peak of its and its forked "
                 f"reader's anonymous memory, shared pages counted once (PSS, sampled every 2 ms; "
                 f"{together / 2**20:.1f} MiB); the reader's own peak RSS {worker / 2**20:.1f} MiB counts the "
                 f"file's text it shares with the parent again; reference: the file's size"},
    ]
