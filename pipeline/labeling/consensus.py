"""Consensus labels from several annotators with cleanlab's CROWDLAB (`get_label_quality_multiannotator`).

Input: a classification dataset whose samples keep each annotator's label in ``annotations``
(`pipeline import labelstudio --annotations all`; `pipeline import cvat --annotations all` for the
same image in several CVAT jobs or tasks). Each sample with at least one annotator's label is a row
of cleanlab's ``labels_multiannotator`` matrix (one column per annotator, in sorted order; an
annotator who labelled a sample twice counts with their last label); samples without annotations
are copied unchanged.

CROWDLAB weighs the annotators' labels against a classifier's probabilities:

- with ``run``, the probabilities of that model: a training run folder (`pipeline train`: its best
  checkpoint predicts every sample) or, better, a `pipeline label-issues` folder (its out-of-sample
  probabilities, matched by sample id);
- without, cleanlab's majority-vote start, as its documentation describes for data without a model:
  the consensus starts as `get_majority_vote_label`, and the probabilities are each sample's share
  of the annotators' votes, smoothed by one pseudo-vote spread over the classes as often as all
  annotators use them (so no class has probability 0).

The new dataset (stage ``consensus``) has the consensus label as each annotated sample's ``label``
and ``meta.consensus``: ``label``, ``agreement`` (fraction of its annotators who chose it),
``quality`` (CROWDLAB's consensus quality score, 0..1), ``annotators`` (annotator -> label). The
lineage entry records the probabilities used and each annotator's quality, agreement with the
consensus and number of labels (also printed, and written to a CSV when asked).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.dataset import Dataset, DatasetWriter, Sample, load_dataset
from pipeline.core.errors import UsageError

CSV_HEADER = ["annotator", "quality", "agreement_with_consensus", "labels", "worst_class"]


@dataclass
class ConsensusResult:
    out: Path
    annotated: int  # samples with at least one annotator's label
    changed: int  # samples whose label the consensus changed
    annotators: list[dict[str, Any]]  # per annotator: name, quality, agreement, labels, worst class
    probabilities: str  # where the model probabilities came from
    rows: list[dict[str, Any]] = field(default_factory=list)  # per annotated sample: id, label, agreement, quality


def annotation_matrix(dataset: Dataset) -> tuple[list[Sample], list[str], np.ndarray]:
    """(annotated samples, annotators in sorted order, labels (N, M) float with NaN where an annotator
    gave no label); class indices follow `dataset.classes`."""
    index = {c: i for i, c in enumerate(dataset.classes)}
    votes: list[tuple[Sample, dict[str, int]]] = []
    names: set[str] = set()
    for s in dataset.samples:
        given: dict[str, int] = {}
        for n, a in enumerate(s.annotations or ()):
            if a.label is None:
                continue
            who = a.annotator if a.annotator is not None else f"anonymous-{n + 1}"
            given[who] = index[a.label]  # a second label of the same annotator replaces the first
        if given:
            votes.append((s, given))
            names.update(given)
    annotators = sorted(names)
    column = {a: j for j, a in enumerate(annotators)}
    matrix = np.full((len(votes), len(annotators)), np.nan)
    for i, (_, given) in enumerate(votes):
        for who, label in given.items():
            matrix[i, column[who]] = label
    return [s for s, _ in votes], annotators, matrix


def vote_probabilities(matrix: np.ndarray, k: int) -> np.ndarray:
    """Each row's share of the annotators' votes, plus one pseudo-vote spread by the overall class
    frequencies of all annotations: the probabilities of the no-model start."""
    counts = np.zeros((len(matrix), k))
    for j in range(matrix.shape[1]):
        given = ~np.isnan(matrix[:, j])
        np.add.at(counts, (np.flatnonzero(given), matrix[given, j].astype(int)), 1.0)
    prior = counts.sum(axis=0) + 1e-3  # (a class nobody chose keeps a tiny share)
    prior /= prior.sum()
    probs = counts + prior
    return probs / probs.sum(axis=1, keepdims=True)


def crowdlab(matrix: np.ndarray, probs: np.ndarray, annotators: list[str]) -> dict[str, Any]:
    """cleanlab's `get_label_quality_multiannotator` (CROWDLAB quality, best-quality consensus)."""
    import pandas as pd
    from cleanlab.multiannotator import get_label_quality_multiannotator

    frame = pd.DataFrame(matrix, columns=annotators)
    return get_label_quality_multiannotator(frame, probs, verbose=False)


def run_probabilities(run: Path, dataset: Dataset, samples: list[Sample]) -> tuple[np.ndarray, str]:
    """(probabilities (N, classes) of `samples`, a description): from a label-issues folder's
    out-of-sample probabilities or a training run's best checkpoint."""
    from pipeline.core import outputs

    if outputs.kind_of(run) == "issues":
        return _issues_probabilities(run, dataset, samples), f"out-of-sample probabilities of {run}"
    return _model_probabilities(run, dataset, samples), f"predictions of the run {run} (best.pt)"


def _issues_probabilities(folder: Path, dataset: Dataset, samples: list[Sample]) -> np.ndarray:
    import json

    from pipeline.labeling.issues import FOLDS, PROBS

    try:
        ids = json.loads((folder / FOLDS).read_text(encoding="utf-8"))["ids"]
        probs = np.load(folder / PROBS, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--run {folder}: its folds.json or probs.npy cannot be read ({exc})",
                         fix="run `pipeline label-issues` again") from None
    row = {sid: i for i, sid in enumerate(ids)}
    missing = [s.id for s in samples if s.id not in row]
    if missing or probs.shape != (len(ids), len(dataset.classes)):
        raise UsageError(f"--run {folder}: its probabilities are of another dataset "
                         f"({f'no sample {missing[0]!r}' if missing else f'shape {probs.shape}'})",
                         fix=f"run `pipeline label-issues {dataset.root}` and pass its folder")
    return np.asarray(probs[[row[s.id] for s in samples]], dtype=np.float64)


def _model_probabilities(run: Path, dataset: Dataset, samples: list[Sample]) -> np.ndarray:
    import torch

    from pipeline.evaluate import class_mapping, load_model, run_task
    from pipeline.tensor_cache import load_or_build
    from pipeline.train import Rows, evaluate_rows, normalizer

    model, info, pre = load_model(run)
    if run_task(info) != "classification":
        raise UsageError(f"--run {run}: an autoencoder run; consensus needs a classifier's probabilities",
                         fix="pass a classifier run or a label-issues folder")
    mapping = class_mapping(info["classes"], dataset.classes, str(dataset.root))
    cache = load_or_build(dataset, size=pre.size, grayscale=pre.grayscale, labels=False)
    position = {sid: i for i, sid in enumerate(cache.ids)}
    rows = np.array([position[s.id] for s in samples], dtype=np.int64)
    device = torch.device("cpu")
    logits = evaluate_rows(model, Rows(cache, rows, device, soft=False), normalizer(pre, device), 1000)
    probs = torch.softmax(logits.double(), dim=1).numpy()[:, mapping]
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)


def annotators_csv(annotators: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for a in annotators:
        w.writerow([a["annotator"], f"{a['quality']:.6f}", f"{a['agreement_with_consensus']:.6f}", a["labels"],
                    a["worst_class"]])
    return buf.getvalue()


def consensus(data_path: str | os.PathLike, out: str | os.PathLike, *, run: str | os.PathLike | None = None,
              annotators_file: str | os.PathLike | None = None, overwrite: bool = False) -> ConsensusResult:
    """Write the consensus version of the dataset at `data_path` to `out` (see the module doc)."""
    data_path, out = Path(data_path), Path(out)
    dataset = load_dataset(data_path)
    if dataset.task != "classification":
        raise UsageError(f"{data_path}: a {dataset.task} dataset; consensus needs one label per image",
                         fix="consensus works on classification datasets (Label Studio choices, CVAT tags)")
    samples, annotators, matrix = annotation_matrix(dataset)
    if not samples:
        raise UsageError(f"{data_path}: no sample keeps its annotators' labels (no `annotations`)",
                         fix="import the export with --annotations all (Label Studio, CVAT)")
    if not (np.sum(~np.isnan(matrix), axis=1) > 1).any():
        raise UsageError(f"{data_path}: every sample has a single annotator; there is nothing to agree on",
                         fix="import an export in which items were labelled by several annotators")
    if annotators_file is not None:
        _claim_csv(Path(annotators_file), overwrite, (data_path, out))
    k = len(dataset.classes)
    if run is not None:
        probs, source = run_probabilities(Path(run), dataset, samples)
    else:
        probs, source = vote_probabilities(matrix, k), "annotator votes (cleanlab's majority-vote start; no model)"
    result = crowdlab(matrix, probs, annotators)
    quality = result["label_quality"]
    stats = result["annotator_stats"]
    table = [{"annotator": str(name), "quality": float(row["annotator_quality"]),
              "agreement_with_consensus": float(row["agreement_with_consensus"]),
              "labels": int(row["num_examples_labeled"]), "worst_class": dataset.classes[int(row["worst_class"])]}
             for name, row in stats.iterrows()]
    records: list[dict[str, Any]] = []
    new_samples: dict[str, Sample] = {}
    changed = 0
    for i, s in enumerate(samples):
        label = dataset.classes[int(quality["consensus_label"].iloc[i])]
        given = {annotators[j]: dataset.classes[int(matrix[i, j])] for j in range(len(annotators))
                 if not np.isnan(matrix[i, j])}
        record = {"label": label, "agreement": round(float(quality["annotator_agreement"].iloc[i]), 6),
                  "quality": round(float(quality["consensus_quality_score"].iloc[i]), 6), "annotators": given}
        new = Sample.from_json(s.to_json())
        changed += new.label != label
        new.label, new.soft_label = label, None
        new.meta["consensus"] = record
        new_samples[s.id] = new
        records.append({"id": s.id, **record})
    params = {"run": str(run) if run is not None else None, "probabilities": source, "method": "crowdlab",
              "consensus_method": "best_quality",
              "annotators": [{k: v for k, v in a.items()} for a in table]}
    with DatasetWriter(out, task="classification", stage="consensus", classes=dataset.classes,
                       class_ids=dataset.info.class_ids, params=params,
                       inputs={str(data_path): dataset.content_hash}, parent_lineage=dataset.info.lineage,
                       reads=[data_path] + ([Path(run)] if run is not None else []), overwrite=overwrite) as writer:
        for s in dataset.samples:
            writer.add_from(dataset, s, new_samples.get(s.id))
        writer.commit()
    if annotators_file is not None:
        from pipeline.core.paths import atomic_write_text

        atomic_write_text(Path(annotators_file), annotators_csv(table))
    return ConsensusResult(out=out, annotated=len(samples), changed=changed, annotators=table, probabilities=source,
                           rows=records)


def _claim_csv(path: Path, overwrite: bool, reads: tuple[Path, ...]) -> None:
    """The annotator CSV may replace only an earlier one of ours (its header), and only with --overwrite."""
    from pipeline.core import outputs

    outputs.check_inputs(path, reads, option="--annotators")
    if os.path.islink(path) or (path.exists() and not path.is_file()):
        raise UsageError(f"--annotators {path}: not a regular file; refusing to write there",
                         fix="choose another --annotators path")
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as fh:
            ours = fh.readline().strip() == ",".join(CSV_HEADER)
        if not ours:
            raise UsageError(f"--annotators {path}: exists and is not an annotator table of `pipeline consensus`; "
                             "refusing to replace it", fix="choose another --annotators path")
        if not overwrite:
            raise UsageError(f"--annotators {path}: already exists", fix="add --overwrite to replace it")
