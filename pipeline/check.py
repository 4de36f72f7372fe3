"""Label checks: what is wrong with a dataset before it is trained on.

`check_dataset` reads every image once (bytes hashed, pixels decoded) and every label, and returns
a `CheckReport`: a list of findings, each with a level (error, warning, info), a check code, the
sample it concerns and a one-line message, plus per-class counts by split. The codes and their
levels are listed in `CHECKS`; `pipeline check --strict` fails when any error-level finding exists.
"""

from __future__ import annotations

import collections
import itertools
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.core.dataset import Dataset, Obj, Sample, is_streamed
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
            out["detail"] = {k: list(v) if isinstance(v, RowIds) else v for k, v in self.detail.items()}
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


@dataclass(frozen=True)
class ImageRead:
    """What reading and decoding one image file found, whichever sample names it."""

    missing: str | None = None  # why it could not be read (DataError text), or None
    strerror: str | None = None  # an OSError's text
    digest: str | None = None  # sha256 of its bytes
    error: str | None = None  # why it did not decode
    size: tuple[int, int] | None = None
    truncated: bool = False
    orientation: int = 1


def read_image(dataset: Dataset, sample: Sample) -> ImageRead:
    """Read, hash and decode `sample`'s image once."""
    from pipeline.core.images import exif_orientation, open_image_restoring
    from pipeline.core.paths import sha256_bytes

    try:
        data = dataset.read_image_bytes(sample)
    except DataError as err:
        return ImageRead(missing=str(err))
    except OSError as exc:
        return ImageRead(strerror=str(exc.strerror))
    digest = sha256_bytes(data)
    try:
        img, truncated = open_image_restoring(data, sample.image)
    except DataError as err:
        return ImageRead(digest=digest, error=str(err))
    return ImageRead(digest=digest, size=img.size, truncated=truncated, orientation=exif_orientation(img))


def image_findings(sample: Sample, read: ImageRead) -> list[Finding]:
    """The findings of one sample's image, from what reading it found (`read_image`)."""
    if read.missing is not None:
        if sample.pack is None:
            return [Finding("missing-image", sample.id, f"{sample.image} does not exist")]
        return [Finding("missing-image", sample.id, f"{sample.image} (in {sample.pack['file']}): {read.missing}")]
    if read.strerror is not None:
        return [Finding("unreadable-image", sample.id, f"{sample.image}: {read.strerror}")]
    out: list[Finding] = []
    digest = read.digest or ""
    if sample.sha256 and digest != sample.sha256:
        out.append(Finding("hash-mismatch", sample.id,
                           f"{sample.image}: sha256 {digest[:12]}… differs from the recorded {sample.sha256[:12]}…"))
    if read.error is not None:
        out.append(Finding("unreadable-image", sample.id, read.error))
        return out
    if read.truncated:
        out.append(Finding("truncated-image", sample.id, f"{sample.image} is cut short; the rows that decode are "
                                                         "kept, the rest is filled in"))
    size = read.size or (0, 0)
    if size != (sample.width, sample.height):
        out.append(Finding("size-mismatch", sample.id,
                           f"{sample.image} is {size[0]}x{size[1]}, the sample says "
                           f"{sample.width}x{sample.height}", {"file": list(size),
                                                                "sample": [sample.width, sample.height]}))
    if read.orientation != 1:
        out.append(Finding("exif-in-stored-image", sample.id,
                           f"{sample.image} carries EXIF orientation {read.orientation}"))
    return out


def check_image(dataset: Dataset, sample: Sample) -> tuple[list[Finding], str | None]:
    """Read and decode one sample's image. Returns its findings and the sha256 of its bytes (None if unread)."""
    read = read_image(dataset, sample)
    return image_findings(sample, read), read.digest


class RowIds(Sequence):
    """The ids of some samples of a check, looked up when read (a report on ten million samples
    keeps their ids once, in `_Ids`, not once per finding). Compares equal to a list of them."""

    def __init__(self, store: _Ids, rows: np.ndarray) -> None:
        self._store = store
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._store[int(r)] for r in self._rows[index]]
        return self._store[int(self._rows[index])]

    def __iter__(self):
        return (self._store[int(r)] for r in self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))


class _Ids:
    """Sample ids, UTF-8 in one buffer with their offsets: 10 bytes or so an id instead of ~60."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("q")

    def append(self, sample_id: str) -> None:
        self._data += sample_id.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def extend(self, ids) -> None:
        """Append an Arrow string array of ids."""
        for sid in ids.to_pylist():
            self.append(sid)

    def __getitem__(self, row: int) -> str:
        start = self._ends[row - 1] if row else 0
        return self._data[start:self._ends[row]].decode("utf-8", "surrogatepass")

    def __len__(self) -> int:
        return len(self._ends)


_CACHED_IMAGES = 1 << 16  # image reads kept (a small image pool under many samples is read once)
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2, None: -1}
_SPLIT_NAMES = {0: "train", 1: "val", 2: "test", -1: None}


class _Checker:
    """The state of one `check_dataset` run, kept compact: findings, each sample's id, content
    group, split and label as a few bytes, and the reads of recently seen image files."""

    def __init__(self, dataset: Dataset, images: bool) -> None:
        self.dataset = dataset
        self.images = images
        self.findings: list[Finding] = []
        self.ids = _Ids()
        self.group = array("i")  # content group (sha256 of the bytes read, or recorded), -1 none
        self.split = array("b")
        self.label = array("i")  # index into `labels`, -1 none
        self.digests: dict[str, int] = {}
        self.labels: dict[str, int] = {}
        self.counts: dict[str, dict[str, int]] = {c: {} for c in dataset.classes}
        self.reads: dict[tuple, ImageRead] = {}

    def read(self, sample: Sample) -> ImageRead:
        pack = sample.pack
        key = (sample.image,) if pack is None else (sample.image, pack.get("file"), pack.get("offset"),
                                                     pack.get("length"))
        found = self.reads.get(key)
        if found is None:
            if len(self.reads) >= _CACHED_IMAGES:
                self.reads.clear()
            found = self.reads[key] = read_image(self.dataset, sample)
        return found

    def _row(self, sample_id: str, digest: str | None, split: str | None, label: str | None) -> None:
        self.ids.append(sample_id)
        self.group.append(self.digests.setdefault(digest, len(self.digests)) if digest else -1)
        self.split.append(_SPLIT_CODES[split])
        self.label.append(-1 if label is None else self.labels.setdefault(label, len(self.labels)))

    def add(self, s: Sample) -> None:
        """Every check of one sample."""
        findings = self.findings
        if self.images:
            read = self.read(s)
            findings.extend(image_findings(s, read))
            digest = read.digest
        else:
            digest = s.sha256 or None
        self._row(s.id, digest, s.split, s.label)
        findings.extend(sample_findings(s))
        count_instances(s, self.counts)

    def add_plain(self, batch: dict) -> None:
        """The checks of a batch of plain rows (`core.dataset.columns.plain_rows`: an image label,
        no objects, soft labels or stage records): per distinct image of the batch its read, and
        per sample only what differs from the common case."""
        import pyarrow.compute as pc

        classes = self.dataset.classes
        ids, images, shas = batch["id"], batch["image"], batch["sha"]
        width, height = batch["width"], batch["height"]
        split, label = batch["split"], batch["label"]
        n = len(split)
        digests: list[str | None]
        odd = np.zeros(n, dtype=bool)  # rows whose image gives a finding
        if self.images:
            encoded = pc.dictionary_encode(images)
            paths = encoded.dictionary.to_pylist()
            which = encoded.indices.to_numpy()
            reads = [self.read(Sample(id="", image=p)) for p in paths]
            digests = [r.digest for r in reads]
            fine = np.array([r.missing is None and r.strerror is None and r.error is None and not r.truncated
                             and r.orientation == 1 for r in reads], dtype=bool)
            good_w = np.array([r.size[0] if r.size else -1 for r in reads], dtype=np.int64)
            good_h = np.array([r.size[1] if r.size else -1 for r in reads], dtype=np.int64)
            odd |= ~fine[which] | (good_w[which] != width) | (good_h[which] != height)
            expected = pc.take(pc.cast(_arrow_strings(digests), "string"), encoded.indices)
            odd |= ~pc.fill_null(pc.equal(shas, expected), False).to_numpy(zero_copy_only=False)
            row_digest = [self.digests.setdefault(d, len(self.digests)) if d else -1 for d in digests]
            group = np.asarray(row_digest, dtype=np.int64)[which] if n else np.zeros(0, dtype=np.int64)
        else:
            encoded = pc.dictionary_encode(shas)
            gids = [self.digests.setdefault(d, len(self.digests)) for d in encoded.dictionary.to_pylist()]
            group = np.asarray(gids, dtype=np.int64)[encoded.indices.to_numpy()]
        unlabelled = label < 0
        for row in np.flatnonzero(odd | unlabelled).tolist():
            sid = ids[row].as_py()
            if odd[row]:
                sample = Sample(id=sid, image=images[row].as_py(), width=int(width[row]), height=int(height[row]),
                                sha256=shas[row].as_py())
                self.findings.extend(image_findings(sample, reads[which[row]]))
            if unlabelled[row]:
                self.findings.append(Finding("no-annotations", sid, "no objects and no image label"))
        self.ids.extend(ids)
        self.group.extend(group.tolist())
        self.split.extend(split.tolist())
        names = [self.labels.setdefault(c, len(self.labels)) for c in classes]
        lookup = np.asarray(names + [-1], dtype=np.int64)
        self.label.extend(lookup[np.where(label < 0, len(classes), label)].tolist())
        pairs = label.astype(np.int64) * 4 + (split.astype(np.int64) + 1)
        keys, first, counts = np.unique(pairs, return_index=True, return_counts=True)
        for key, _, count in sorted(zip(keys.tolist(), first.tolist(), counts.tolist(), strict=True),
                                    key=lambda t: t[1]):
            cls, code = divmod(key, 4)
            if cls < 0:
                continue
            per = self.counts.setdefault(classes[cls], {})
            name = _SPLIT_NAMES[code - 1] or "unsplit"
            per[name] = per.get(name, 0) + count

    def report(self, rare_min: int, rare_fraction: float) -> CheckReport:
        dataset = self.dataset
        findings = self.findings
        findings.extend(self._duplicates())
        splits = sorted({_SPLIT_NAMES[c] for c in set(self.split.tolist()) if c >= 0})
        findings.extend(class_findings(self.counts, dataset.classes, splits, rare_min, rare_fraction))
        order = {code: k for k, code in enumerate(CHECKS)}
        findings.sort(key=lambda f: (order[f.code], natural_key(f.sample or "")))
        return CheckReport(dataset=str(dataset.root), task=dataset.task, samples=len(self.ids),
                           findings=findings, class_counts=self.counts, images_checked=self.images)

    def _duplicates(self) -> list[Finding]:
        group = np.frombuffer(self.group, dtype=np.int32) if len(self.group) else np.zeros(0, dtype=np.int32)
        split = np.frombuffer(self.split, dtype=np.int8) if len(self.split) else np.zeros(0, dtype=np.int8)
        label = np.frombuffer(self.label, dtype=np.int32) if len(self.label) else np.zeros(0, dtype=np.int32)
        sizes = np.bincount(group[group >= 0], minlength=len(self.digests))
        if not (sizes > 1).any():
            return []
        order = np.argsort(group, kind="stable")
        ends = np.cumsum(sizes)
        skip = int((group < 0).sum())  # (rows without content sort first)
        names = {i: name for name, i in self.labels.items()}
        digests = list(self.digests)
        dups = [(self.ids[int(order[skip + ends[g] - sizes[g]])], g) for g in np.flatnonzero(sizes > 1).tolist()]
        out: list[Finding] = []
        for _, g in sorted(dups, key=lambda t: t[0]):
            rows = order[skip + ends[g] - sizes[g]: skip + ends[g]]
            ids = RowIds(self.ids, rows)
            splits = sorted({_SPLIT_NAMES[c] for c in np.unique(split[rows]).tolist() if c >= 0})
            labels = sorted({names[i] for i in np.unique(label[rows]).tolist() if i >= 0})
            out.extend(group_findings(digests[g], ids, splits, labels))
        return out


def _arrow_strings(values: list[str | None]):
    import pyarrow as pa

    return pa.array(values, type=pa.string())


def check_dataset(
    dataset: Dataset,
    *,
    images: bool = True,
    rare_min: int = RARE_MIN,
    rare_fraction: float = RARE_FRACTION,
    progress=None,
) -> CheckReport:
    """Run every check on `dataset`. `images=False` skips reading image files (labels only).

    Each image file is read, hashed and decoded once however many samples name it (the last 65,536
    files are remembered). A streamed dataset (`open_dataset`) is checked in memory that grows with
    the findings, not the samples: plain rows (`core.dataset.columns`) come from one DuckDB query
    and only the rows with something to report become samples."""
    checker = _Checker(dataset, images)
    if is_streamed(dataset):
        from pipeline.core.dataset.columns import NotPlain, plain_rows

        reads = checker.reads
        try:
            ticks = iter(progress(itertools.repeat(None, len(dataset.samples)))) if progress else None
            for batch in plain_rows(dataset.root, dataset.info, len(dataset.samples), ids=True, images=True):
                checker.add_plain(batch)
                if ticks is not None:
                    collections.deque(itertools.islice(ticks, len(batch["split"])), maxlen=0)
            return checker.report(rare_min, rare_fraction)
        except NotPlain:
            checker = _Checker(dataset, images)  # read sample by sample (the reads made so far kept)
            checker.reads = reads
    iterator = progress(dataset.samples) if progress else dataset.samples
    for s in iterator:
        checker.add(s)
    return checker.report(rare_min, rare_fraction)


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


def group_findings(digest: str, ids: Sequence[str], splits: list[str], labels: list[str]) -> list[Finding]:
    """The findings of one group of two or more samples whose images have the same bytes (`ids` in
    id order, the sorted `splits` and `labels` they use): a duplicate image, or leakage when the
    group spans splits, and conflicting labels."""
    first = ids[0]
    others = ", ".join(ids[1:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
    out: list[Finding] = []
    if len(splits) > 1:
        out.append(Finding("split-leakage", first, f"same image as {others}, across splits {', '.join(splits)}",
                           {"samples": ids, "splits": splits, "sha256": digest}))
    else:
        out.append(Finding("duplicate-image", first, f"same image as {others}", {"samples": ids, "sha256": digest}))
    if len(labels) > 1:
        out.append(Finding("conflicting-labels", first, f"copies labelled {', '.join(labels)}",
                           {"samples": ids, "labels": labels}))
    return out


def duplicate_findings(by_hash: dict[str, list[Sample]]) -> list[Finding]:
    """Duplicate images, leakage across splits and conflicting labels, from samples grouped by image hash."""
    out: list[Finding] = []
    for digest, group in sorted(by_hash.items(), key=lambda kv: kv[1][0].id):
        if len(group) < 2:
            continue
        out.extend(group_findings(digest, [s.id for s in group], sorted({s.split for s in group if s.split}),
                                  sorted({s.label for s in group if s.label is not None})))
    return out


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
