"""Single-sample ops on albumentations 2.0.8 (MIT; its AGPL successor is not used).

Each recipe op becomes one albumentations transform (named after the op, so the parameters it
drew can be recorded under the op's name). One `A.Compose` per (recipe, channels, targets)
draws every parameter once from the injected generator and applies the same parameters to the
image, the boxes, the masks and the points. Polygon vertices travel as keypoints and are clipped
to the image afterwards (Sutherland-Hodgman); boxes are clipped by albumentations and dropped
below the recipe's visibility and minimum area; keypoints that leave the image become
``[0, 0, 0]`` (COCO: not labelled).
"""

from __future__ import annotations

import copy
import random
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.augment import kernels as K
from pipeline.core.dataset import Obj
from pipeline.core.geometry import bbox_area, clip_bbox_to_rect, clip_ring, polygon_bbox, ring_area
from pipeline.core.rng import StreamRandom

if TYPE_CHECKING:
    from pipeline.augment.recipe import OpConfig, Recipe


@dataclass
class Item:
    """What augmentation works on: pixels, an image-level soft label and objects.

    `soft` is a probability vector over the dataset's classes (classification), `objects` the
    sample's objects (detection/segmentation); both `None` when absent.
    """

    image: np.ndarray
    soft: np.ndarray | None = None
    objects: list[Obj] | None = None
    params: list[dict] = field(default_factory=list)  # what each applied op drew, in order

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def copy(self) -> Item:
        return Item(self.image.copy(), None if self.soft is None else self.soft.copy(),
                    None if self.objects is None else [o.copy() for o in self.objects], copy.deepcopy(self.params))


def present_targets(objects_lists: list[list[Obj] | None], has_label: bool) -> set[str]:
    """The label targets found in a dataset's objects."""
    found = {"label"} if has_label else set()
    for objs in objects_lists:
        for o in objs or ():
            if o.bbox is not None:
                found.add("boxes")
            if o.polygon is not None:
                found.add("polygons")
            if o.keypoints is not None:
                found.add("keypoints")
            if o.mask is not None:
                found.add("masks")
            if o.polyline is not None:
                found.add("polylines")
    return found


# --------------------------------------------------------------------------------------------
# Recipe op -> albumentations transform
# --------------------------------------------------------------------------------------------

def build_transform(op: OpConfig, channels: int, *, stock: bool = False) -> Any:
    """The albumentations transform for one recipe op (always applied: the recipe's `p` is given),
    built by the op's registry entry; None when the op has nothing to do for `channels`.

    Ops with a drop-in (`Op.fast`) get the cheaper class of `pipeline.augment.albu` (same draws,
    same pixels), unless `stock` (the benchmark's reference loop asks for albumentations' own).
    """
    from pipeline.augment import albu

    return op.spec.offline(op, channels, albu.transforms(stock))


_SKIP = frozenset({"shape", "interpolation", "mask_interpolation", "fill_mask", "fill", "bbox_matrix", "matrix_bbox",
                   "output_shape"})


def _record(name: str, params: dict, skip: frozenset[str] = frozenset()) -> dict:
    """The JSON-able part of what a transform drew (big arrays such as noise maps are left out,
    and what the transform's `unrecorded` names)."""
    out: dict[str, Any] = {"op": name}
    for key in sorted(params):
        if key in _SKIP or key in skip:
            continue
        value = params[key]
        kind = type(value)
        if kind is float:
            out[key] = round(value, 6) + 0.0  # + 0.0: no "-0.0" in records
        elif kind is int or kind is str or kind is bool:
            out[key] = value
        else:
            value = _jsonable(value)
            if value is not None:
                out[key] = value
    return out


def _round_floats(values: list) -> list:
    return [_round_floats(v) if type(v) is list else round(v, 6) + 0.0 for v in values]


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return round(value, 6) + 0.0
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if kind is np.ndarray:
        if value.size > 16:
            return None
        if value.dtype.kind == "f":
            return _round_floats(value.tolist())
        return _jsonable(value.tolist())
    if isinstance(value, np.floating):
        return round(float(value), 6) + 0.0
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            kind = type(v)
            if kind is float:
                out[str(k)] = round(v, 6) + 0.0
            elif kind is int or kind is str or kind is bool:
                out[str(k)] = v
            else:
                v = _jsonable(v)
                if v is not None:
                    out[str(k)] = v
        return out
    if isinstance(value, (list, tuple)):
        items = [_jsonable(v) for v in value]
        return None if any(v is None for v in items) or len(items) > 16 else items
    if isinstance(value, (int, float, str)):  # subclasses (IntEnum, ...)
        return round(float(value), 6) if isinstance(value, float) else value
    return None


# --------------------------------------------------------------------------------------------
# The pipeline of single-sample ops
# --------------------------------------------------------------------------------------------


_NONE: frozenset[str] = frozenset()


class SingleOps:
    """The single-sample part of a recipe, for one channel count and one set of targets.

    The transforms run in recipe order, in segments: transforms that move geometry go through an
    `A.Compose` carrying the box and keypoint processors (clipping and visibility filtering after
    every transform, as albumentations does); runs of pixel-only transforms, and everything when
    the sample has nothing but an image and a label, are driven directly: the same probability
    draw, `get_params`, `get_params_dependent_on_data` and `apply` calls `A.Compose` would make,
    without its per-call validation and bookkeeping (on a 28x28 digit those cost more than the
    pixels).
    """

    def __init__(self, recipe: Recipe, channels: int, targets: set[str]) -> None:
        from pipeline.augment import albu

        A = albu.load()

        self.recipe = recipe
        self.channels = channels
        self.targets = set(targets)
        transforms = [t for t in (build_transform(op, channels) for op in recipe.single) if t is not None]
        self.empty = not transforms
        self.transforms = transforms
        self._unrecorded = {type(t).__name__: t.unrecorded for t in albu.leaves(albu.plan(transforms))
                            if hasattr(t, "unrecorded")}
        self._py_random: random.Random | None = None
        self._rng: np.random.Generator | None = None
        kwargs: dict[str, Any] = {}
        if "boxes" in targets:
            kwargs["bbox_params"] = A.BboxParams(format="pascal_voc", min_visibility=recipe.visibility,
                                                 min_area=recipe.min_area, label_fields=["box_ids"], clip=True)
        if targets & {"polygons", "keypoints"}:
            kwargs["keypoint_params"] = A.KeypointParams(format="xy", remove_invisible=False, label_fields=["point_ids"])
        moved = self.moved = bool(targets & {"boxes", "polygons", "keypoints", "masks"})
        if not moved:
            for t in transforms:  # no boxes travel: the cheap drop-ins skip the box-centred matrix
                if hasattr(t, "box_matrix"):
                    t.box_matrix = False
        self.segments: list[tuple[str, Any]] = []  # ("direct", [transforms]) or ("compose", A.Compose)
        for t in transforms:
            kind = "compose" if moved and not albu.is_image_only(t) else "direct"
            if self.segments and self.segments[-1][0] == kind:
                self.segments[-1][1].append(t)
            else:
                self.segments.append((kind, [t]))
        with warnings.catch_warnings():  # a recipe of pixel-only ops leaves boxes and points as they are
            warnings.filterwarnings("ignore", message="Got processor for")
            self.segments = [(kind, albu.Compose(ts, save_applied_params=True, **kwargs) if kind == "compose"
                              else albu.plan(ts)) for kind, ts in self.segments]
        self._run_direct = albu.run_direct

    def __call__(self, item: Item, rng: np.random.Generator) -> Item:
        """A new augmented item; `item` is not modified. Draws from `rng` only."""
        if self.empty:
            return item.copy()
        if rng is not self._rng:  # the stage re-seeds one generator per copy: set it once
            self._py_random = StreamRandom(rng)
            for t in self.transforms:
                t.set_random_state(rng, self._py_random)
            for kind, seg in self.segments:
                if kind == "compose":
                    seg.set_random_state(rng, self._py_random)
            self._rng = rng
        data: dict[str, Any] = {"image": item.image}
        objs = item.objects
        if not self.moved:  # every segment is direct: A.Compose's own draw against its p (1.0), as it would
            self._py_random.random()
        h, w = item.height, item.width
        if "boxes" in self.targets:
            boxes, box_ids = [], []
            for i, o in enumerate(objs or ()):
                if o.bbox is not None:
                    b = clip_bbox_to_rect(o.bbox, (0, 0, w, h))
                    if bbox_area(b) > 0:
                        boxes.append(b)
                        box_ids.append(i)
            data["bboxes"] = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            data["box_ids"] = box_ids
        if self.targets & {"polygons", "keypoints"}:
            pts, ids = [], []
            for i, o in enumerate(objs or ()):
                for r, ring in enumerate(o.polygon or ()):
                    for j, p in enumerate(ring):
                        pts.append(p[:2])
                        ids.append((i, 1, r, j))
                for j, kp in enumerate(o.keypoints or ()):
                    pts.append(kp[:2])
                    ids.append((i, 0, 0, j))
            data["keypoints"] = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
            data["point_ids"] = list(range(len(ids)))
            self._point_refs = ids
        mask_ids = [i for i, o in enumerate(objs or ()) if o.mask is not None]
        if mask_ids:
            data["masks"] = [K.rle_decode(objs[i].mask) for i in mask_ids]
        applied = []
        for kind, seg in self.segments:
            if kind == "direct":
                self._run_direct(seg, data, applied)
            else:
                data = seg(**data)
                applied.extend(data.pop("applied_transforms", ()))
        result = Item(data["image"], None if item.soft is None else item.soft.copy(), None, list(item.params))
        result.params.extend(_record(name, params, self._unrecorded.get(name, _NONE)) for name, params in applied)
        if objs is not None:
            result.objects = self._objects(objs, data, mask_ids, item, result) if self.moved else [o.copy() for o in objs]
        return result

    def _objects(self, objs: list[Obj], out: dict, mask_ids: list[int], before: Item, after: Item) -> list[Obj]:
        w, h = after.width, after.height
        rect = (0.0, 0.0, float(w), float(h))
        new = [o.copy() for o in objs]
        alive = [True] * len(objs)
        if "boxes" in self.targets:
            kept = {int(i): [float(v) for v in b[:4]] for b, i in zip(out["bboxes"], out["box_ids"], strict=True)}
            for i, o in enumerate(new):
                if o.bbox is not None:
                    if i in kept:
                        o.bbox = clip_bbox_to_rect(kept[i], rect)
                    else:
                        alive[i] = False
        if "keypoints" in out:
            rings: dict[int, dict[int, list[list[float]]]] = {}
            kps: dict[int, list[list[float]]] = {}
            for pt, ref in zip(out["keypoints"], out["point_ids"], strict=True):
                i, kind, r, _j = self._point_refs[int(ref)]
                xy = [float(pt[0]), float(pt[1])]
                if kind == 1:
                    rings.setdefault(i, {}).setdefault(r, []).append(xy)
                else:
                    kps.setdefault(i, []).append(xy)
            for i, o in enumerate(new):
                if o.polygon is not None:
                    before_area = sum(ring_area(r) for r in rings.get(i, {}).values())
                    clipped = [clip_ring(ring, rect) for _, ring in sorted(rings.get(i, {}).items())]
                    clipped = [c for c in clipped if len(c) >= 3 and ring_area(c) > 0]
                    after_area = sum(ring_area(r) for r in clipped)
                    if not clipped or not K.keep_box(before_area, after_area, self.recipe.visibility, self.recipe.min_area):
                        alive[i] = False
                        continue
                    o.polygon = clipped
                    if o.bbox is not None:  # the polygon's bounds are tighter than a rotated box
                        o.bbox = polygon_bbox(clipped)
                if o.keypoints is not None:
                    moved = []
                    for old, xy in zip(o.keypoints, kps.get(i, []), strict=True):
                        v = old[2] if len(old) > 2 else None
                        inside = 0 <= xy[0] < w and 0 <= xy[1] < h
                        if v == 0 or not inside:
                            moved.append([0.0, 0.0, 0] if len(old) > 2 else [0.0, 0.0])
                        else:
                            moved.append(xy + ([v] if len(old) > 2 else []))
                    o.keypoints = moved
        for m, i in zip(out.get("masks", []), mask_ids, strict=True):
            new[i].mask = K.rle_encode(np.asarray(m))
            if not new[i].mask["counts"] or len(new[i].mask["counts"]) < 2:
                alive[i] = alive[i] and new[i].bbox is not None
        return [o for o, a in zip(new, alive, strict=True) if a]
