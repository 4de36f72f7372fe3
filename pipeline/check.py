"""Label checks: what is wrong with a dataset before it is trained on.

`check_dataset` reads every image once (bytes hashed, pixels decoded) and every label, and returns
a `CheckReport`: a list of findings, each with a level (error, warning, info), a check code, the
sample it concerns and a one-line message, plus per-class counts by split. The codes and their
levels are listed in `CHECKS`; `pipeline check --strict` fails when any error-level finding exists.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pipeline.core.dataset import Dataset, Obj, Sample
from pipeline.core.errors import DataError
from pipeline.core.geometry import bbox_iou, signed_ring_area
from pipeline.core.paths import natural_key

ERROR, WARNING, INFO = "error", "warning", "info"
LEVELS = (ERROR, WARNING, INFO)

# code -> (level, what it means). The order is the order of the report.
CHECKS: dict[str, tuple[str, str]] = {
    "missing-image": (ERROR, "the image file named by the sample does not exist"),
    "unreadable-image": (ERROR, "the image cannot be decoded (corrupt, truncated or not an image)"),
    "hash-mismatch": (ERROR, "the image bytes changed since the dataset was written (sha256 differs)"),
    "size-mismatch": (ERROR, "the sample's width/height differ from the image file"),
    "split-leakage": (ERROR, "the same image (by content) is in more than one split"),
    "box-outside-image": (ERROR, "a box extends beyond the image"),
    "degenerate-box": (ERROR, "a box with zero or negative width or height"),
    "degenerate-polygon": (ERROR, "a polygon ring with fewer than 3 points or no area"),
    "polygon-outside-image": (ERROR, "polygon points beyond the image"),
    "degenerate-polyline": (ERROR, "a line with fewer than 2 points"),
    "bad-mask": (ERROR, "a mask whose size differs from the image or whose run lengths do not add up"),
    "truncated-image": (WARNING, "the image file was cut short; what decodes was kept (restored on import)"),
    "exif-in-stored-image": (WARNING, "the stored file still carries an EXIF rotation; other tools will show it turned"),
    "exif-ambiguous": (WARNING, "the importer could not tell whether labels were drawn on the raw or rotated frame"),
    "duplicate-image": (WARNING, "the same image (by content) appears more than once"),
    "conflicting-labels": (WARNING, "copies of the same image carry different image labels"),
    "duplicate-box": (WARNING, "two boxes of the same class overlap almost completely (IoU > 0.95)"),
    "tiny-box": (WARNING, "a box under 2 pixels wide or high"),
    "keypoint-outside-image": (WARNING, "a keypoint beyond the image"),
    "empty-mask": (WARNING, "a mask with no pixels set"),
    "no-annotations": (WARNING, "an image with no objects and no image label"),
    "rare-class": (WARNING, "a class with few examples (under 5, or under 10% of the largest class)"),
    "unused-class": (WARNING, "a class in the class list that no sample uses"),
    "class-missing-from-split": (WARNING, "a class present in the dataset but absent from one of its splits"),
    "exif-rotated": (INFO, "the image was stored upright from an EXIF-rotated original"),
}

EDGE = 0.5  # pixels a box or point may pass the image border before it counts as outside
RARE_MIN = 5
RARE_FRACTION = 0.1


@dataclass
class Finding:
    """One problem (or note) about one sample, or about the whole dataset when `sample` is None."""

    code: str
    sample: str | None
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> str:
        return CHECKS[self.code][0]

    def to_json(self) -> dict:
        out: dict[str, Any] = {"level": self.level, "code": self.code, "sample": self.sample, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class CheckReport:
    """Findings plus class counts of one dataset."""

    dataset: str
    task: str
    samples: int
    findings: list[Finding]
    class_counts: dict[str, dict[str, int]]  # class -> split ("unsplit" for None) -> instances
    images_checked: bool = True

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def has_errors(self) -> bool:
        return any(f.level == ERROR for f in self.findings)

    def by_code(self) -> dict[str, list[Finding]]:
        """Findings grouped by code, in the order of `CHECKS`."""
        groups: dict[str, list[Finding]] = {}
        for code in CHECKS:
            hits = [f for f in self.findings if f.code == code]
            if hits:
                groups[code] = hits
        return groups

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "task": self.task,
            "samples": self.samples,
            "images_checked": self.images_checked,
            "summary": {level: self.count(level) for level in LEVELS},
            "checks": {code: {"level": CHECKS[code][0], "count": len(hits), "description": CHECKS[code][1]}
                       for code, hits in self.by_code().items()},
            "classes": self.class_counts,
            "findings": [f.to_json() for f in self.findings],
        }


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" if float(v).is_integer() else f"{v:.1f}" for v in values) + "]"


# --------------------------------------------------------------------------------------------
# Per-sample checks
# --------------------------------------------------------------------------------------------


def check_objects(sample: Sample) -> list[Finding]:
    """Geometry checks of one sample's objects against its width and height (no file access)."""
    out: list[Finding] = []
    w, h = sample.width, sample.height

    def add(code: str, message: str, **detail: Any) -> None:
        out.append(Finding(code, sample.id, message, detail))

    objs = sample.objects or []
    for i, obj in enumerate(objs):
        where = f"objects[{i}] ({obj.label})"
        if obj.bbox is not None:
            x1, y1, x2, y2 = obj.bbox
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                add("degenerate-box", f"{where}: box {_fmt(obj.bbox)} has no area", object=i, bbox=obj.bbox)
            elif min(x2 - x1, y2 - y1) < 2:
                add("tiny-box", f"{where}: box {_fmt(obj.bbox)} is {x2 - x1:.1f}x{y2 - y1:.1f} px", object=i,
                    bbox=obj.bbox)
            if x1 < -EDGE or y1 < -EDGE or x2 > w + EDGE or y2 > h + EDGE:
                add("box-outside-image", f"{where}: box {_fmt(obj.bbox)} extends beyond the {w}x{h} image",
                    object=i, bbox=obj.bbox)
        for r, ring in enumerate(obj.polygon or []):
            if len(ring) < 3 or abs(signed_ring_area(ring)) < 1e-6:
                add("degenerate-polygon", f"{where}: polygon ring {r} has {len(ring)} points and area "
                    f"{abs(signed_ring_area(ring)):g}", object=i, ring=r)
            far = [p for p in ring if p[0] < -EDGE or p[1] < -EDGE or p[0] > w + EDGE or p[1] > h + EDGE]
            if far:
                add("polygon-outside-image", f"{where}: {len(far)} polygon points beyond the {w}x{h} image, "
                    f"e.g. {_fmt(far[0])}", object=i, ring=r)
        if obj.polyline is not None and len(obj.polyline) < 2:
            add("degenerate-polyline", f"{where}: line has {len(obj.polyline)} points", object=i)
        for k, kp in enumerate(obj.keypoints or []):
            visible = len(kp) < 3 or kp[2] != 0
            if visible and (kp[0] < -EDGE or kp[1] < -EDGE or kp[0] > w + EDGE or kp[1] > h + EDGE):
                add("keypoint-outside-image", f"{where}: keypoint {k} {_fmt(kp[:2])} beyond the {w}x{h} image",
                    object=i, keypoint=k)
        if obj.mask is not None:
            _check_mask(obj, i, where, sample, add)
    boxes = [(i, o) for i, o in enumerate(objs) if o.bbox is not None]
    if len(boxes) <= 500:  # quadratic; images with thousands of boxes are skipped
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                (i, oa), (j, ob) = boxes[a], boxes[b]
                if oa.label == ob.label and bbox_iou(oa.bbox, ob.bbox) > 0.95:
                    add("duplicate-box", f"objects[{i}] and objects[{j}] ({oa.label}) overlap with IoU "
                        f"{bbox_iou(oa.bbox, ob.bbox):.2f}", objects=[i, j])
    return out


def _check_mask(obj: Obj, i: int, where: str, sample: Sample, add) -> None:
    mask = obj.mask or {}
    size = mask.get("size")
    if list(size or []) != [sample.height, sample.width]:
        add("bad-mask", f"{where}: mask size {size} differs from the image's [h, w] = "
            f"[{sample.height}, {sample.width}]", object=i)
        return
    counts = mask.get("counts")
    if isinstance(counts, list):
        total = sum(int(c) for c in counts)
        if total != sample.height * sample.width:
            add("bad-mask", f"{where}: mask run lengths add up to {total}, expected {sample.height * sample.width}",
                object=i)
        elif sum(int(c) for c in counts[1::2]) == 0:
            add("empty-mask", f"{where}: mask has no pixels set", object=i)


def sample_findings(s: Sample) -> list[Finding]:
    """Every check of one sample's record alone (its objects, its labels, its stage notes): no file
    access, no other sample. `check_dataset` runs it on every sample; `pipeline view` indexes it."""
    findings = check_objects(s)
    if s.meta.get("truncated") is True:
        findings.append(Finding("truncated-image", s.id, "the imported file was cut short; stored restored "
                                "from the rows that decode"))
    orientation = s.meta.get("exif_orientation")
    if orientation not in (None, 1):
        findings.append(Finding("exif-rotated", s.id, f"stored upright from EXIF orientation {orientation}"))
    assumed = s.meta.get("exif_frame")
    if isinstance(assumed, str) and assumed.startswith("assumed"):
        findings.append(Finding("exif-ambiguous", s.id, f"EXIF orientation {orientation}: the labels' frame "
                                f"could not be told from the declared size ({assumed})"))
    has_label = s.label is not None or bool(s.soft_label)
    if not has_label and not s.objects:
        findings.append(Finding("no-annotations", s.id, "no objects and no image label"))
    return findings


def check_image(dataset: Dataset, sample: Sample) -> tuple[list[Finding], str | None]:
    """Read and decode one sample's image. Returns its findings and the sha256 of its bytes (None if unread)."""
    from pipeline.core.images import exif_orientation, open_image_restoring
    from pipeline.core.paths import sha256_bytes

    out: list[Finding] = []
    try:
        data = dataset.read_image_bytes(sample)
    except DataError as err:
        if sample.pack is None:
            return [Finding("missing-image", sample.id, f"{sample.image} does not exist")], None
        return [Finding("missing-image", sample.id, f"{sample.image} (in {sample.pack['file']}): {err}")], None
    except OSError as exc:
        return [Finding("unreadable-image", sample.id, f"{sample.image}: {exc.strerror}")], None
    digest = sha256_bytes(data)
    if sample.sha256 and digest != sample.sha256:
        out.append(Finding("hash-mismatch", sample.id,
                           f"{sample.image}: sha256 {digest[:12]}… differs from the recorded {sample.sha256[:12]}…"))
    try:
        img, truncated = open_image_restoring(data, sample.image)
    except DataError as err:
        out.append(Finding("unreadable-image", sample.id, str(err)))
        return out, digest
    if truncated:
        out.append(Finding("truncated-image", sample.id, f"{sample.image} is cut short; the rows that decode are "
                                                         "kept, the rest is filled in"))
    if img.size != (sample.width, sample.height):
        out.append(Finding("size-mismatch", sample.id,
                           f"{sample.image} is {img.size[0]}x{img.size[1]}, the sample says "
                           f"{sample.width}x{sample.height}", {"file": list(img.size),
                                                                "sample": [sample.width, sample.height]}))
    orientation = exif_orientation(img)
    if orientation != 1:
        out.append(Finding("exif-in-stored-image", sample.id,
                           f"{sample.image} carries EXIF orientation {orientation}"))
    return out, digest


def check_dataset(
    dataset: Dataset,
    *,
    images: bool = True,
    rare_min: int = RARE_MIN,
    rare_fraction: float = RARE_FRACTION,
    progress=None,
) -> CheckReport:
    """Run every check on `dataset`. `images=False` skips reading image files (labels only)."""
    findings: list[Finding] = []
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = {c: {} for c in dataset.classes}
    iterator = progress(dataset.samples) if progress else dataset.samples
    for s in iterator:
        if images:
            found, digest = check_image(dataset, s)
            findings.extend(found)
        else:
            digest = s.sha256 or None
        if digest:
            by_hash[digest].append(s)
        findings.extend(sample_findings(s))
        count_instances(s, counts)
    findings.extend(duplicate_findings(by_hash))
    splits = sorted({s.split for s in dataset.samples if s.split})
    findings.extend(class_findings(counts, dataset.classes, splits, rare_min, rare_fraction))
    order = {code: k for k, code in enumerate(CHECKS)}
    findings.sort(key=lambda f: (order[f.code], natural_key(f.sample or "")))
    return CheckReport(dataset=str(dataset.root), task=dataset.task, samples=len(dataset.samples),
                       findings=findings, class_counts=counts, images_checked=images)


def duplicate_findings(by_hash: dict[str, list[Sample]]) -> list[Finding]:
    """Duplicate images, leakage across splits and conflicting labels, from samples grouped by image hash."""
    out: list[Finding] = []
    for digest, group in sorted(by_hash.items(), key=lambda kv: kv[1][0].id):
        if len(group) < 2:
            continue
        ids = [s.id for s in group]
        splits = sorted({s.split for s in group if s.split})
        first = ids[0]
        others = ", ".join(ids[1:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
        if len(splits) > 1:
            out.append(Finding("split-leakage", first, f"same image as {others}, across splits {', '.join(splits)}",
                               {"samples": ids, "splits": splits, "sha256": digest}))
        else:
            out.append(Finding("duplicate-image", first, f"same image as {others}", {"samples": ids, "sha256": digest}))
        labels = sorted({s.label for s in group if s.label is not None})
        if len(labels) > 1:
            out.append(Finding("conflicting-labels", first, f"copies labelled {', '.join(labels)}",
                               {"samples": ids, "labels": labels}))
    return out


def count_instances(s: Sample, counts: dict[str, dict[str, int]]) -> None:
    """Add one sample's class instances (its label, its soft label's other classes, each object)
    to `counts` (class -> split, "unsplit" for none -> instances)."""
    split = s.split or "unsplit"
    names: list[str] = []
    if s.label is not None:
        names.append(s.label)
    names.extend(k for k, v in (s.soft_label or {}).items() if v > 0 and k != s.label)
    names.extend(o.label for o in s.objects or [])
    for name in names:
        per = counts.setdefault(name, {})
        per[split] = per.get(split, 0) + 1


def class_findings(counts: dict[str, dict[str, int]], classes: list[str], splits: list[str],
                   rare_min: int = RARE_MIN, rare_fraction: float = RARE_FRACTION) -> list[Finding]:
    """Rare, unused and split-missing classes from `count_instances`' counts; `splits` are the
    splits the dataset uses."""
    out: list[Finding] = []
    totals = {c: sum(per.values()) for c, per in counts.items()}
    largest = max(totals.values(), default=0)
    threshold = max(rare_min, math.ceil(rare_fraction * largest))
    for name in classes:
        n = totals.get(name, 0)
        if n == 0:
            out.append(Finding("unused-class", None, f"class {name!r} has no examples"))
            continue
        if n < threshold:
            out.append(Finding("rare-class", None, f"class {name!r} has {n} examples (threshold {threshold})",
                               {"class": name, "count": n}))
        if len(splits) > 1:
            missing = [sp for sp in splits if not counts[name].get(sp)]
            if missing:
                out.append(Finding("class-missing-from-split", None,
                                   f"class {name!r} has no examples in {', '.join(missing)}",
                                   {"class": name, "splits": missing}))
    return out


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _split_columns(report: CheckReport) -> list[str]:
    names = {sp for per in report.class_counts.values() for sp in per}
    return [sp for sp in ("train", "val", "test", "unsplit") if sp in names]


def render_table(report: CheckReport, examples: int = 3) -> str:
    """The terminal report: one row per check that found something, then class counts by split."""
    lines: list[str] = []
    groups = report.by_code()
    if groups:
        width = max(len(code) for code in groups)
        lines.append(f"{'level':<8} {'check':<{width}} {'count':>6}  example")
        for code, hits in groups.items():
            level = CHECKS[code][0]
            first = hits[0]
            example = (f"{first.sample}: " if first.sample else "") + first.message
            lines.append(f"{level:<8} {code:<{width}} {len(hits):>6}  {example}")
            for extra in hits[1:examples]:
                text = (f"{extra.sample}: " if extra.sample else "") + extra.message
                lines.append(f"{'':<8} {'':<{width}} {'':>6}  {text}")
            if len(hits) > examples:
                lines.append(f"{'':<8} {'':<{width}} {'':>6}  ... {len(hits) - examples} more (--json for all)")
    else:
        lines.append("no problems found")
    cols = _split_columns(report)
    if report.class_counts:
        lines.append("")
        cw = max(len("class"), *(len(c) for c in report.class_counts))
        lines.append(f"{'class':<{cw}} " + " ".join(f"{c:>8}" for c in cols) + f" {'total':>8}")
        for name, per in report.class_counts.items():
            total = sum(per.values())
            lines.append(f"{name:<{cw}} " + " ".join(f"{per.get(c, 0):>8}" for c in cols) + f" {total:>8}")
    return "\n".join(lines)
