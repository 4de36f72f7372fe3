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
from pipeline.core.limits import load_json, read_capped

ISSUES_FILE = "issues.json"
MAX_ISSUES_BYTES = 1 << 30
PREDICTIONS_VERSION = 1


def read_issues(folder: Path, index) -> tuple[list[tuple], str]:
    """The rows (id, rank, score, given, suggested, kind) of `folder/issues.json` and a one-line note."""
    path = folder / ISSUES_FILE
    if not path.is_file():
        raise UsageError(f"--issues {folder}: no {ISSUES_FILE} there",
                         fix="give the folder `pipeline label-issues --out` wrote")
    doc = load_json(read_capped(path, str(path), MAX_ISSUES_BYTES, what="issues file"), str(path),
                    fix="re-run `pipeline label-issues`")
    rows = parse_issues(doc, str(path))
    ids = [r[0] for r in rows]
    unknown = sorted(set(ids) - index.existing(ids)) if ids else []
    if unknown:
        raise DataError(path, f"names {len(unknown)} id(s) the dataset does not have", field="issues[].id",
                        expected=f"ids of {index.root}", got=unknown[:5],
                        fix="give the issues computed for this dataset")
    note = f"{len(rows)} label issues from {path}"
    recorded = doc.get("dataset_sha256")  # samples.jsonl's sha256, or the dataset's content hash
    if isinstance(recorded, str) and recorded != index.meta.get("samples_sha256"):
        from pipeline.core.dataset import content_hash

        if recorded != content_hash(index.root):
            note += " (computed on another version of the dataset)"
    return rows, note


def parse_issues(doc: object, where: str) -> list[tuple]:
    """Validate an issues document; errors name the entry and the field."""
    if not isinstance(doc, dict) or not isinstance(doc.get("issues"), list):
        raise DataError(where, "", field="issues", expected="an object with an \"issues\" list",
                        got=type(doc).__name__ if not isinstance(doc, dict) else doc.get("issues"))
    rows = []
    seen: set[str] = set()
    for k, entry in enumerate(doc["issues"]):
        at = f"issues[{k}]"
        if not isinstance(entry, dict):
            raise DataError(where, "", field=at, expected="an object", got=entry)
        sid, rank, score = entry.get("id"), entry.get("rank"), entry.get("score")
        if not isinstance(sid, str) or not sid:
            raise DataError(where, "", field=f"{at}.id", expected="a sample id", got=sid)
        if sid in seen:
            raise DataError(where, "", field=f"{at}.id", expected="an id listed once", got=sid)
        seen.add(sid)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise DataError(where, "", field=f"{at}.rank", expected="an integer >= 1", got=rank)
        if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)
                                  or score != score):
            raise DataError(where, "", field=f"{at}.score", expected="a number or null", got=score)
        texts = []
        for key in ("given", "suggested", "kind"):
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                raise DataError(where, "", field=f"{at}.{key}", expected="a string or null", got=value)
            texts.append(value)
        rows.append((sid, rank, None if score is None else float(score), *texts))
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
