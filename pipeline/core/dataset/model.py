"""The dataset model: `Obj`, `Sample`, `DatasetInfo` and `Dataset`, and the names of the folder's parts.

Coordinates inside the package are absolute-pixel floats, boxes as ``[x1, y1, x2, y2]``
(x to the right, y down, the image spanning ``[0, width] x [0, height]``). Format modules convert
to and from their own conventions and nowhere else.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import DataError
from pipeline.core.packs import read_member
from pipeline.core.paths import link_or_copy

FORMAT_NAME = "pipeline-dataset"
FORMAT_VERSION = 1
TASKS = ("classification", "detection", "segmentation")
SPLITS = ("train", "val", "test")
DATASET_JSON = "dataset.json"
SAMPLES_JSONL = "samples.jsonl"
IMAGES_DIR = "images"


@dataclass
class Obj:
    """One labelled object. At least one geometry (bbox, polygon, keypoints, polyline, mask)."""

    label: str
    bbox: list[float] | None = None  # [x1, y1, x2, y2], absolute pixels
    polygon: list[list[list[float]]] | None = None  # rings, each a list of [x, y]; one instance
    keypoints: list[list[float]] | None = None  # [x, y, v], v as COCO: 0 absent, 1 hidden, 2 visible
    polyline: list[list[float]] | None = None  # open line (labelme line/linestrip), [x, y] points
    mask: dict | None = None  # full-image uncompressed COCO RLE: {"size": [h, w], "counts": [...]}
    weight: float | None = None  # e.g. Mixup's lambda for this box; absent means 1
    attributes: dict[str, Any] = field(default_factory=dict)  # difficult, truncated, iscrowd, ...
    score: float | None = None  # a model's confidence in this object (predictions); absent for labels

    def to_json(self) -> dict:
        out: dict[str, Any] = {"label": self.label}
        for key in ("bbox", "polygon", "keypoints", "polyline", "mask", "weight", "score"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.attributes:
            out["attributes"] = self.attributes
        return out

    def copy(self) -> Obj:
        """A deep copy (coordinates, mask and attributes not shared), far cheaper than `copy.deepcopy`."""

        def pts(points: list | None) -> list | None:
            return None if points is None else [list(p) for p in points]

        return Obj(
            label=self.label,
            bbox=None if self.bbox is None else list(self.bbox),
            polygon=None if self.polygon is None else [[list(p) for p in ring] for ring in self.polygon],
            keypoints=pts(self.keypoints),
            polyline=pts(self.polyline),
            mask=None if self.mask is None else {k: list(v) if isinstance(v, list) else v for k, v in self.mask.items()},
            weight=self.weight,
            attributes=copy.deepcopy(self.attributes) if self.attributes else {},
            score=self.score,
        )

    @classmethod
    def from_json(cls, data: dict) -> Obj:
        return cls(
            label=data["label"],
            bbox=data.get("bbox"),
            polygon=data.get("polygon"),
            keypoints=data.get("keypoints"),
            polyline=data.get("polyline"),
            mask=data.get("mask"),
            weight=data.get("weight"),
            attributes=dict(data.get("attributes") or {}),
            score=data.get("score"),
        )


def _objects_json(objects: list[Obj] | None) -> list[dict] | None:
    return None if objects is None else [o.to_json() for o in objects]


def _objects_from(data: list | None) -> list[Obj] | None:
    return None if data is None else [Obj.from_json(o) for o in data]


@dataclass
class Annotation:
    """One annotator's labels of a sample, kept beside the sample's own (Label Studio's several
    annotations per task). `label` and `objects` as on `Sample`; `time` as the tool wrote it;
    `source_id` the annotation's id in the tool."""

    annotator: str | None = None
    label: str | None = None
    objects: list[Obj] | None = None
    time: str | None = None
    source_id: str | int | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for key in ("annotator", "label"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.objects is not None:
            out["objects"] = _objects_json(self.objects)
        for key in ("time", "source_id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, data: dict) -> Annotation:
        return cls(annotator=data.get("annotator"), label=data.get("label"),
                   objects=_objects_from(data.get("objects")), time=data.get("time"),
                   source_id=data.get("source_id"))

    def labels(self) -> set[str]:
        return ({self.label} if self.label is not None else set()) | {o.label for o in self.objects or ()}


@dataclass
class Prediction:
    """One model's labels of a sample (pre-annotations to review): the model's version, its overall
    score, and `label` and/or `objects` (each object with its own `score` where the model gave one)."""

    model_version: str | None = None
    score: float | None = None
    label: str | None = None
    objects: list[Obj] | None = None
    source_id: str | int | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for key in ("model_version", "score", "label"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.objects is not None:
            out["objects"] = _objects_json(self.objects)
        if self.source_id is not None:
            out["source_id"] = self.source_id
        return out

    @classmethod
    def from_json(cls, data: dict) -> Prediction:
        return cls(model_version=data.get("model_version"), score=data.get("score"), label=data.get("label"),
                   objects=_objects_from(data.get("objects")), source_id=data.get("source_id"))

    def labels(self) -> set[str]:
        return ({self.label} if self.label is not None else set()) | {o.label for o in self.objects or ()}


@dataclass
class Sample:
    """One image and its labels. `image` is relative to the dataset folder."""

    id: str
    image: str = ""
    width: int = 0
    height: int = 0
    sha256: str = ""
    split: str | None = None
    label: str | None = None
    soft_label: dict[str, float] | None = None
    objects: list[Obj] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # stage records: augmentation params, EXIF flags, ...
    pack: dict[str, Any] | None = None  # {"file", "offset", "length"} when the image is a member of a pack
    annotations: list[Annotation] | None = None  # each annotator's own labels (optional; label/objects hold the chosen one)
    predictions: list[Prediction] | None = None  # models' labels to review (optional)

    def to_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "image": self.image}
        if self.pack is not None:
            out["pack"] = self.pack
        out.update(self.body_json())
        return out

    def body_json(self) -> dict:
        """Every field of `to_json` after the id, the image and the pack, in the same order: what a
        copy's record holds before it is known where (and whether in a pack) its image is stored."""
        out: dict[str, Any] = {
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "split": self.split,
            "label": self.label,
        }
        if self.soft_label is not None:
            out["soft_label"] = self.soft_label
        if self.objects is not None:
            out["objects"] = [o.to_json() for o in self.objects]
        if self.annotations is not None:
            out["annotations"] = [a.to_json() for a in self.annotations]
        if self.predictions is not None:
            out["predictions"] = [p.to_json() for p in self.predictions]
        if self.source:
            out["source"] = self.source
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, data: dict) -> Sample:
        objs = data.get("objects")
        anns = data.get("annotations")
        preds = data.get("predictions")
        return cls(
            id=data["id"],
            image=data["image"],
            width=data["width"],
            height=data["height"],
            sha256=data["sha256"],
            split=data.get("split"),
            label=data.get("label"),
            soft_label=data.get("soft_label"),
            objects=[Obj.from_json(o) for o in objs] if objs is not None else None,
            source=dict(data.get("source") or {}),
            meta=dict(data.get("meta") or {}),
            pack=dict(data["pack"]) if data.get("pack") is not None else None,
            annotations=[Annotation.from_json(a) for a in anns] if anns is not None else None,
            predictions=[Prediction.from_json(p) for p in preds] if preds is not None else None,
        )

    def labels(self) -> set[str]:
        """Every class name this sample refers to."""
        names: set[str] = set()
        if self.label is not None:
            names.add(self.label)
        if self.soft_label:
            names.update(self.soft_label)
        for obj in self.objects or ():
            names.add(obj.label)
        for other in (*(self.annotations or ()), *(self.predictions or ())):
            names |= other.labels()
        return names


def class_ids_for(classes: list[str], known: dict[str, int] | None) -> dict[str, int] | None:
    """The ids of `classes` given the ids a source declared (`known`, may name other classes too):
    each class keeps its known id unless an earlier class took it; a class without one gets the
    next id above every id given so far. None when nothing is known (ids are then positions)."""
    if not known:
        return None
    out: dict[str, int] = {}
    taken: set[int] = set()
    for name in classes:
        cid = known.get(name)
        if cid is not None and cid not in taken:
            out[name] = cid
            taken.add(cid)
    top = max(taken, default=-1)
    for name in classes:
        if name not in out:
            top += 1
            out[name] = top
    return {name: out[name] for name in classes}


@dataclass
class DatasetInfo:
    """The contents of dataset.json.

    `classes` is the class order training uses (a class's index in it is its output position).
    `class_ids` is the id each class had in the source (YOLO's names order, COCO's category ids),
    which exports write back; None (no ``class_ids`` in the file) means ids are positions."""

    task: str
    classes: list[str]
    lineage: list[dict] = field(default_factory=list)
    samples_sha256: str | None = None
    version: int = FORMAT_VERSION
    class_ids: dict[str, int] | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": self.version,
            "task": self.task,
            "classes": list(self.classes),
        }
        if self.class_ids is not None:
            out["class_ids"] = {c: self.class_ids[c] for c in self.classes}
        out["samples_sha256"] = self.samples_sha256
        out["lineage"] = self.lineage
        return out

    def ids(self) -> dict[str, int]:
        """Every class's id: the source's (`class_ids`) where recorded, else its position."""
        if self.class_ids is not None:
            return {c: self.class_ids[c] for c in self.classes}
        return {c: i for i, c in enumerate(self.classes)}


@dataclass
class Dataset:
    """A loaded dataset: its folder, its info and its samples (sorted by id)."""

    root: Path
    info: DatasetInfo
    samples: list[Sample]

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def class_ids(self) -> dict[str, int]:
        """Every class's id for exports: the source's own where recorded, else its position in `classes`."""
        return self.info.ids()

    def image_path(self, sample: Sample) -> Path:
        """The image's own file; for a packed sample, where it would be if the pack were unzipped
        (read packed images with `read_image_bytes`, `open_image` or `copy_image`)."""
        return self.root / sample.image

    def image_where(self, sample: Sample) -> str:
        """The image's location for messages: a path, or ``PACK:offset`` for a packed image."""
        if sample.pack is not None:
            return f"{self.root / sample.pack['file']}:{sample.pack['offset']}"
        return str(self.root / sample.image)

    def read_image_bytes(self, sample: Sample) -> bytes:
        """The encoded image (file or pack member)."""
        if sample.pack is not None:
            return read_member(self.root / sample.pack["file"], sample.pack["offset"], sample.pack["length"])
        try:
            with open(os.path.join(self.root, sample.image), "rb", buffering=0) as fh:  # hot in augment: no pathlib
                return fh.readall()
        except FileNotFoundError as exc:
            raise DataError(self.root / sample.image, "image missing",
                            fix="re-run the stage that wrote this dataset") from exc

    def open_image(self, sample: Sample, *, exif_transpose: bool = False):
        """The decoded image (a PIL image); errors name the file or pack."""
        from pipeline.core.images import open_image, open_image_bytes

        if sample.pack is not None:
            return open_image_bytes(self.read_image_bytes(sample), self.image_where(sample),
                                    exif_transpose=exif_transpose)
        return open_image(self.root / sample.image, exif_transpose=exif_transpose)

    def copy_image(self, sample: Sample, dest: str | os.PathLike, *, make_parent: bool = True) -> None:
        """Put the image at `dest` as a file: hard-linked (or copied) from a file, written from a pack."""
        dest = Path(dest)
        if sample.pack is None:
            link_or_copy(self.root / sample.image, dest, make_parent=make_parent)
            return
        if make_parent:
            dest.parent.mkdir(parents=True, exist_ok=True)
        data = self.read_image_bytes(sample)
        dest.unlink(missing_ok=True)
        with open(dest, "wb") as fh:
            fh.write(data)

    def split(self, name: str | None) -> list[Sample]:
        """Samples of one split (`None` for all)."""
        if name is None:
            return list(self.samples)
        return [s for s in self.samples if s.split == name]

    def splits(self) -> dict[str | None, int]:
        counted = getattr(self.samples, "split_counts", None)  # (samples read when first used: known already)
        if counted is not None:
            return counted()
        counts: dict[str | None, int] = {}
        for s in self.samples:
            counts[s.split] = counts.get(s.split, 0) + 1
        return counts

    @property
    def content_hash(self) -> str:
        """Identifies the dataset's content: classes, task and every sample (image hashes included)."""
        from pipeline.core.dataset.io import content_hash  # (io reads the model: imported when used)

        return content_hash(self.root)

    def __len__(self) -> int:
        return len(self.samples)
