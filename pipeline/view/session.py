"""One browsing session of one dataset: its index, the pending edits, the optional label issues
and model predictions, and Save as.

Edits are appended to the edits file (`pipeline.labeling.edits`) the moment the page sends them,
so closing the browser or stopping the server loses nothing; starting `pipeline view` again with
the same edits file shows them again. Save as writes a new dataset version beside the source with
`apply_edits` (`pipeline relabel` semantics: changes recorded per sample and in the lineage); the
source dataset is never modified.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.dataset import Dataset, Sample
from pipeline.core.dataset.validation import parse_sample_line
from pipeline.core.dataset.writer import now_iso
from pipeline.core.errors import DataError, UsageError
from pipeline.view.index import Filters, Index, Row, open_index

MAX_EDITS = 10_000  # per request
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a folder name, never a path


@dataclass
class Options:
    edits: Path  # the edits file (appended to)
    issues: Path | None = None  # a `pipeline label-issues` output folder
    run: Path | None = None  # a trained run: predictions for the disagreement filter
    cache: Path | None = None  # the cache root (default: the tensor cache's, `cache_root()`)


def default_edits_path(dataset: Path) -> Path:
    """`DATASET.edits.jsonl` beside the dataset folder (never inside it: the dataset stays as written)."""
    dataset = Path(dataset)
    return dataset.resolve().parent / f"{dataset.resolve().name}.edits.jsonl"


class Session:
    def __init__(self, root: str | Path, options: Options) -> None:
        from pipeline.labeling.edits import net_edits, read_edits
        from pipeline.tensor_cache import cache_root

        self.root = Path(root)
        self.options = options
        cache = Path(options.cache) if options.cache is not None else cache_root()
        self.cache = cache / "view"  # thumbnails and predictions, beside the indexes
        self.index: Index = open_index(self.root, cache=cache)
        self.info = self.index.info
        self.dataset = Dataset(root=self.root, info=self.info, samples=[])
        self.edits_path = Path(options.edits)
        self.pending = net_edits(read_edits(self.edits_path)) if self.edits_path.is_file() else {}
        unknown = sorted(set(self.pending) - self.index.existing(sorted(self.pending)))
        if unknown:
            raise DataError(self.edits_path, f"names {len(unknown)} id(s) the dataset does not have",
                            expected="ids of " + str(self.root), got=unknown[:5],
                            fix="point --edits at this dataset's edits file")
        self.index.mark_edited(sorted(self.pending))
        self.saved: list[str] = []
        self._lock = threading.Lock()  # requests run in threads: one edit or save at a time
        self.issues_note = self._load_issues(options.issues) if options.issues else None
        self.run_note = self._load_predictions(options.run) if options.run else None

    # --- inputs -----------------------------------------------------------------------
    def _load_issues(self, folder: Path) -> str:
        from pipeline.view.inputs import read_issues

        rows, note = read_issues(Path(folder), self.index)
        self.index.add_issues(rows)
        return note

    def _load_predictions(self, run: Path) -> str:
        from pipeline.view.inputs import run_predictions

        ids, predicted, scores, note = run_predictions(Path(run), self.root, self.cache)
        self.index.add_predictions(ids, predicted, scores)
        return note

    # --- what the page reads ----------------------------------------------------------
    def info_json(self) -> dict[str, Any]:
        from pipeline.check import CHECKS

        raw = json.loads((self.root / "dataset.json").read_text(encoding="utf-8"))
        return {
            "name": self.root.resolve().name, "task": self.info.task, "classes": self.info.classes,
            "samples": len(self.index), "lineage": raw.get("lineage", []),
            "checks": {code: {"level": level, "description": text} for code, (level, text) in CHECKS.items()},
            "dataset_findings": self.index.meta.get("dataset_findings", []),
            "issues": self.index.has_issues, "predictions": self.index.has_predictions,
            "edits_file": str(self.edits_path), "pending": len(self.pending), "saved": self.saved,
        }

    def card(self, row: Row, sample: Sample | None = None) -> dict[str, Any]:
        """What the grid needs of one sample: its record, any pending edit, issue and prediction."""
        sample = sample or self.index.sample(row)
        out = sample.to_json()
        out["row"] = row.row
        edit = self.pending.get(sample.id)
        if edit is not None:
            out["edit"] = edit_json(edit)
        issue = self.index.issue_of(sample.id) if self.index.has_issues else None
        if issue is not None:
            out["issue"] = issue
        prediction = self.index.prediction_of(sample.id) if self.index.has_predictions else None
        if prediction is not None:
            out["prediction"] = prediction
        return out

    def page(self, filters: Filters, offset: int, limit: int) -> dict[str, Any]:
        total, rows = self.index.query(filters, offset, limit)
        return {"total": total, "offset": offset, "samples": [self.card(r) for r in rows]}

    def detail(self, sample_id: str) -> dict[str, Any] | None:
        row = self.index.row(sample_id)
        if row is None:
            return None
        sample = self.index.sample(row)
        out = self.card(row, sample)
        out["findings"] = self.index.findings_of(sample_id)
        parents = [p for p in sample.source.get("parents", []) if isinstance(p, str)]
        out["parents"] = [p for p in parents if self.index.row(p) is not None]
        return out

    def sample(self, sample_id: str) -> Sample | None:
        row = self.index.row(sample_id)
        return self.index.sample(row) if row is not None else None

    # --- edits ------------------------------------------------------------------------
    def add_edits(self, items: object) -> list[dict[str, Any]]:
        """Validate the page's edits, append them to the edits file and return the affected cards."""
        from pipeline.labeling.edits import append_edits, net_edits

        if not isinstance(items, list) or not items or len(items) > MAX_EDITS:
            raise UsageError(f"edits: expected a list of 1 to {MAX_EDITS} edits")
        ids = [item.get("id") if isinstance(item, dict) else None for item in items]
        if not all(isinstance(i, str) and i for i in ids):
            raise UsageError("edits: every edit needs an \"id\" (a sample id)")
        unknown = sorted(set(ids) - self.index.existing(sorted(set(ids))))
        if unknown:
            raise LookupError(f"no sample with id {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)"
                                                                    if len(unknown) > 1 else ""))
        time = now_iso()
        edits = [self._edit(item, k, time) for k, item in enumerate(items)]
        with self._lock:
            append_edits(self.edits_path, edits)
            self.pending = net_edits([*self.pending.values(), *edits])
        self.index.mark_edited(sorted(set(ids)))
        return [self.card(self.index.row(i)) for i in dict.fromkeys(ids)]  # type: ignore[arg-type]

    def _edit(self, item: dict, k: int, time: str):
        from pipeline.labeling.edits import UNSET, Edit

        where = f"edits[{k}]"
        extra = sorted(set(item) - {"id", "label", "objects", "remove"})
        if extra:
            raise UsageError(f"{where}: unknown field {extra[0]!r} (expected id, label, objects, remove)")
        if not ({"label", "objects", "remove"} & set(item)):
            raise UsageError(f"{where}: nothing to change (give label, objects or remove)")
        sample = self.sample(item["id"])
        assert sample is not None
        label, objects, remove = item.get("label", UNSET), item.get("objects"), item.get("remove")
        if remove is not None and not isinstance(remove, bool):
            raise UsageError(f"{where}.remove: expected true or false, got {remove!r}")
        record = sample.to_json()
        if label is not UNSET:
            record["label"] = label
            record.pop("soft_label", None)
        if "objects" in item:
            if not isinstance(objects, list):
                raise UsageError(f"{where}.objects: expected a list of objects, got {objects!r}")
            record["objects"] = objects
        # The one validator of samples.jsonl lines decides what a label and an object may be.
        parse_sample_line(json.dumps(record), set(self.info.classes), where=where, line=None)
        return Edit(id=item["id"], label=label, objects=objects if "objects" in item else None, remove=remove,
                    source="view", time=time)

    def save(self, name: object) -> dict[str, Any]:
        """Write the dataset with the pending edits as a new version `name`, beside the source."""
        from pipeline.labeling.relabel import apply_edits

        if not isinstance(name, str) or not VERSION_NAME.match(name) or name in (".", ".."):
            raise UsageError(f"name: expected a folder name (letters, digits, '.', '_', '-'), got {name!r}")
        if not self.pending:
            raise UsageError("nothing to save: no edits yet")
        out = self.root.resolve().parent / name
        with self._lock:
            report = apply_edits(self.root, list(self.pending.values()), out, source="view")
            self.saved.append(str(out))
        return {"out": str(out), **_report_json(report)}


def edit_json(edit) -> dict[str, Any]:
    """A pending edit as the page sees it: only the fields it sets (its edits-file line without the
    id, source and time)."""
    return {k: v for k, v in edit.to_json().items() if k not in ("id", "source", "time")}


def _report_json(report) -> dict[str, Any]:
    """What Save as answers: the counts of `apply_edits`' report."""
    return {"changed": report.changed, "removed": report.removed, "unchanged": report.unchanged,
            "unknown_ids": list(report.unknown_ids)}
