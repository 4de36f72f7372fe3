"""Dataset statistics: counts per class and split, object and box sizes, image sizes; a PNG of them.

`compute_stats` is pure bookkeeping over the samples (no image reads). `plot_stats` draws a
figure with matplotlib's Agg backend, imported only when a plot is asked for.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.dataset import Dataset, Obj, Sample
from pipeline.core.dataset.stream import is_streamed

SPLIT_ORDER = ("train", "val", "test", "unsplit")


def _box_or_none(obj: Obj) -> list[float] | None:
    """`object_box`, None for a mask that does not decode (stats reports what it can read)."""
    from pipeline.core.geometry import object_box

    try:
        return object_box(obj, points=False)
    except (ValueError, KeyError):
        return None


def _percentiles(values) -> dict[str, float] | None:
    """min, p10, median, p90, max and mean of `values` (a sequence or an array of floats)."""
    if not len(values):
        return None
    v = np.sort(np.asarray(values, dtype=np.float64))

    def q(p: float) -> float:
        k = (len(v) - 1) * p
        lo, hi = math.floor(k), math.ceil(k)
        return float(v[lo] + (v[hi] - v[lo]) * (k - lo))

    # the mean as Python's sum adds the sorted values, one after the other (the same last digit)
    return {"min": float(v[0]), "p10": q(0.1), "median": q(0.5), "p90": q(0.9), "max": float(v[-1]),
            "mean": float(sum(v.tolist()) / len(v))}


class _Tally:
    """The counts `compute_stats` reports, kept compact: counters per class and split, and the
    per-box and per-image numbers in arrays of doubles (8 bytes each, not a Python float)."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = list(classes)
        self.names = {c: c for c in classes}  # one string object per class, however many boxes
        self.samples = 0
        self.splits: Counter = Counter()
        self.images_per_class: dict[str, Counter] = {c: Counter() for c in classes}
        self.objects_per_class: dict[str, Counter] = {c: Counter() for c in classes}
        self.labels_per_class: dict[str, Counter] = {c: Counter() for c in classes}  # objects + image labels
        self.image_labels = 0  # samples with an image-level label
        self.per_image = array("d")
        self.box_w = array("d")
        self.box_h = array("d")
        self.box_rel = array("d")  # sqrt(box area / image area)
        self.box_class: list[str] = []
        self.kinds: Counter = Counter()
        self.img_sizes: Counter = Counter()

    def add(self, s: Sample) -> None:
        sp = s.split or "unsplit"
        self.samples += 1
        self.splits[sp] += 1
        self.img_sizes[(s.width, s.height)] += 1
        names = set()
        if s.label is not None:
            names.add(s.label)
        names.update(k for k, v in (s.soft_label or {}).items() if v > 0)
        for name in names:
            self.labels_per_class.setdefault(name, Counter())[sp] += 1
        self.image_labels += bool(names)
        for o in s.objects or []:
            names.add(o.label)
            self.objects_per_class.setdefault(o.label, Counter())[sp] += 1
            self.labels_per_class.setdefault(o.label, Counter())[sp] += 1
            for kind in ("bbox", "polygon", "mask", "keypoints", "polyline"):
                if getattr(o, kind) is not None:
                    self.kinds[kind] += 1
            if o.bbox is not None or o.polygon or o.mask is not None:
                box = _box_or_none(o)
                if box is not None:
                    w, h = box[2] - box[0], box[3] - box[1]
                    self.box_w.append(w)
                    self.box_h.append(h)
                    self.box_rel.append(math.sqrt(max(w, 0) * max(h, 0) / max(1, s.width * s.height)))
                    self.box_class.append(self.names.get(o.label, o.label))
        for name in names:
            self.images_per_class.setdefault(name, Counter())[sp] += 1
        if s.objects is not None:
            self.per_image.append(len(s.objects))

    def add_plain(self, split: str | None, label: str | None, width: int, height: int, n: int) -> None:
        """`n` samples alike: this split, image label, size, and no soft label or objects."""
        sp = split or "unsplit"
        self.samples += n
        self.splits[sp] += n
        self.img_sizes[(width, height)] += n
        if label is not None:
            self.labels_per_class.setdefault(label, Counter())[sp] += n
            self.images_per_class.setdefault(label, Counter())[sp] += n
            self.image_labels += n

    def result(self, root: Path, task: str) -> dict[str, Any]:
        split_names = [sp for sp in SPLIT_ORDER if self.splits.get(sp)]

        def table(counter_map: dict[str, Counter]) -> dict[str, dict[str, int]]:
            return {c: {sp: int(cnt.get(sp, 0)) for sp in split_names} | {"total": int(sum(cnt.values()))}
                    for c, cnt in counter_map.items()}

        out: dict[str, Any] = {
            "dataset": str(root),
            "task": task,
            "samples": self.samples,
            "splits": {sp: int(self.splits[sp]) for sp in split_names},
            "classes": list(self.classes),
            "images_per_class": table(self.images_per_class),
            "objects": int(sum(self.per_image)),
            "objects_per_class": table(self.objects_per_class) if any(self.objects_per_class.values()) else {},
            "labels_per_class": table(self.labels_per_class),
            "image_labels": self.image_labels,
            "geometry": dict(sorted(self.kinds.items())),
            "objects_per_image": _percentiles(self.per_image),
            "box_width": _percentiles(self.box_w),
            "box_height": _percentiles(self.box_h),
            "box_relative_size": _percentiles(self.box_rel),
            "image_sizes": [{"width": w, "height": h, "count": n}
                            for (w, h), n in sorted(self.img_sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:20]],
            "distinct_image_sizes": len(self.img_sizes),
        }
        out["_boxes"] = {"w": self.box_w, "h": self.box_h, "rel": self.box_rel, "label": self.box_class}
        return out


def compute_stats(dataset: Dataset) -> dict[str, Any]:
    """Counts and size distributions of `dataset` (JSON-ready).

    A streamed dataset (`open_dataset`) is read once, in bounded memory: with one DuckDB query when
    its samples are plain (labels and sizes only: `core.dataset.columns`), else sample by sample."""
    if is_streamed(dataset):
        from pipeline.core.dataset.columns import plain_counts

        counts = plain_counts(dataset.root, dataset.info, len(dataset.samples))
        if counts is not None:
            return _plain_stats(dataset, counts)
    tally = _Tally(dataset.classes)
    for s in dataset.samples:
        tally.add(s)
    return tally.result(dataset.root, dataset.task)


def stats_of(root: Path) -> dict[str, Any]:
    """`compute_stats` of the dataset folder `root`, opened with `open_dataset`: DuckDB's query of a
    plain file runs on its own threads while this one checks the file (hash, order), and is used
    only if that check lets the file be streamed."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.core.dataset import open_dataset, read_info
    from pipeline.core.dataset.columns import plain_counts

    info = read_info(root)
    with ThreadPoolExecutor(max_workers=1) as pool:
        early = pool.submit(plain_counts, root, info, None)
        dataset = open_dataset(root)
        counts = early.result()
    if not is_streamed(dataset) or counts is None or sum(c[4] for c in counts) != len(dataset.samples) \
            or info.classes != dataset.classes:
        return compute_stats(dataset)
    return _plain_stats(dataset, counts)


def _plain_stats(dataset: Dataset, counts: list[tuple]) -> dict[str, Any]:
    tally = _Tally(dataset.classes)
    splits = {0: "train", 1: "val", 2: "test", -1: None}
    for sp, cls, w, h, n in counts:
        tally.add_plain(splits[sp], dataset.classes[cls] if cls >= 0 else None, w, h, n)
    return tally.result(dataset.root, dataset.task)


def public(stats: dict[str, Any]) -> dict[str, Any]:
    """`stats` without the raw per-box lists (what `--json` prints)."""
    return {k: v for k, v in stats.items() if not k.startswith("_")}


def _counted(stats: dict[str, Any]) -> tuple[dict[str, dict[str, int]], str]:
    """The per-class table to show and what it counts: objects, image labels, or both."""
    has_objects = bool(stats["objects_per_class"])
    if has_objects and stats["image_labels"]:
        return stats["labels_per_class"], "objects + image labels"
    if has_objects:
        return stats["objects_per_class"], "objects"
    return stats["images_per_class"], "images"


def render_table(stats: dict[str, Any]) -> str:
    """Counts per class and split as a text table (objects for detection, images otherwise)."""
    per, what = _counted(stats)
    cols = list(stats["splits"]) + ["total"]
    cw = max([len("(images)")] + [len(c) for c in per])
    lines = [f"{what} per class and split", f"{'class':<{cw}} " + " ".join(f"{c:>8}" for c in cols)]
    for name, row in per.items():
        lines.append(f"{name:<{cw}} " + " ".join(f"{row.get(c, 0):>8}" for c in cols))
    lines.append(f"{'(images)':<{cw}} " + " ".join(
        f"{stats['splits'].get(c, stats['samples'] if c == 'total' else 0):>8}" for c in cols))
    for key, title in (("box_width", "box width (px)"), ("box_height", "box height (px)"),
                       ("objects_per_image", "objects per image")):
        p = stats.get(key)
        if p:
            lines.append(f"{title}: min {p['min']:.0f}, median {p['median']:.0f}, p90 {p['p90']:.0f}, "
                         f"max {p['max']:.0f}")
    return "\n".join(lines)


def plot_stats(stats: dict[str, Any], out: Path) -> Path:
    """Write a PNG: class counts by split, box size histogram, box width vs height, image sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from pipeline.core.outputs import mark_png
    from pipeline.core.paths import atomic_write_bytes

    per, what = _counted(stats)
    splits = list(stats["splits"])
    boxes = stats.get("_boxes") or {"w": [], "h": [], "rel": []}
    has_boxes = len(boxes["w"]) > 0
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), dpi=100) if has_boxes else plt.subplots(1, 2, figsize=(12, 4.5),
                                                                                               dpi=100)
    axes = list(axes.ravel()) if hasattr(axes, "ravel") else list(axes)
    def n(count: int, word: str) -> str:
        return f"{count} {word}" + ("" if count == 1 else "es" if word.endswith("s") else "s")

    title = f"{Path(stats['dataset']).name}: {n(stats['samples'], 'image')}, {n(len(stats['classes']), 'class')}"
    if stats["objects"]:
        title += f", {n(stats['objects'], 'object')}"
    fig.suptitle(title)

    ax = axes[0]
    names = list(per)[:40]
    colors = {"train": "#4c72b0", "val": "#dd8452", "test": "#55a868", "unsplit": "#8c8c8c"}
    left = [0] * len(names)
    for sp in splits:
        vals = [per[n].get(sp, 0) for n in names]
        ax.barh(range(len(names)), vals, left=left, color=colors.get(sp), label=sp)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for y, total in enumerate(left):
        ax.text(total, y, f" {total}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), labels=names, fontsize=8 if len(names) > 15 else 10)
    ax.invert_yaxis()
    ax.set_xlabel(what)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{what} per class" + (f" (first 40 of {len(per)})" if len(per) > 40 else ""))
    if len(splits) > 1 or splits != ["unsplit"]:
        ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.12)

    if has_boxes:
        ax = axes[1]
        side = [math.sqrt(max(w, 0) * max(h, 0)) for w, h in zip(boxes["w"], boxes["h"], strict=True)]
        positive = [v for v in side if v > 0]
        if positive and max(positive) / max(min(positive), 1e-9) > 20:
            lo, hi = math.log10(max(min(positive), 0.5)), math.log10(max(positive))
            bins = [10 ** (lo + (hi - lo) * k / 30) for k in range(31)] if hi > lo else 30
            ax.hist(positive, bins=bins, color="#4c72b0")
            ax.set_xscale("log")
        else:
            ax.hist(side, bins=30, color="#4c72b0")
        lo_x, hi_x = ax.get_xlim()
        for edge, name in ((32, "COCO small/medium (32 px)"), (96, "COCO medium/large (96 px)")):
            if lo_x < edge < hi_x:
                ax.axvline(edge, color="#999999", linestyle="--", linewidth=1)
                ax.text(edge, ax.get_ylim()[1] * 0.98, f" {name}", fontsize=7, color="#666666", va="top",
                        ha="left", rotation=90)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("box size: sqrt(width × height), px")
        ax.set_ylabel("boxes")
        ax.set_title(f"box sizes ({len(side)} boxes)")

        ax = axes[2]
        ax.scatter(boxes["w"], boxes["h"], s=6, alpha=0.5, color="#4c72b0")
        ax.set_xlabel("box width, px")
        ax.set_ylabel("box height, px")
        ax.set_title("box width vs height")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)

        ax = axes[3]
        ax.hist(boxes["rel"], bins=30, range=(0, 1), color="#55a868")
        ax.set_xlabel("box side relative to image: sqrt(box area / image area)")
        ax.set_ylabel("boxes")
        ax.set_title("relative box size")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax = axes[1]
        sizes = stats["image_sizes"]
        ax.scatter([s["width"] for s in sizes], [s["height"] for s in sizes],
                   s=[20 + 200 * s["count"] / max(x["count"] for x in sizes) for s in sizes], alpha=0.6)
        ax.set_xlabel("image width, px")
        ax.set_ylabel("image height, px")
        ax.set_title(f"image sizes ({stats['distinct_image_sizes']} distinct)")
        ax.set_xlim(0, max(s["width"] for s in sizes) * 1.15)
        ax.set_ylim(0, max(s["height"] for s in sizes) * 1.15)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(out), mark_png(buf.getvalue(), "stats"))  # (`pipeline stats --out` knows its own)
    return Path(out)
