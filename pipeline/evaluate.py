"""Validate and predict with a trained run, using exactly the run's preprocessing.

`validate_run` evaluates a checkpoint on one split of a dataset (through the same tensor cache as
training) and writes `RUN/validate-<split>/report.json` (accuracy, per-class precision, recall and
F1, the confusion matrix) and `confusion.png`; for an autoencoder the report holds the reconstruction
error (mean squared error on [0, 1] pixels and PSNR) and `reconstructions.png` shows originals above
their reconstructions.

`predict_images` classifies image files: decode (EXIF orientation applied), grayscale, resize,
normalize with the run's mean/std. A photo whose background is the opposite of the training
images' (a dark digit on white paper for MNIST's white-on-black) is inverted first, decided by the
brightness of its border pixels, and its levels are stretched so the paper matches the training
background. `reconstruct_images` runs an autoencoder on image files the same way and writes each
reconstruction as a PNG.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core import ui
from pipeline.core.errors import DataError, UsageError
from pipeline.core.paths import atomic_write_bytes, atomic_write_text
from pipeline.train import Preprocess, load_run_info

CHECKPOINTS = {"best": "best.pt", "last": "last.pt"}


# --------------------------------------------------------------------------------------------
# Loading a run
# --------------------------------------------------------------------------------------------


def load_model(run: str | os.PathLike, checkpoint: str = "best", device: str = "cpu"):
    """(model in eval mode, run.json, Preprocess) of a run folder; one-line errors for what is missing."""
    import torch

    from pipeline.model import build_model

    run = Path(run)
    info = load_run_info(run)
    name = CHECKPOINTS.get(checkpoint, checkpoint)
    path = run / name
    if not path.is_file():
        alt = [p.name for p in sorted(run.glob("*.pt")) if p.name != "resume.pt"]
        raise UsageError(
            f"{run}: no checkpoint {name}" + (f" (found: {', '.join(alt)})" if alt else " (training never finished an epoch)"),
            fix="train (or --resume) the run until at least one epoch completes" if not alt
            else f"use --checkpoint {alt[0].removesuffix('.pt')}",
        )
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged file for the user
        raise DataError(path, f"not a readable checkpoint ({type(exc).__name__})",
                        fix="re-train, or use --checkpoint last") from exc
    classes = list(info["classes"])
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in info.get("model_options", {}).items()}
    model = build_model(info.get("variant", "standard"), int(info["in_channels"]), len(classes), **options)
    outputs = _output_count(state) if run_task(info) == "classification" else None
    if outputs is not None and outputs != len(classes):
        raise UsageError(
            f"{path}: the checkpoint has {outputs} outputs but {run / 'run.json'} lists {len(classes)} classes",
            fix="use the run.json that belongs to this checkpoint, or re-train",
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise UsageError(f"{path}: does not fit model variant {info.get('variant')!r} "
                         f"({first[1].strip() if len(first) > 1 else first[0]})",
                         fix="check run.json's variant, or re-train") from None
    model.to(device).eval()
    return model, info, Preprocess.from_json(info["preprocess"])


def run_task(info: dict[str, Any]) -> str:
    """`classification` or `reconstruction`: what the run's model learned (runs before autoencoders: classification)."""
    return str(info.get("task", "classification"))


def _output_count(state: dict) -> int | None:
    """Rows of the last 2-D weight in a state_dict: the classifier's class count."""
    weights = [v for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2]
    return int(weights[-1].shape[0]) if weights else None


def class_mapping(run_classes: list[str], data_classes: list[str], where: str) -> np.ndarray:
    """Index in the run's class list of each dataset class; the dataset may hold fewer, never others."""
    unknown = [c for c in data_classes if c not in run_classes]
    if unknown:
        raise UsageError(
            f"{where}: classes {unknown[:10]} are not among the run's {len(run_classes)} classes {run_classes[:10]}",
            fix="validate on a dataset with the run's classes (same class folder names), or train on this one",
        )
    return np.array([run_classes.index(c) for c in data_classes], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def confusion_matrix(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Counts (k, k): rows are true classes, columns predicted."""
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def classification_report(cm: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and their macro averages from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    count = int(cm.sum())
    present = support > 0
    per_class = {
        c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    return {
        "accuracy": float(tp.sum() / count) if count else 0.0,
        "count": count,
        "macro": {"precision": float(precision[present].mean()) if present.any() else 0.0,
                  "recall": float(recall[present].mean()) if present.any() else 0.0,
                  "f1": float(f1[present].mean()) if present.any() else 0.0},
        "per_class": per_class,
        "confusion": {"classes": list(classes), "rows": "true", "columns": "predicted", "matrix": cm.tolist()},
    }


def confusion_png(cm: np.ndarray, classes: list[str], title: str) -> bytes:
    """The confusion matrix as a PNG (row-normalized colours, counts written in each cell)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    k = len(classes)
    side = min(14.0, max(4.0, 0.5 * k + 2))
    fig = Figure(figsize=(side, side), dpi=100)
    ax = fig.subplots()
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels=classes, rotation=90 if k > 10 else 0)
    ax.set_yticks(range(k), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Validate
# --------------------------------------------------------------------------------------------


def validate_run(run: str | os.PathLike, data: str | os.PathLike, *, split: str = "test",
                 checkpoint: str = "best", batch_size: int = 1000, device: str = "auto") -> dict[str, Any]:
    """Evaluate a run's checkpoint on `split` of `data`; writes RUN/validate-<split>/ and returns the report."""
    import torch

    from pipeline.tensor_cache import load_or_build
    from pipeline.train import (
        Rows,
        evaluate_rows,
        normalizer,
        open_classification_dataset,
        open_image_dataset,
    )

    run = Path(run)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model, info, pre = load_model(run, checkpoint, device=str(dev))
    reconstruct = run_task(info) == "reconstruction"
    dataset = open_image_dataset(data) if reconstruct else open_classification_dataset(data, purpose="validate")
    if not dataset.samples:
        raise UsageError(f"{data}: the dataset is empty", fix="point --data at a dataset with images")
    mapping = None if reconstruct else class_mapping(info["classes"], dataset.classes, str(data))
    cache = load_or_build(dataset, size=pre.size, grayscale=pre.grayscale, labels=not reconstruct)
    note = None
    if split == "all":
        rows = np.arange(len(cache))
    else:
        rows = cache.indices(split)
        if len(rows) == 0:
            present = cache.split_counts()
            if set(present) == {"none"}:
                rows = np.arange(len(cache))
                note = f"the dataset has no splits; evaluated all {len(rows)} samples"
                ui.info(note)
            else:
                raise UsageError(
                    f"{data}: no samples in split {split!r} (splits: "
                    + ", ".join(f"{k} {v}" for k, v in present.items()) + ")",
                    fix="choose another --split, or --split all",
                )
    rows_data = Rows(cache, rows, dev, soft=False)
    logits = evaluate_rows(model, rows_data, normalizer(pre, dev), batch_size, channels_last=False)
    if reconstruct:
        return _reconstruction_report(run, data, dataset, split, checkpoint, note, cache.images[rows], logits)
    pred = logits.argmax(1).numpy()
    true = mapping[cache.labels[rows]]
    classes = list(info["classes"])
    cm = confusion_matrix(true, pred, len(classes))
    report = classification_report(cm, classes)
    folder = run / f"validate-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    report.update({
        "split": split, "checkpoint": CHECKPOINTS.get(checkpoint, checkpoint), "run": str(run),
        "data": str(dataset.root), "data_content_hash": dataset.content_hash, "note": note,
        "outputs": {"report": str(folder / "report.json"), "confusion_png": str(folder / "confusion.png")},
    })
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    title = f"{run.name} on {Path(data).name} [{split}]: accuracy {report['accuracy']:.4f} (n={report['count']})"
    atomic_write_bytes(folder / "confusion.png", confusion_png(cm, classes, title))
    return report


def predict_dataset(run: str | os.PathLike, data: str | os.PathLike, *, checkpoint: str = "best",
                    batch_size: int = 1000, device: str = "auto") -> tuple[list[str], list[str], np.ndarray]:
    """A classifier run's prediction for every sample of `data` (any label, or none): (sample ids,
    predicted class names, softmax scores of those classes), in the dataset's id order."""
    import torch

    from pipeline.tensor_cache import load_or_build
    from pipeline.train import Rows, evaluate_rows, normalizer, open_image_dataset

    run = Path(run)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model, info, pre = load_model(run, checkpoint, device=str(dev))
    if run_task(info) != "classification":
        raise UsageError(f"{run}: a {run_task(info)} run; predictions need a classifier",
                         fix="give a run trained by `pipeline train` on a classification dataset")
    dataset = open_image_dataset(data)
    cache = load_or_build(dataset, size=pre.size, grayscale=pre.grayscale, labels=False)
    logits = evaluate_rows(model, Rows(cache, np.arange(len(cache)), dev, soft=False), normalizer(pre, dev),
                           batch_size, channels_last=False)
    probs = torch.softmax(logits.float(), dim=1)
    score, pred = probs.max(dim=1)
    classes = list(info["classes"])
    return list(cache.ids), [classes[int(k)] for k in pred.numpy()], score.numpy().astype(np.float32)


def _reconstruction_report(run: Path, data, dataset, split: str, checkpoint: str, note: str | None,
                           images: np.ndarray, outputs) -> dict[str, Any]:
    """An autoencoder's validation: mean squared error and PSNR, and a sheet of reconstructions."""
    from pipeline.train import psnr, reconstruction_errors, to_uint8
    from pipeline.viz import reconstruction_sheet

    errors = reconstruction_errors(outputs, images)
    mse = float(errors.mean()) if len(errors) else float("nan")
    folder = run / f"validate-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "task": "reconstruction", "count": int(len(errors)), "mse": mse, "psnr": psnr(mse),
        "mse_median": float(np.median(errors)) if len(errors) else float("nan"),
        "mse_worst": float(errors.max()) if len(errors) else float("nan"),
        "split": split, "checkpoint": CHECKPOINTS.get(checkpoint, checkpoint), "run": str(run),
        "data": str(dataset.root), "data_content_hash": dataset.content_hash, "note": note,
        "outputs": {"report": str(folder / "report.json"), "reconstructions_png": str(folder / "reconstructions.png")},
    }
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    shown = min(16, len(errors))
    title = (f"{run.name} on {Path(data).name} [{split}]: MSE {mse:.5f}, PSNR {report['psnr']:.1f} dB "
             f"(n={len(errors)}); originals above reconstructions")
    sheet = reconstruction_sheet(np.asarray(images[:shown]), to_uint8(outputs[:shown]), title=title)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(folder / "reconstructions.png", buf.getvalue())
    return report


# --------------------------------------------------------------------------------------------
# Predict
# --------------------------------------------------------------------------------------------


def border_mean(gray: np.ndarray) -> float:
    """Mean of a border band (5% of the shorter side, at least one pixel) of a 2-D image."""
    h, w = gray.shape
    band = max(1, round(0.05 * min(h, w)))
    mask = np.zeros((h, w), dtype=bool)
    mask[:band, :] = mask[-band:, :] = True
    mask[:, :band] = mask[:, -band:] = True
    return float(gray[mask].mean())


def photo_to_input(img, pre: Preprocess) -> tuple[np.ndarray, bool]:
    """uint8 (C, S, S) for one decoded image, and whether it was inverted to match the training background."""
    from PIL import Image

    from pipeline.tensor_cache import to_array, to_mode

    if not pre.grayscale:
        return to_array(img, pre.size, grayscale=False), False
    full = np.asarray(to_mode(img, grayscale=True), dtype=np.uint8)
    light = border_mean(full) >= 128
    if light == (pre.background == "light"):
        return to_array(img, pre.size, grayscale=True), False
    inv = 255.0 - full.astype(np.float64)
    paper = border_mean(inv)  # the paper's level after inversion; mapped onto the training background
    if pre.background == "dark":
        ink = inv.max()
        stretched = (inv - paper) * (255.0 / (ink - paper)) if ink > paper + 1 else inv
    else:
        ink = inv.min()
        stretched = 255.0 - (paper - inv) * (255.0 / (paper - ink)) if paper > ink + 1 else inv
    out = np.clip(np.rint(stretched), 0, 255).astype(np.uint8)
    return to_array(Image.fromarray(out, mode="L"), pre.size, grayscale=True), True


def predict_images(run: str | os.PathLike, images: list[str | os.PathLike], *, topk: int = 3,
                   checkpoint: str = "best") -> tuple[list[dict[str, Any]], list[DataError]]:
    """Top-k classes and probabilities per image, and the images that could not be read."""
    import torch

    from pipeline.train import normalizer

    model, info, pre = load_model(run, checkpoint)
    if run_task(info) == "reconstruction":
        raise UsageError(f"{run}: an autoencoder run; it reconstructs images instead of classifying them",
                         fix="use `pipeline predict RUN IMAGES` (it writes reconstructions for such runs)")
    classes = list(info["classes"])
    k = max(1, min(topk, len(classes)))
    results: list[dict[str, Any]] = []
    arrays, kept, errors = _decode_inputs(images, pre)
    if arrays:
        normalize = normalizer(pre, torch.device("cpu"))
        with torch.no_grad():
            probs = torch.softmax(model(normalize(torch.from_numpy(np.stack(arrays)))).float(), dim=1)
        top_p, top_i = probs.topk(k, dim=1)
        for (path, inverted), ps, ix in zip(kept, top_p.tolist(), top_i.tolist(), strict=True):
            results.append({
                "image": path, "class": classes[ix[0]], "probability": ps[0], "inverted": inverted,
                "topk": [{"class": classes[i], "probability": p} for p, i in zip(ps, ix, strict=True)],
            })
    return results, errors


def _decode_inputs(images: list[str | os.PathLike], pre: Preprocess):
    """(uint8 arrays, (path, inverted) of each, errors) of image files prepared as in training."""
    from pipeline.core.images import open_image

    errors: list[DataError] = []
    arrays, kept = [], []
    for path in images:
        if not Path(path).is_file():
            errors.append(DataError(path, "no such image file", fix="check the path"))
            continue
        try:
            img = open_image(path, exif_transpose=True)
            arr, inverted = photo_to_input(img, pre)
        except DataError as err:
            errors.append(err)
            continue
        arrays.append(arr)
        kept.append((str(path), inverted))
    return arrays, kept, errors


def reconstruct_images(run: str | os.PathLike, images: list[str | os.PathLike], out: str | os.PathLike | None = None,
                       *, checkpoint: str = "best") -> tuple[list[dict[str, Any]], list[DataError]]:
    """An autoencoder run's reconstruction of each image, written as `OUT/<name>.png` (default
    RUN/predict/), with its mean squared error and PSNR; and the images that could not be read.

    Reconstructions have the model's input size and channels (e.g. 32x32 grayscale), as the images
    are prepared exactly as in training (inverted to the training background when needed).
    """
    import torch
    from PIL import Image

    from pipeline.train import normalizer, psnr, reconstruction_errors, to_uint8

    model, info, pre = load_model(run, checkpoint)
    if run_task(info) != "reconstruction":
        raise UsageError(f"{run}: a classifier run; only autoencoder runs reconstruct images",
                         fix="use `pipeline predict RUN IMAGES` to classify them")
    folder = Path(out) if out is not None else Path(run) / "predict"
    arrays, kept, errors = _decode_inputs(images, pre)
    results: list[dict[str, Any]] = []
    if not arrays:
        return results, errors
    batch = torch.from_numpy(np.stack(arrays))
    with torch.no_grad():
        outputs = model(normalizer(pre, torch.device("cpu"))(batch)).float()
    mse = reconstruction_errors(outputs, batch)
    recon = to_uint8(outputs)
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for (path, inverted), arr, err in zip(kept, recon, mse, strict=True):
        name = Path(path).stem
        target = name
        n = 1
        while target in used:  # two inputs with the same name from different folders
            n += 1
            target = f"{name}-{n}"
        used.add(target)
        dest = folder / f"{target}.png"
        img = Image.fromarray(arr[0], mode="L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        atomic_write_bytes(dest, buf.getvalue())
        results.append({"image": path, "reconstruction": str(dest), "mse": float(err), "psnr": psnr(float(err)),
                        "inverted": inverted})
    return results, errors
