"""`pipeline label-issues` on the real MNIST: known label errors, planted noise, and its cost against one
`pipeline train` of the same data, measured in the same run.

Data: the benchmark MNIST of `bench_train` (``../shared/data/mnist/mnist-train-png.tar.gz``, 60,000 real
PNGs imported once; ``BENCH=full``: all 60,000, 50k train / 10k val; ``BENCH=quick``: its fixed
10k / 2k subset). Sample ids are ``<digit>/<index>``, the index being the image's position in the
official training file.

Lines:
- time of `pipeline label-issues DATA` with its defaults (4 folds x 5 epochs on the 60k) against one default `pipeline train DATA`,
  both as subprocesses on a warm tensor cache, interleaved (train, label-issues, train), the best
  train taken; wall time and CPU time of each (target: <= 6x);
- known errors (full only): how many of the 17 blatant MNIST training-set label errors listed by
  Northcutt et al. (confident learning; cleanlab's `examples/mnist`) rank in the top 100 (target: >= 12);
- planted noise: 2 % of the labels flipped to another class at random (seeded), then
  precision and recall of the flagged label issues against the flipped samples (targets >= 0.8),
  for both ranking scores' top-|flipped| too (self-confidence, the default, and normalized margin).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# MNIST training indices found mislabelled by confident learning, "blatant" ones (cleanlab examples/mnist)
KNOWN_ERRORS = (21601, 40466, 29922, 40144, 51248, 43454, 59915, 57662, 25678, 2676, 24798, 31727, 7080, 26560,
                10994, 53396, 54264)
FLIP_FRACTION = 0.02


def _pipeline(*args: str) -> tuple[float, float]:
    """Run `pipeline ARGS` in a subprocess: (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--quiet", *args], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def flipped_copy(data: Path, out: Path, seed: int = 0) -> set[str]:
    """`data` with FLIP_FRACTION of its labels changed to another class (seeded); the flipped ids."""
    from pipeline.core.dataset import Sample, derive, is_dataset, load_dataset

    dataset = load_dataset(data)
    samples = [Sample.from_json(s.to_json()) for s in dataset.samples]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(samples), size=round(FLIP_FRACTION * len(samples)), replace=False)
    k = len(dataset.classes)
    flipped = set()
    for i in sorted(int(p) for p in picks):
        s = samples[i]
        s.label = dataset.classes[(dataset.classes.index(s.label) + 1 + int(rng.integers(k - 1))) % k]
        flipped.add(s.id)
    if not is_dataset(out):
        derive(dataset, out, samples, stage="bench-flips", params={"fraction": FLIP_FRACTION, "seed": seed})
    return flipped


def precision_recall(flagged: set[str], truth: set[str]) -> tuple[float, float]:
    hits = len(flagged & truth)
    return hits / max(1, len(flagged)), hits / max(1, len(truth))


def _row(name, ours, reference, unit, target, note):
    ratio = ours / reference if ours is not None and reference else None
    return {"name": name, "ours": ours, "reference": reference, "ratio": ratio, "unit": unit, "target": target,
            "note": note}


def run(quick: bool) -> list[dict]:
    from benchmarks.bench_train import bench_root, mnist_dataset
    from pipeline.labeling.issues import DEFAULT_FOLDS, label_quality, load_issues

    data = mnist_dataset(quick)
    size = "10k/2k subset" if quick else "60k (50k train / 10k val)"
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="bench-label-issues-", dir=bench_root()))
    _pipeline("train", str(data), "--out", str(work / "warm"), "--epochs", "1")  # builds the tensor cache once

    # cost: train, label-issues, train (interleaved; the best train is the reference)
    trains = [_pipeline("train", str(data), "--out", str(work / "run"))]
    issues_wall, issues_cpu = _pipeline("label-issues", str(data), "--out", str(work / "issues"))
    trains.append(_pipeline("train", str(data), "--out", str(work / "run")))
    train_wall = min(w for w, _ in trains)
    train_cpu = min(c for _, c in trains)
    rows.append(_row(f"label-issues time vs one default train ({size}, wall)", issues_wall, train_wall, "s",
                     "<= 6x", f"{DEFAULT_FOLDS} folds, defaults; subprocesses on a warm tensor cache; best of 2 trains "
                     "around it"))
    rows.append(_row(f"label-issues time vs one default train ({size}, CPU)", issues_cpu, train_cpu, "s",
                     "<= 6x", "user + system CPU seconds of the same subprocesses"))

    report = load_issues(work / "issues")
    if not quick:
        top = {e["id"].rsplit("/", 1)[-1] for e in report["issues"][:100]}
        found = sum(str(i) in top for i in KNOWN_ERRORS)
        rows.append(_row("known MNIST training label errors in the top 100", float(found), float(len(KNOWN_ERRORS)),
                         "images", ">= 12 of 17", "the 17 blatant errors of Northcutt et al. (cleanlab examples/mnist)"))

    # planted noise
    noisy = work / "noisy"
    flipped = flipped_copy(data, noisy)
    _pipeline("label-issues", str(noisy), "--out", str(work / "noisy-issues"))
    flagged = {e["id"] for e in load_issues(work / "noisy-issues")["issues"] if e["kind"] == "label"}
    precision, recall = precision_recall(flagged, flipped)
    note = f"{len(flipped)} labels flipped (seed 0), {len(flagged)} flagged as label issues"
    rows.append(_row(f"planted 2% flips: precision ({size})", precision, None, "fraction", ">= 0.8", note))
    rows.append(_row(f"planted 2% flips: recall ({size})", recall, None, "fraction", ">= 0.8", note))

    # the two ranking scores, on the same probabilities: precision of the |flipped| lowest-scored samples
    probs = np.load(work / "noisy-issues" / "probs.npy")
    ids = json.loads((work / "noisy-issues" / "folds.json").read_text())["ids"]
    from pipeline.core.dataset import load_dataset

    noisy_ds = load_dataset(noisy)
    by_id = {s.id: noisy_ds.classes.index(s.label) for s in noisy_ds.samples}
    labels = np.array([by_id[i] for i in ids])
    for method in ("self_confidence", "normalized_margin"):
        order = np.argsort(label_quality(labels, probs, method), kind="stable")[:len(flipped)]
        hit = len({ids[i] for i in order} & flipped) / max(1, len(flipped))
        rows.append(_row(f"planted flips: precision of the {len(flipped)} lowest {method} scores", hit, None,
                         "fraction", "(information: chooses the ranking)", "same out-of-sample probabilities"))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return rows
