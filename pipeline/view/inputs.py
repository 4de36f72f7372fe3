"""What `pipeline view` shows beside the dataset: label issues (`--issues`) and a run's predictions
(`--run`).

`--issues DIR` reads `DIR/issues.json`, written by `pipeline label-issues`::

    {"dataset": ..., "dataset_sha256": ..., "params": {...},
     "issues": [{"id", "given", "suggested", "score", "rank", "kind"}, ...]}

`--run RUN` predicts every sample once with the run's checkpoint (`evaluate.predict_dataset`) and
caches the result under the cache root, keyed by the checkpoint's sha256 and the dataset's content
hash, so the next start with the same run and dataset reads it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from pipeline.core.errors import DataError, UsageError

PREDICTIONS_VERSION = 1


def read_issues(folder: Path, index) -> tuple[list[tuple], str]:
    """The rows (id, rank, score, given, suggested, kind) of `folder/issues.json`, read by
    `label-issues`' own validating reader (`pipeline.labeling.issues.load_issues`), and a one-line note."""
    from pipeline.labeling.issues import ISSUES_JSON, load_issues

    path = folder / ISSUES_JSON
    if not path.is_file():
        raise UsageError(f"--issues {folder}: no {ISSUES_JSON} there",
                         fix="give the folder `pipeline label-issues --out` wrote")
    doc = load_issues(path)
    rows = issue_rows(doc["issues"])
    ids = [r[0] for r in rows]
    unknown = sorted(set(ids) - index.existing(ids)) if ids else []
    if unknown:
        raise DataError(path, f"names {len(unknown)} id(s) the dataset does not have", field="issues[].id",
                        expected=f"ids of {index.root}", got=unknown[:5],
                        fix="give the issues computed for this dataset")
    entries = len(doc["issues"])
    note = f"{entries} label issues" + (f" on {len(rows)} samples" if entries != len(rows) else "") + f" from {path}"
    recorded = doc["dataset_sha256"]  # samples.jsonl's sha256, or the dataset's content hash
    if recorded != index.meta.get("samples_sha256"):
        from pipeline.core.dataset import content_hash

        if recorded != content_hash(index.root):
            note += " (computed on another version of the dataset)"
    return rows, note


def issue_rows(entries: list[dict]) -> list[tuple]:
    """One row per sample, in rank order: a detection report names a sample once for each box whose
    class looks wrong (kind ``box-label``), and the page shows the sample at its best-ranked entry."""
    rows, seen = [], set()
    for e in entries:
        if e["id"] not in seen:
            seen.add(e["id"])
            rows.append((e["id"], e["rank"], float(e["score"]), e["given"], e["suggested"], e["kind"]))
    return rows


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def run_predictions(run: Path, dataset: Path, cache: Path, checkpoint: str = "best"
                    ) -> tuple[list[str], list[str], list[float], str]:
    """Every sample's predicted class and score from `run`: cached, or computed now and cached."""
    from pipeline.core.dataset import content_hash
    from pipeline.evaluate import CHECKPOINTS, load_run_info

    load_run_info(run)  # (a folder without run.json: one line saying so)
    weights = run / CHECKPOINTS[checkpoint]
    if not weights.is_file():
        raise UsageError(f"--run {run}: no checkpoint {weights.name}", fix="train the run until an epoch completes")
    key = hashlib.sha256(json.dumps({"checkpoint": file_sha256(weights), "dataset": content_hash(dataset),
                                     "v": PREDICTIONS_VERSION}, sort_keys=True).encode()).hexdigest()[:24]
    path = cache / "predictions" / f"{key}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        ids, predicted, scores = doc["ids"], doc["predicted"], doc["scores"]
        return ids, predicted, scores, f"predictions of {run} (cached)"
    except (OSError, ValueError, KeyError):
        pass
    from pipeline.evaluate import predict_dataset

    ids, predicted, score = predict_dataset(run, dataset, checkpoint=checkpoint)
    scores = [round(float(s), 5) for s in score]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps({"run": str(run), "ids": ids, "predicted": predicted, "scores": scores}),
                   encoding="utf-8")
    os.replace(tmp, path)
    return ids, predicted, scores, f"predictions of {run}"
