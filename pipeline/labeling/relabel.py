"""Reviewed labels merged back: `apply_edits` writes a new version of a dataset with the edits of an
edits file (`pipeline.labeling.edits`) applied, and records every change in the changed sample and
in the lineage. The source dataset is never modified.

What a change records:

- in the sample, ``meta.relabel``: a list kept across versions (each relabel appends), one entry per
  changed field, ``{"field": "label" | "objects", "old": …, "new": …, "source": …, "time": …}``
  with the full old and new values;
- in the lineage, one ``relabel`` entry whose ``params`` carry the source and the counts and whose
  ``changes`` list every change as ``{"id", "field", "old", "new"}``; ``field`` is ``label``,
  ``objects`` or ``removed`` (``old`` false, ``new`` true: the sample is not in the new version).
  An objects change also counts its ``added``, ``removed`` and ``changed`` objects (`object_diff`);
  its ``old`` and ``new`` are the full lists when the two hold at most `LINEAGE_OBJECTS` objects
  together, and ``{"count": N}`` otherwise (the full lists stay in the sample's ``meta.relabel``),
  so a review of crowded scenes does not copy every box into ``dataset.json``.

An edit whose final value equals the dataset's current value is no change (counted ``unchanged``;
a missing ``objects`` and an empty list are the same value, and so are the same objects in another
order). An edit naming an id the dataset does
not have is an error that lists the ids; a class the dataset does not have is an error naming it,
unless ``add_classes`` appends it to the class list.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset, now_iso
from pipeline.core.errors import DataError
from pipeline.core.paths import natural_sorted
from pipeline.labeling.edits import UNSET, Edit, net_edits

LINEAGE_OBJECTS = 32  # objects (old and new together) up to which a lineage change lists them in full
SHOWN = 10  # ids or classes named in an error before "and N more"


@dataclass(frozen=True)
class Change:
    """One changed field of one sample."""

    id: str
    field: str  # "label" | "objects" | "removed"
    old: Any
    new: Any
    source: str
    time: str


@dataclass
class RelabelReport:
    """What `apply_edits` did: samples changed, removed, named by an edit but left as they were
    (`unchanged`), the edited ids the dataset lacks (always empty on return: they are an error),
    classes added, every change, and the new dataset's folder and size."""

    out: Path
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    added_classes: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    samples: int = 0


def apply_edits(dataset: Path, edits: Iterable[Edit], out: Path, *, source: str, overwrite: bool = False,
                add_classes: bool = False) -> RelabelReport:
    """Write a new version of `dataset` at `out` with `edits` applied (folded per id with
    `net_edits`). `source` names where the edits came from (an edit's own ``source`` wins for its
    changes); `out` is claimed like every stage's output (`overwrite` replaces an earlier dataset
    there, never the input)."""
    ds = load_dataset(dataset)
    net = net_edits(edits)
    by_id = {s.id: s for s in ds.samples}
    unknown = [sid for sid in net if sid not in by_id]
    if unknown:
        raise DataError(source, f"{len(unknown):,} edited id(s) not in the dataset {dataset}: {_listing(unknown)}",
                        fix="check that the edits belong to this dataset (ids are sample ids of samples.jsonl)")
    new_classes = _new_classes(net.values(), ds.classes)
    if new_classes and not add_classes:
        raise DataError(source, f"class(es) not in the dataset's class list: {_listing(new_classes)}",
                        fix=f"use one of {_listing(ds.classes)}, or allow new classes (--add-classes)")
    report = RelabelReport(out=Path(out), added_classes=new_classes)
    stamp = now_iso()
    kept: list[tuple[Sample, Sample]] = []
    for sample in ds.samples:
        edit = net.get(sample.id)
        if edit is None:
            kept.append((sample, sample))
            continue
        changes = _changes(sample, edit, source, stamp)
        if edit.remove:
            report.removed += 1
            report.changes.append(Change(sample.id, "removed", False, True, edit.source or source, edit.time or stamp))
            continue
        if not changes:
            report.unchanged += 1
            kept.append((sample, sample))
            continue
        report.changed += 1
        report.changes += changes
        kept.append((sample, _changed_sample(sample, changes)))
    report.samples = len(kept)
    params = {"source": source, "changed": report.changed, "removed": report.removed,
              "unchanged": report.unchanged, "added_classes": new_classes}
    with DatasetWriter(out, task=ds.task, stage="relabel", classes=ds.classes + new_classes,
                       class_ids=ds.info.class_ids, params=params, inputs={str(ds.root): ds.content_hash},
                       parent_lineage=ds.info.lineage, reads=[ds.root], overwrite=overwrite) as writer:
        writer.lineage[-1]["changes"] = [_lineage_change(c) for c in report.changes]
        for original, sample in kept:
            writer.add_from(ds, original, None if sample is original else sample)
        writer.finish()
    return report


def object_diff(old: list[dict], new: list[dict]) -> dict[str, int]:
    """Counts of objects `added`, `removed` and `changed` from `old` to `new`: identical objects
    (equal JSON) pair first and count as neither; of the rest, as many as both sides have are
    `changed`, the surplus of `new` is `added` and that of `old` `removed`."""
    key = _object_key
    same = sum((Counter(map(key, old)) & Counter(map(key, new))).values())
    rest_old, rest_new = len(old) - same, len(new) - same
    changed = min(rest_old, rest_new)
    return {"added": rest_new - changed, "removed": rest_old - changed, "changed": changed}


def _object_key(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _new_classes(edits: Iterable[Edit], classes: list[str]) -> list[str]:
    known = set(classes)
    found = set()
    for edit in edits:
        if edit.label is not UNSET and edit.label is not None:
            found.add(edit.label)
        found.update(o["label"] for o in edit.objects or ())
    return natural_sorted(found - known)


def _changes(sample: Sample, edit: Edit, source: str, stamp: str) -> list[Change]:
    """The fields `edit` changes on `sample` (none when every value it sets equals the current one)."""
    who, when = edit.source or source, edit.time or stamp
    out = []
    if edit.label is not UNSET and edit.label != sample.label:
        out.append(Change(sample.id, "label", sample.label, edit.label, who, when))
    if edit.objects is not None:
        old = [o.to_json() for o in sample.objects or ()]
        new = [Obj.from_json(o).to_json() for o in edit.objects]  # canonical key order
        if sorted(map(_object_key, old)) != sorted(map(_object_key, new)):  # (order alone is no change)
            out.append(Change(sample.id, "objects", old, new, who, when))
    return out


def _changed_sample(sample: Sample, changes: list[Change]) -> Sample:
    new = Sample.from_json(sample.to_json())
    history = list(new.meta.get("relabel") or [])
    for c in changes:
        if c.field == "label":
            new.label = c.new
        else:
            new.objects = [Obj.from_json(o) for o in c.new]
        history.append({"field": c.field, "old": c.old, "new": c.new, "source": c.source, "time": c.time})
    new.meta["relabel"] = history
    return new


def _lineage_change(c: Change) -> dict:
    entry: dict[str, Any] = {"id": c.id, "field": c.field, "old": c.old, "new": c.new}
    if c.field == "objects":
        if len(c.old) + len(c.new) > LINEAGE_OBJECTS:
            entry["old"], entry["new"] = {"count": len(c.old)}, {"count": len(c.new)}
        entry.update(object_diff(c.old, c.new))
    return entry


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN:,} more" if len(names) > SHOWN else "")


__all__ = ["LINEAGE_OBJECTS", "Change", "RelabelReport", "apply_edits", "object_diff"]
