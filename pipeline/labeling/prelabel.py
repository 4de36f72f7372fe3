"""Pre-labels for review: a trained run's predictions on a dataset, written for a labelling tool.

`prelabel` classifies every sample of a classification dataset (labelled or not) with the run's
checkpoint, through the same tensor cache and evaluation as `pipeline validate`, and writes them
with the format modules' own writers (`pipeline.formats`), so a person corrects them in their tool
and `pipeline relabel` reads the result back:

- **labelstudio**: ``tasks.json`` (each task's ``data.sample_id`` is the sample id; the prediction
  in ``predictions``: a ``choices`` result with the class, the top softmax probability as
  ``score`` and ``model_version`` = ``RUN-NAME@`` the first 12 hex digits of the checkpoint's
  sha256), ``label_config.xml`` (the ``Choices`` control of every class, to create the project
  with) and ``images/``. Image URLs are ``/data/local-files/?d=images/<name>``: the document root
  is this folder (``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``,
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=DIR`` and a Local Files storage for ``DIR/images``).
- **labelme**: a JSON beside each image; every class is an image flag, the predicted one true,
  and one more flag ``__model VERSION: CLASS (score S)__`` names the prediction and its score
  (labelme shows flags in its Flags list; names in double underscores are never classes on import).
- **cvat**: ``annotations.xml`` (CVAT for images 1.1) with one ``<tag>`` per image, the predicted
  class, whose attributes ``score`` and ``model_version`` carry the rest, and ``images/``.

With ``issues`` (the folder `pipeline label-issues` wrote: ``issues.json``, whose ``issues`` list
holds ``{"id", "given", "suggested", "score", "rank", "kind"}``) only the flagged samples are written,
with their **given** label as the annotation (Label Studio) or the ticked flag / the tag (labelme,
CVAT) and the **suggested** one as the prediction (Label Studio's ``predictions``; labelme's
``__suggested CLASS (score S)__`` flag; a ``suggested`` attribute on the CVAT tag), so a reviewer
sees both; the issue's ``score`` goes with the suggestion. NumberModel is a classifier: a detection
or segmentation dataset is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import outputs, ui
from pipeline.core.dataset import Dataset, DatasetInfo, Prediction, Sample, load_dataset, replace_dir
from pipeline.core.errors import DataError, UsageError

FORMATS = ("labelstudio", "labelme", "cvat")
ISSUE_KEYS = ("id", "given", "suggested", "score", "rank", "kind")


@dataclass(frozen=True)
class Issue:
    """One entry of `label-issues`' ``issues.json``."""

    id: str
    given: str | None
    suggested: str | None
    score: float | None
    rank: int | None
    kind: str | None


@dataclass
class PrelabelReport:
    """What `prelabel` wrote: how many samples, the model version, the folder and its main file."""

    out: Path
    fmt: str
    samples: int
    model_version: str
    mean_score: float | None
    from_issues: bool


def prelabel(run: Path, dataset: Path, fmt: str, out: Path, *, issues: Path | None = None,
             checkpoint: str = "best", device: str = "auto", overwrite: bool = False) -> PrelabelReport:
    """Write `dataset`'s samples with `run`'s predictions (or with `issues`' given and suggested
    labels) for the labelling tool `fmt` at `out` (see the module doc)."""
    from pipeline import formats

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: not a labelling tool format", fix=f"use one of {', '.join(FORMATS)}")
    run, dataset, out = Path(run), Path(dataset), Path(out)
    ds = load_dataset(dataset)
    if ds.task != "classification":
        raise UsageError(f"{dataset}: a {ds.task} dataset; prelabel needs a classification dataset (NumberModel "
                         "classifies whole images)",
                         fix=f"pre-label its objects' crops: `pipeline crop {dataset} --out DIR`, then prelabel DIR")
    outputs.sweep_stale(out)
    outputs.claim_dir(out, "export", reads=[dataset, run] + ([issues] if issues else []), overwrite=overwrite)
    version = model_version(run, checkpoint)
    if issues is not None:
        samples, scores = _issue_samples(ds, read_issues(Path(issues)), version)
    else:
        samples, scores = _predicted_samples(ds, run, version, checkpoint, device)
    for s in samples:
        _for_tool(s, fmt, ds.classes, version)
    view = Dataset(root=ds.root, info=DatasetInfo(task="classification", classes=list(ds.classes),
                                                  class_ids=ds.info.class_ids), samples=samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = outputs.temp_name(out)
    tmp.mkdir()
    try:
        from pipeline.formats.base import ExportReport

        formats.get(fmt).write(view, tmp, ExportReport(), {})
        outputs.write_export_marker(tmp, fmt=f"{fmt} (prelabel)", source=dataset)
        os.sync()
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    mean = float(np.mean(scores)) if scores else None
    return PrelabelReport(out=out, fmt=fmt, samples=len(samples), model_version=version, mean_score=mean,
                          from_issues=issues is not None)


def model_version(run: Path, checkpoint: str = "best") -> str:
    """``RUN-NAME@HASH``: the run's folder name and the first 12 hex digits of its checkpoint's sha256."""
    from pipeline.evaluate import CHECKPOINTS

    path = Path(run) / CHECKPOINTS.get(checkpoint, checkpoint)
    if not path.is_file():
        raise UsageError(f"{run}: no checkpoint {path.name}", fix="train the run first, or name another --checkpoint")
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return f"{Path(os.path.abspath(run)).name}@{h.hexdigest()[:12]}"


def predict_samples(ds: Dataset, run: Path, checkpoint: str = "best", device: str = "auto",
                    batch_size: int = 1000) -> dict[str, tuple[str, float]]:
    """Each sample's predicted class and its softmax probability, with the run's preprocessing,
    through the tensor cache (`pipeline.tensor_cache`) and `pipeline.train.evaluate_rows`."""
    import torch

    from pipeline.evaluate import load_model, run_task
    from pipeline.tensor_cache import load_or_build
    from pipeline.train import Rows, evaluate_rows, normalizer

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model, info, pre = load_model(run, checkpoint, device=str(dev))
    if run_task(info) != "classification":
        raise UsageError(f"{run}: an autoencoder run; prelabel needs a classifier", fix="train a classifier run")
    cache = load_or_build(ds, size=pre.size, grayscale=pre.grayscale, labels=False)
    rows = Rows(cache, np.arange(len(cache)), dev, soft=False)
    logits = evaluate_rows(model, rows, normalizer(pre, dev), batch_size, channels_last=False)
    probs = torch.softmax(logits.float(), dim=1)
    score, best = probs.max(dim=1)
    classes = list(info["classes"])
    return {sid: (classes[int(k)], round(float(p), 6)) for sid, k, p in zip(cache.ids, best, score, strict=True)}


def read_issues(path: Path) -> list[Issue]:
    """The entries of `label-issues`' ``issues.json`` (the file or its folder), validated by
    `pipeline.labeling.issues.load_issues`: a bad entry is a `DataError` naming its field."""
    from pipeline.labeling.issues import load_issues

    return [Issue(e["id"], e["given"], e["suggested"], float(e["score"]), e["rank"], e["kind"])
            for e in load_issues(path)["issues"]]


def _predicted_samples(ds: Dataset, run: Path, version: str, checkpoint: str,
                       device: str) -> tuple[list[Sample], list[float]]:
    predicted = predict_samples(ds, run, checkpoint, device)
    samples, scores = [], []
    for s in ui.progress(ds.samples, total=len(ds.samples), desc="prelabel", unit="sample"):
        label, score = predicted[s.id]
        new = _bare(s)
        new.predictions = [Prediction(model_version=version, score=score, label=label)]
        samples.append(new)
        scores.append(score)
    return samples, scores


def _issue_samples(ds: Dataset, issues: list[Issue], version: str) -> tuple[list[Sample], list[float]]:
    by_id = {s.id: s for s in ds.samples}
    missing = [i.id for i in issues if i.id not in by_id]
    if missing:
        raise DataError("issues.json", f"{len(missing):,} issue id(s) not in {ds.root}: "
                        + ", ".join(repr(m) for m in missing[:10]),
                        fix="use the issues label-issues wrote for this dataset")
    unknown = sorted({c for i in issues for c in (i.given, i.suggested) if c is not None and c not in ds.classes})
    if unknown:
        raise DataError("issues.json", f"class(es) not in the dataset: {', '.join(map(repr, unknown[:10]))}",
                        fix="use the issues label-issues wrote for this dataset")
    samples, scores, seen = [], [], set()
    for issue in sorted(issues, key=lambda i: (i.rank if i.rank is not None else 1 << 62, i.id)):
        if issue.id in seen:
            continue
        seen.add(issue.id)
        new = _bare(by_id[issue.id])
        new.label = issue.given
        if issue.suggested is not None:
            new.predictions = [Prediction(model_version=f"{version} label-issues {issue.kind or ''}".strip(),
                                          score=issue.score, label=issue.suggested)]
        if issue.score is not None:
            scores.append(issue.score)
        samples.append(new)
    samples.sort(key=lambda s: s.id)
    return samples, scores


def _bare(s: Sample) -> Sample:
    """The sample with its image and split only: what the tool shows before anyone labels it."""
    return Sample(id=s.id, image=s.image, width=s.width, height=s.height, sha256=s.sha256, split=s.split,
                  pack=s.pack)


def _for_tool(s: Sample, fmt: str, classes: list[str], version: str) -> None:
    """labelme and CVAT have no predictions: the prediction becomes the pre-annotation there, and
    its score (or, with issues, the suggestion) a flag or tag attributes."""
    pred = s.predictions[0] if s.predictions else None
    if fmt == "labelstudio" or pred is None:
        return
    shown = f"{pred.label} (score {pred.score:.3f})" if pred.score is not None else str(pred.label)
    from_issues = s.label is not None
    if fmt == "labelme":
        flags = {c: False for c in classes}
        note = f"__suggested {shown}__" if from_issues else f"__model {version}: {shown}__"
        flags[note] = False
        s.meta["flags"] = flags
    else:
        attributes = {"source": "auto", "model_version": pred.model_version or version}
        if pred.score is not None:
            attributes["score"] = f"{pred.score:.6f}"
        if from_issues:
            attributes["suggested"] = str(pred.label)
        s.meta["tags"] = [{"label": s.label if from_issues else pred.label, "attributes": attributes}]
    if not from_issues:
        s.label = pred.label
    s.predictions = None


def issues_json(issues: list[Issue], dataset: str = "", dataset_sha256: str = "") -> str:
    """`issues` as the ``issues.json`` `pipeline label-issues` writes (entries in rank order,
    ranked 1..n), for tests and tools that make their own review lists."""
    ordered = sorted(issues, key=lambda i: (i.rank if i.rank is not None else 1 << 62, i.id))
    entries = [{**{k: getattr(i, k) for k in ISSUE_KEYS}, "rank": n} for n, i in enumerate(ordered, start=1)]
    return json.dumps({"dataset": dataset, "dataset_sha256": dataset_sha256, "params": {}, "issues": entries},
                      ensure_ascii=False, indent=1)
