"""Find label errors, near-duplicates and outliers with out-of-sample predictions (confident learning).

`find_issues` trains NumberModel K times, each time on all samples but one fold (the shared train
stage: `pipeline.train.fit_and_predict`, on the tensor cache), so every sample gets class
probabilities from a model that never saw it, and the model's penultimate-layer features. Then:

- **label issues**: cleanlab's `find_label_issues` with ``filter_by="low_self_confidence"`` on the
  given labels and the out-of-sample probabilities: confident learning estimates *how many* labels
  are wrong (the off-diagonal of the calibrated confident joint, `cleanlab.count.num_label_issues`),
  and that many samples with the lowest label-quality score are flagged. The set is chosen by the
  same score that ranks it, so the report's first entries are the lowest scores of the whole
  dataset. (``prune_by_noise_rate``, cleanlab's default, picks each (given, predicted) cell's
  samples by margin instead: on MNIST it left out low-scored blatant errors whose probability is
  split between two other classes and flagged higher-scored ones; `docs/label-issues.md`.) With
  ``threshold`` instead every sample whose label-quality score is below it.
- **label-quality score** (`score` of every entry): cleanlab's `get_label_quality_scores` with
  ``method="self_confidence"``: the out-of-sample probability of the *given* label, in [0, 1],
  lower = more likely wrong. (Measured against ``normalized_margin`` on planted flips of MNIST:
  `docs/label-issues.md`.)
- **near-duplicates** and **outliers** from the features, by the rules of cleanlab's Datalab
  (computed here with its primitives over one brute-force k-nearest-neighbour pass, k = 10, cosine
  distance): a near-duplicate's nearest neighbour is closer than 0.13 x the median nearest-neighbour
  distance; an outlier's mean distance to its 10 neighbours is above Q3 + 1.7 x IQR of those means.

Detection datasets go through their object crops (`pipeline.crop`, written into ``DIR/crops``):
each box is a sample of its class, and a box whose class looks wrong is an entry of kind
``box-label`` naming its image (``id``) and its position among the image's objects (``object``).

The output folder::

    issues.json   {"dataset", "dataset_sha256", "params", "issues": [{"id", "given", "suggested",
                  "score", "rank", "kind"[, "object"]}, ...]} sorted by rank (1 = most likely wrong);
                  `object` (the box's index in its image) on every entry of a detection dataset
    issues.csv    the same entries, with the near-duplicate and outlier scores and the nearest sample
    issues.png    contact sheet of the top issues: given -> suggested, score
    probs.npy     float32 (N, K) out-of-sample class probabilities, rows in sample-id order
    features.npy  float32 (N, F) penultimate-layer features, same rows
    folds.json    the dataset hash, the training parameters, the sample ids and each one's fold

A rerun over the same dataset (samples hash) with the same training parameters reads probs.npy and
features.npy instead of training: only ``threshold`` and ``top`` changed, and that costs seconds.
The folder is written beside ``DIR`` and renamed into place when complete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import outputs, ui
from pipeline.core.dataset import Dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.core.rng import rng_for

FORMAT = "pipeline-label-issues"
ISSUES_JSON, ISSUES_CSV, ISSUES_PNG = "issues.json", "issues.csv", "issues.png"
MAX_ISSUES_BYTES = 1 << 30  # a report of millions of entries is far below this; anything larger is not ours
PROBS, FEATURES, FOLDS = "probs.npy", "features.npy", "folds.json"
CROPS = "crops"
KINDS = ("label", "near-duplicate", "outlier", "box-label")
RANK_BY = "self_confidence"  # cleanlab's label-quality method; see the module doc
FILTER_BY = "low_self_confidence"  # cleanlab's find_label_issues filter: the estimated number, lowest RANK_BY first
NEIGHBOURS = 10  # k of the k-nearest-neighbour graph (Datalab's default)
NEAR_DUPLICATE = 0.13  # Datalab's near-duplicate radius, as a fraction of the median nearest-neighbour distance
OUTLIER_IQR = 1 / 0.37037 - 1  # Datalab's outlier fence: Q3 + 1.7 x IQR of the mean neighbour distances
SHEET_TILES = 64  # issues shown in issues.png
DEFAULT_FOLDS = 4  # K: fewer, longer-trained folds beat 5 shorter ones at the same cost (docs/label-issues.md)
FOLD_BUDGET = 5  # all folds train on 5x the samples of one `pipeline train` (the whole run: under 6x its CPU)
# config keys that change what a fold's model predicts (the others: device, threads, logging)
TRAINING_KEYS = ("variant", "groups", "widths", "epochs", "min_samples", "min_epochs", "batch_size", "lr",
                 "optimizer", "weight_decay", "schedule", "warmup", "seed", "grayscale", "image_size",
                 "normalize", "augment", "label_smoothing")


@dataclass
class IssuesResult:
    """What `find_issues` wrote and found."""

    out: Path
    dataset: Path
    task: str
    samples: int  # rows analysed (objects, for a detection dataset)
    issues: list[dict]
    counts: dict[str, int]
    reused: bool  # probabilities read from an earlier run: no training
    folds: int
    epochs: int
    seconds: float
    accuracy: float  # out-of-sample accuracy against the given labels
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Folds and out-of-sample probabilities
# --------------------------------------------------------------------------------------------


def assign_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of each row, stratified: each class's rows in a seeded random order dealt out
    in turn, so every fold holds about 1/k of every class."""
    folds = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        order = rng_for(seed, "label-issues", "folds", int(c)).permutation(len(rows))
        folds[rows[order]] = (np.arange(len(rows)) + offset) % k
        offset += len(rows)  # the next class starts where this one ended: folds stay balanced in size
    return folds


def fold_epochs(config, dataset_size: int, folds: int) -> int:
    """Epochs per fold by default: the K folds together show the model `FOLD_BUDGET` times the samples
    one `pipeline train` of the whole dataset does (E epochs of N): each fold trains on (K-1)/K of N,
    so it runs round(FOLD_BUDGET x E / (K - 1)) epochs, at least 1 (5 for the 60k MNIST, 4 folds).
    More epochs per fold, not more folds, is where the budget goes: the one-cycle schedule anneals to
    almost zero over each fold's own steps, and the longer that run the more accurate and the more
    decided its late probabilities are, which is what ranks the blatant errors first."""
    return max(1, round(FOLD_BUDGET * config.resolved_epochs(dataset_size) / (folds - 1)))


def fold_config(config, dataset_size: int, folds: int, epochs: int | None, seed: int | None):
    """The training config of every fold: `config` (the default recipe unless given) with `epochs`
    (default `fold_epochs`) and `seed` applied, without validation or TensorBoard images, and without
    label smoothing: confident learning reads the folds' probabilities, and smoothing pulls every one
    of them toward uniform (the classes' confidence thresholds with it)."""
    from dataclasses import replace

    changes: dict[str, Any] = {"val_split": None, "log_images": 0, "histogram_every": 0, "log_graph": False,
                               "label_smoothing": 0.0}
    if seed is not None:
        changes["seed"] = seed
    changes["epochs"] = epochs if epochs is not None else fold_epochs(config, dataset_size, folds)
    return replace(config, **changes)


def training_params(config, folds: int) -> dict[str, Any]:
    return {"folds": folds, **{k: getattr(config, k) for k in TRAINING_KEYS}}


def out_of_sample(dataset: Dataset, cache, folds: np.ndarray, k: int, config) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, classes) and features (N, F) of every cache row from the fold that left it out."""
    from pipeline.train import fit_and_predict, setup_torch, subnormals_flushed

    device = setup_torch(config)
    probs: np.ndarray | None = None
    feats: np.ndarray | None = None
    with subnormals_flushed():
        for f in range(k):
            held = np.flatnonzero(folds == f)
            fit = np.flatnonzero(folds != f)
            ui.info(f"fold {f + 1}/{k}: training on {len(fit)} samples, predicting {len(held)}")
            p, x = fit_and_predict(dataset, cache, fit, held, config, device, desc=f"fold {f + 1}/{k} ")
            if probs is None:
                probs = np.zeros((len(folds), p.shape[1]), dtype=np.float32)
                feats = np.zeros((len(folds), x.shape[1]), dtype=np.float32)
            probs[held], feats[held] = p, x  # type: ignore[index]
    assert probs is not None and feats is not None
    return probs, feats


# --------------------------------------------------------------------------------------------
# Confident learning and the feature-space checks
# --------------------------------------------------------------------------------------------


def label_quality(labels: np.ndarray, probs: np.ndarray, method: str = RANK_BY) -> np.ndarray:
    """cleanlab's label-quality score of each row, in [0, 1], lower = more likely mislabelled."""
    from cleanlab.rank import get_label_quality_scores

    return np.asarray(get_label_quality_scores(labels, _renormalized(probs), method=method), dtype=np.float64)


def label_issues(labels: np.ndarray, probs: np.ndarray, quality: np.ndarray, threshold: float | None) -> np.ndarray:
    """Rows whose given label looks wrong: cleanlab's `find_label_issues` (`FILTER_BY`: as many rows as
    confident learning estimates to be mislabelled, those of lowest self-confidence), or every row
    with a quality score below `threshold` when one is given."""
    if threshold is not None:
        return quality < threshold
    from cleanlab.filter import find_label_issues

    present = np.unique(labels)
    if len(present) < 2:
        return np.zeros(len(labels), dtype=bool)
    # cleanlab wants labels 0..m-1 with every class present; classes nobody carries are left out
    index = np.full(probs.shape[1], -1)
    index[present] = np.arange(len(present))
    return np.asarray(find_label_issues(index[labels], _renormalized(probs[:, present]),
                                        filter_by=FILTER_BY), dtype=bool)


def _renormalized(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)


@dataclass
class Neighbours:
    """Datalab's near-duplicate and outlier checks on the feature space (see the module doc)."""

    nearest: np.ndarray  # int (N,): each row's nearest other row (-1 when alone)
    duplicate_score: np.ndarray  # exp(-d / median d) of the nearest-neighbour distance: lower = closer
    near_duplicate: np.ndarray  # bool (N,)
    outlier_score: np.ndarray  # cleanlab's exp(-mean kNN distance / its median): lower = further out
    outlier: np.ndarray  # bool (N,)


def neighbours(features: np.ndarray) -> Neighbours:
    """One brute-force k-nearest-neighbour pass (cosine distance) and Datalab's two rules over it."""
    from cleanlab.internal.outlier import transform_distances_to_scores
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    if n < 2:
        zero = np.zeros(n)
        return Neighbours(np.full(n, -1), np.ones(n), zero.astype(bool), np.ones(n), zero.astype(bool))
    k = min(NEIGHBOURS, n - 1)
    x = np.asarray(features, dtype=np.float32)
    # cosine distance as the squared euclidean distance of unit vectors, halved: the same neighbours as
    # sklearn's "cosine" metric, through its matrix-product path (60,000 x 84: 21 s of CPU instead of 100)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    distances, indices = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean").fit(x).kneighbors()
    distances = np.maximum(distances.astype(np.float64) ** 2 / 2.0, 0.0)
    nn = distances[:, 0]
    median_nn = max(float(np.median(nn)), 1e-12)
    near = nn < NEAR_DUPLICATE * median_nn
    near[indices[near, 0]] = True  # a near-duplicate pair: both members
    mean = distances.mean(axis=1)
    median_mean = max(float(np.median(mean)), 1e-12)
    q1, q3 = np.percentile(mean, [25, 75])
    return Neighbours(nearest=indices[:, 0], duplicate_score=np.exp(-nn / median_nn), near_duplicate=near,
                      outlier_score=transform_distances_to_scores(mean, 1, median_mean),
                      outlier=mean > q3 + OUTLIER_IQR * (q3 - q1))


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------


@dataclass
class Rows:
    """The analysed rows: their ids in the report, their given labels, and for crops the object index."""

    ids: list[str]  # sample ids of the analysed dataset (crop ids for a detection dataset)
    report_ids: list[str]  # the ids the report names (the parent image for a crop)
    objects: list[int | None]  # the object's index in its image (crops), else None
    classes: list[str]
    labels: np.ndarray


def build_entries(rows: Rows, probs: np.ndarray, quality: np.ndarray, flagged: np.ndarray, near: Neighbours,
                  *, detection: bool, top: int | None) -> list[dict]:
    """One entry per flagged row, ranked: label issues first (lowest quality score first), then
    near-duplicates (closest first), then outliers (furthest first)."""
    suggested = probs.argmax(axis=1)
    label_rows = sorted(np.flatnonzero(flagged), key=lambda i: (quality[i], rows.ids[i]))
    seen = set(label_rows)
    dup_rows = sorted((i for i in np.flatnonzero(near.near_duplicate) if i not in seen),
                      key=lambda i: (near.duplicate_score[i], rows.ids[i]))
    seen.update(dup_rows)
    out_rows = sorted((i for i in np.flatnonzero(near.outlier) if i not in seen),
                      key=lambda i: (near.outlier_score[i], rows.ids[i]))
    ordered = [(i, "box-label" if detection else "label") for i in label_rows]
    ordered += [(i, "near-duplicate") for i in dup_rows] + [(i, "outlier") for i in out_rows]
    if top is not None:
        ordered = ordered[:top]
    entries = []
    for rank, (i, kind) in enumerate(ordered, start=1):
        entry: dict[str, Any] = {"id": rows.report_ids[i], "given": rows.classes[int(rows.labels[i])],
                                 "suggested": rows.classes[int(suggested[i])], "score": round(float(quality[i]), 6),
                                 "rank": rank, "kind": kind}
        if rows.objects[i] is not None:
            entry["object"] = rows.objects[i]
        entries.append(entry)
    return entries


def csv_text(entries: list[dict], rows: Rows, near: Neighbours, probs: np.ndarray) -> str:
    """issues.csv: the entries with the near-duplicate and outlier scores, the nearest sample and the
    suggested class's probability."""
    where = {(rid, obj): i for i, (rid, obj) in enumerate(zip(rows.report_ids, rows.objects, strict=True))}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "id", "object", "kind", "given", "suggested", "score", "suggested_probability",
                "near_duplicate_score", "nearest", "outlier_score"])
    for e in entries:
        i = where[(e["id"], e.get("object"))]
        nearest = rows.ids[int(near.nearest[i])] if near.nearest[i] >= 0 else ""
        w.writerow([e["rank"], e["id"], "" if e.get("object") is None else e["object"], e["kind"], e["given"],
                    e["suggested"], f"{e['score']:.6f}", f"{float(probs[i].max()):.6f}",
                    f"{float(near.duplicate_score[i]):.6f}", nearest, f"{float(near.outlier_score[i]):.6f}"])
    return buf.getvalue()


def contact_sheet(dataset: Dataset, rows: Rows, entries: list[dict], title: str):
    """issues.png: the top issues, each captioned `rank. given -> suggested (score)`."""
    from PIL import Image

    from pipeline.viz import contact_sheet as sheet

    by_id = {s.id: s for s in dataset.samples}
    row_of = {(rid, obj): i for i, (rid, obj) in enumerate(zip(rows.report_ids, rows.objects, strict=True))}
    tiles, captions = [], []
    for e in entries[:SHEET_TILES]:
        sample = by_id[rows.ids[row_of[(e["id"], e.get("object"))]]]
        try:
            tiles.append(dataset.open_image(sample))
        except (DataError, OSError):
            tiles.append(Image.new("RGB", (28, 28), (90, 20, 20)))
        mark = {"label": "", "box-label": "", "near-duplicate": " dup", "outlier": " odd"}[e["kind"]]
        captions.append(f"{e['rank']}. {e['given']} -> {e['suggested']} ({e['score']:.2f}){mark}")
    return sheet(tiles, captions, tile=112, cols=8, title=title)


# --------------------------------------------------------------------------------------------
# Reading an issues.json back
# --------------------------------------------------------------------------------------------


def load_issues(path: str | os.PathLike) -> dict[str, Any]:
    """A validated issues.json (a folder holding one, or the file): a DataError naming the field
    for anything that does not keep the format in the module doc."""
    from pipeline.core.limits import load_json, read_capped

    path = Path(path)
    if path.is_dir():
        path = path / ISSUES_JSON
    if not path.is_file():
        raise UsageError(f"{path}: no such file", fix="run `pipeline label-issues DATASET --out DIR` first")
    data = load_json(read_capped(path, str(path), MAX_ISSUES_BYTES, what="issues file"), str(path),
                     fix="run `pipeline label-issues` again")
    if not isinstance(data, dict):
        raise DataError(path, "not an issues report", expected="a JSON object", got=type(data).__name__,
                        fix="point at the issues.json `pipeline label-issues` wrote")
    for key, kind in (("dataset", str), ("dataset_sha256", str), ("params", dict), ("issues", list)):
        if not isinstance(data.get(key), kind):
            raise DataError(path, "", field=key, expected=kind.__name__, got=_shown(data.get(key)),
                            fix="point at the issues.json `pipeline label-issues` wrote")
    for n, e in enumerate(data["issues"]):
        where = f"issues[{n}]"
        if not isinstance(e, dict):
            raise DataError(path, "", field=where, expected="an object", got=_shown(e))
        for key, kind in (("id", str), ("given", str), ("suggested", str), ("kind", str)):
            if not isinstance(e.get(key), kind):
                raise DataError(path, "", field=f"{where}.{key}", expected="a string", got=_shown(e.get(key)))
        score, rank = e.get("score"), e.get("rank")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise DataError(path, "", field=f"{where}.score", expected="a number in [0, 1]", got=_shown(score))
        if isinstance(rank, bool) or not isinstance(rank, int) or rank != n + 1:
            raise DataError(path, "", field=f"{where}.rank", expected=f"{n + 1} (entries sorted by rank)",
                            got=_shown(rank))
        if e["kind"] not in KINDS:
            raise DataError(path, "", field=f"{where}.kind", expected=" | ".join(KINDS), got=_shown(e["kind"]))
        obj = e.get("object")
        if (e["kind"] == "box-label" and obj is None) or (
                obj is not None and (isinstance(obj, bool) or not isinstance(obj, int) or obj < 0)):
            raise DataError(path, "", field=f"{where}.object",
                            expected="an object index >= 0 (on every box-label entry)", got=_shown(obj))
    return data


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def find_issues(data_path: str | os.PathLike, out: str | os.PathLike, *, folds: int = DEFAULT_FOLDS, config=None,
                epochs: int | None = None, seed: int | None = None, threshold: float | None = None,
                top: int | None = None, overwrite: bool = False) -> IssuesResult:
    """Write the label-issues report of the dataset at `data_path` into `out` (see the module doc)."""
    from pipeline.config import load_config
    from pipeline.train import open_image_dataset

    started = time.perf_counter()
    data_path, out = Path(data_path), Path(out)
    _check_options(folds, epochs, threshold, top)
    outputs.sweep_stale(out)
    replacing = outputs.claim_dir(out, "issues", reads=(data_path,), overwrite=True)
    dataset = open_image_dataset(data_path)
    samples_hash = dataset.info.samples_sha256 or hashlib.sha256((dataset.root / "samples.jsonl").read_bytes()).hexdigest()
    config = fold_config(config or load_config(), len(dataset.samples), folds, epochs, seed)
    params = training_params(config, folds)
    earlier = _earlier(out, samples_hash, params) if replacing else None
    if replacing and earlier is None and not overwrite:
        raise UsageError(f"--out {out}: holds a label-issues report of another dataset or other training "
                         "parameters", fix="add --overwrite to replace it, or choose another --out")

    tmp = outputs.temp_name(out, "tmp")
    tmp.mkdir(parents=True)
    try:
        detection = dataset.task != "classification"
        analysed = _crops(dataset, tmp / CROPS, out / CROPS if earlier else None) if detection else dataset
        rows, cache = _rows(analysed, dataset, config, detection)
        if earlier is not None and earlier[2] == rows.ids:
            probs, feats = earlier[0], earlier[1]
            fold_of = np.asarray(earlier[3], dtype=np.int64)
            reused = True
        else:
            _check_folds(rows, folds)
            fold_of = assign_folds(rows.labels, folds, config.seed)
            probs, feats = out_of_sample(analysed, cache, fold_of, folds, config)
            reused = False
        np.save(tmp / PROBS, probs)
        np.save(tmp / FEATURES, feats)
        from pipeline.core.paths import atomic_write_text

        atomic_write_text(tmp / FOLDS, json.dumps({
            "format": FORMAT, "dataset_sha256": samples_hash, "params": params, "ids": rows.ids,
            "folds": [int(f) for f in fold_of]}) + "\n")

        quality = label_quality(rows.labels, probs)
        flagged = label_issues(rows.labels, probs, quality, threshold)
        near = neighbours(feats)
        entries = build_entries(rows, probs, quality, flagged, near, detection=detection, top=top)
        report = {"dataset": str(data_path), "dataset_sha256": samples_hash,
                  "params": {**params, "rank_by": RANK_BY,
                             "filter_by": None if threshold is not None else FILTER_BY,
                             "threshold": threshold, "top": top,
                             "near_duplicate_radius": NEAR_DUPLICATE, "outlier_iqr": round(OUTLIER_IQR, 4),
                             "neighbours": NEIGHBOURS},
                  "issues": entries}
        atomic_write_text(tmp / ISSUES_CSV, csv_text(entries, rows, near, probs))
        title = (f"{data_path.name}: {len(entries)} issues of {len(rows.ids)} "
                 f"{'objects' if detection else 'samples'} (given -> suggested, label quality)")
        png = io.BytesIO()
        contact_sheet(analysed, rows, entries, title).save(png, format="PNG")
        from pipeline.core.paths import atomic_write_bytes

        atomic_write_bytes(tmp / ISSUES_PNG, png.getvalue())
        atomic_write_text(tmp / ISSUES_JSON, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        from pipeline.core.dataset.writer import replace_dir

        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = {kind: sum(1 for e in entries if e["kind"] == kind) for kind in KINDS}
    accuracy = float((probs.argmax(axis=1) == rows.labels).mean()) if len(rows.labels) else float("nan")
    return IssuesResult(out=out, dataset=data_path, task=dataset.task, samples=len(rows.ids), issues=entries,
                        counts=counts, reused=reused, folds=folds, epochs=int(config.epochs),
                        seconds=time.perf_counter() - started, accuracy=accuracy)


def _check_options(folds: int, epochs: int | None, threshold: float | None, top: int | None) -> None:
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise UsageError(f"--folds {folds}: expected an integer >= 2", fix="e.g. --folds 4")
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs {epochs}: expected an integer >= 1")
    if threshold is not None and not (isinstance(threshold, float | int) and 0.0 <= threshold <= 1.0
                                      and math.isfinite(threshold)):
        raise UsageError(f"--threshold {threshold}: expected a label-quality score in [0, 1]",
                         fix="e.g. --threshold 0.1 flags every sample whose given label has under 10% probability")
    if top is not None and top < 1:
        raise UsageError(f"--top {top}: expected an integer >= 1")


def _check_folds(rows: Rows, folds: int) -> None:
    if len(rows.ids) < folds:
        raise UsageError(f"{len(rows.ids)} samples cannot be split into {folds} folds",
                         fix=f"use --folds {max(2, len(rows.ids))} or fewer, or label more samples")
    if len(np.unique(rows.labels)) < 2:
        raise UsageError("every sample has the same class; finding label errors needs at least two",
                         fix="label samples of other classes too")


def _earlier(out: Path, samples_hash: str, params: dict) -> tuple[np.ndarray, np.ndarray, list[str], list[int]] | None:
    """The saved probabilities, features, ids and folds of the report at `out` when it was computed
    over the same samples with the same training parameters; None otherwise (or when damaged)."""
    try:
        record = json.loads((out / FOLDS).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return None
        if record.get("dataset_sha256") != samples_hash or record.get("params") != json.loads(json.dumps(params)):
            return None
        ids, fold_of = record["ids"], record["folds"]
        probs = np.load(out / PROBS, allow_pickle=False)
        feats = np.load(out / FEATURES, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (isinstance(ids, list) and isinstance(fold_of, list) and len(ids) == len(fold_of) == len(probs) == len(feats)
            and probs.ndim == 2 and feats.ndim == 2 and np.isfinite(probs).all()):
        return None
    return probs, feats, ids, fold_of


def _crops(dataset: Dataset, dest: Path, earlier: Path | None) -> Dataset:
    """The detection dataset's object crops as a classification dataset at `dest` (the earlier
    report's crops are kept when they are still there: same samples, same crops)."""
    from pipeline.core.dataset import is_dataset, load_dataset

    if earlier is not None and is_dataset(earlier):
        shutil.copytree(earlier, dest, copy_function=os.link)
        crops = load_dataset(dest)
        return crops
    from pipeline.crop import crop_dataset

    ui.info(f"cropping the objects of {dataset.root} into {dest.name}/")
    crops, report = crop_dataset(dataset, dest,
                                 progress=lambda xs: ui.progress(xs, total=len(xs), desc="crop", unit="img"))
    for reason, n in sorted(report.skipped.items()):
        ui.info(f"crops: {n} {reason} left out")
    return crops


def _rows(analysed: Dataset, dataset: Dataset, config, detection: bool) -> tuple[Rows, Any]:
    from pipeline.tensor_cache import load_or_build
    from pipeline.train import check_trainable

    check_trainable(analysed)
    cache = load_or_build(analysed, size=config.image_size, grayscale=config.grayscale)
    ids = list(cache.ids)
    if detection:
        by_id = {s.id: s for s in analysed.samples}
        report_ids = [str(by_id[i].source["parent"]) for i in ids]
        objects: list[int | None] = [int(by_id[i].source["object"]) for i in ids]
    else:
        report_ids, objects = ids, [None] * len(ids)
    return Rows(ids=ids, report_ids=report_ids, objects=objects, classes=list(cache.classes),
                labels=np.asarray(cache.labels, dtype=np.int64)), cache
