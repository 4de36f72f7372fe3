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
import os
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment.albu import load as load_albumentations
from pipeline.augment.recipe import OpConfig, Recipe
from pipeline.core.dataset import Obj
from pipeline.core.geometry import bbox_area, clip_bbox_to_rect, clip_ring, polygon_bbox, ring_area
from pipeline.core.rng import StreamRandom

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


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

_NAMED: dict[tuple[str, type], type] = {}


def _named(cls: type, name: str) -> type:
    """A subclass of `cls` called `name`, so albumentations records its parameters under our op name."""
    key = (name, cls)
    if key not in _NAMED:
        _NAMED[key] = type(name, (cls,), {})
    return _NAMED[key]


def _sym(value: float | list[float]) -> tuple[float, float]:
    if isinstance(value, list):
        return (value[0], value[1])
    return (-value, value)


def _pair(value: float | list[float]) -> tuple[float, float]:
    if isinstance(value, list):
        return (value[0], value[1])
    return (value, value)


def build_transform(op: OpConfig, channels: int, *, stock: bool = False):
    """The albumentations transform for one recipe op (always applied: the recipe's `p` is given).

    Affine-family ops, rotation and elastic use the cheaper drop-ins of `pipeline.augment.fastgeom`,
    noise and colour jitter those of `pipeline.augment.fastpixel` (same draws, same pixels), unless
    `stock` (the benchmark's reference loop asks for albumentations' own classes).
    """
    import cv2

    A = load_albumentations()
    if stock:
        affine, rotate, elastic = A.Affine, A.Rotate, A.ElasticTransform
        noise, jitter = A.GaussNoise, A.ColorJitter
    else:
        from pipeline.augment import fastgeom, fastpixel

        affine, rotate, elastic = fastgeom.Affine, fastgeom.Rotate, fastgeom.ElasticTransform
        noise, jitter = fastpixel.GaussNoise, fastpixel.ColorJitter

    k, p = op.params, op.p
    const = cv2.BORDER_CONSTANT
    name = op.name
    if name == "hflip":
        return _named(A.HorizontalFlip, name)(p=p)
    if name == "vflip":
        return _named(A.VerticalFlip, name)(p=p)
    if name == "rotate":
        return _named(rotate, name)(limit=_sym(k["degrees"]), border_mode=const, fill=k["fill"], p=p)
    if name == "affine":
        t = _sym(k["translate"])
        return _named(affine, name)(rotate=_sym(k["degrees"]), translate_percent={"x": t, "y": t},
                                      scale=_pair(k["scale"]), shear=_sym(k["shear"]), border_mode=const,
                                      fill=k["fill"], p=p)
    if name == "shift":
        t = _sym(k["translate"])
        return _named(affine, name)(translate_percent={"x": t, "y": t}, border_mode=const, fill=k["fill"], p=p)
    if name == "scale":
        return _named(affine, name)(scale=_pair(k["scale"]), border_mode=const, fill=k["fill"], p=p)
    if name == "resize":
        return _named(A.Resize, name)(height=k["height"], width=k["width"], p=p)
    if name == "random_scale":
        lo, hi = _pair(k["scale"])
        return _named(A.RandomScale, name)(scale_limit=(lo - 1.0, hi - 1.0), p=p)
    if name == "random_crop":
        pad = k["padding"]
        if k["size"] is None:  # pad then crop back to the input size == an integer shift with fill
            return _named(affine, name)(translate_px={"x": (-pad, pad), "y": (-pad, pad)}, border_mode=const,
                                          fill=k["fill"], interpolation=cv2.INTER_NEAREST, p=p)
        h, w = k["size"]
        return A.Sequential([
            _named(A.Pad, f"{name}.pad")(padding=pad, fill=k["fill"], border_mode=const, p=1.0),
            _named(A.RandomCrop, f"{name}.crop")(height=h, width=w, pad_if_needed=True, fill=k["fill"], p=1.0),
        ], p=p)
    if name == "perspective":
        return _named(A.Perspective, name)(scale=_pair(k["scale"]), keep_size=True, border_mode=const,
                                           fill=k["fill"], p=p)
    if name == "elastic":
        return _named(elastic, name)(alpha=k["alpha"], sigma=k["sigma"], border_mode=const,
                                                fill=k["fill"], keypoint_remapping_method="direct", p=p)
    if name == "gaussian_blur":
        return _named(A.GaussianBlur, name)(blur_limit=0, sigma_limit=_pair(k["sigma"]), p=p)
    if name == "color_jitter":
        b, c, s, h = k["brightness"], k["contrast"], k["saturation"], k["hue"]
        return _named(jitter, name)(brightness=(max(0.0, 1 - b), 1 + b), contrast=(max(0.0, 1 - c), 1 + c),
                                           saturation=(max(0.0, 1 - s), 1 + s), hue=(-h, h), p=p)
    if name == "grayscale":
        if channels != 3:
            return None  # already grey: nothing to do
        return _named(A.ToGray, name)(num_output_channels=3, p=p)
    if name == "noise":
        return _named(noise, name)(std_range=_pair(k["std"]), p=p)
    if name == "sharpen":
        return _named(A.Sharpen, name)(alpha=_pair(k["alpha"]), lightness=_pair(k["lightness"]), p=p)
    if name == "invert":
        return _named(A.InvertImg, name)(p=p)
    raise AssertionError(f"not a single-sample op: {name}")


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
_COMPOSE: list[type] = []


def _compose_class() -> type:
    """`A.Compose` that re-filters boxes and points only after a transform that was applied, and
    validates boxes with a quick test first.

    albumentations clips and filters boxes (and points) after every transform of a Compose,
    applied or not; after one that did not run the data is unchanged and the filter (clip to the
    image, drop below area/visibility) changes nothing a second time, so skipping it gives the
    same output for less. Its box check (before and after the transforms) runs six numpy
    `isclose`-based passes even when every coordinate lies in [0, 1] and every box has x_max > x_min
    and y_max > y_min, which the clipping makes the rule: that case is tested first with four
    cheap reductions, anything else goes to albumentations' own check (same errors). Every other
    step is albumentations' own.
    """
    if not _COMPOSE:
        A = load_albumentations()
        from albumentations.core.bbox_utils import check_bboxes
        from albumentations.core.transforms_interface import BasicTransform

        def check_boxes(data: np.ndarray, shape: Any) -> None:
            if data.size and not (data[:, :4].min() >= 0 and data[:, :4].max() <= 1
                                  and (data[:, 2] > data[:, 0]).all() and (data[:, 3] > data[:, 1]).all()):
                check_bboxes(data)  # (a NaN fails every comparison above: checked there too)

        class Compose(A.Compose):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                if "bboxes" in self.processors:
                    self.processors["bboxes"].check = check_boxes

            def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> dict[str, Any]:
                if args or not self.main_compose or self.strict or not isinstance(force_apply, bool):
                    return super().__call__(*args, force_apply=force_apply, **data)
                if self.save_applied_params:
                    data["applied_transforms"] = []
                if not (force_apply or self.py_random.random() < self.p):
                    return data
                self.preprocess(data)
                for t in self.transforms:
                    data = t(**data)
                    self._track_transform_params(t, data)
                    if not isinstance(t, BasicTransform) or t.params:  # ran (a nested compose: assume so)
                        data = self.check_data_post_transform(data)
                return self.postprocess(data)

        _COMPOSE.append(Compose)
    return _COMPOSE[0]


def _plan(transforms: list) -> list[tuple]:
    """(transform, its class name, the plan of its children if it is a sequence, else None)."""
    load_albumentations()
    from albumentations.core.composition import BaseCompose

    return [(t, type(t).__name__, _plan(t.transforms) if isinstance(t, BaseCompose) else None) for t in transforms]


def _leaves(plan: list[tuple]) -> list:
    """The transforms of a plan, the children of a sequence in its place."""
    return [leaf for t, _, children in plan for leaf in (_leaves(children) if children is not None else [t])]


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
        A = load_albumentations()

        self.recipe = recipe
        self.channels = channels
        self.targets = set(targets)
        transforms = [t for t in (build_transform(op, channels) for op in recipe.single) if t is not None]
        self.empty = not transforms
        self.transforms = transforms
        self._unrecorded = {type(t).__name__: t.unrecorded for t in _leaves(_plan(transforms))
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
            kind = "compose" if moved and not isinstance(t, A.ImageOnlyTransform) else "direct"
            if self.segments and self.segments[-1][0] == kind:
                self.segments[-1][1].append(t)
            else:
                self.segments.append((kind, [t]))
        with warnings.catch_warnings():  # a recipe of pixel-only ops leaves boxes and points as they are
            warnings.filterwarnings("ignore", message="Got processor for")
            self.segments = [(kind, _compose_class()(ts, save_applied_params=True, **kwargs) if kind == "compose"
                              else _plan(ts)) for kind, ts in self.segments]

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
                self._direct(seg, data, applied)
            else:
                data = seg(**data)
                applied.extend(data.pop("applied_transforms", ()))
        result = Item(data["image"], None if item.soft is None else item.soft.copy(), None, list(item.params))
        result.params.extend(_record(name, params, self._unrecorded.get(name, _NONE)) for name, params in applied)
        if objs is not None:
            result.objects = self._objects(objs, data, mask_ids, item, result) if self.moved else [o.copy() for o in objs]
        return result

    def _direct(self, plan: list, data: dict[str, Any], applied: list[tuple[str, dict]]) -> None:
        """Run transforms on `data["image"]` as `A.Compose` / `A.Sequential` would: the same draws
        from the same generators, in the same order (`plan`: see `_plan`)."""
        for t, name, children in plan:
            if children is not None:  # A.Sequential (a crop of a given size): one draw, then every child
                if t.py_random.random() < t.p:
                    self._direct(children, data, applied)
                continue
            p = t.p  # BasicTransform.should_apply, inlined
            if p <= 0.0 or (p < 1.0 and t.py_random.random() >= p):
                continue
            params = t.update_transform_params(t.get_params(), data)
            params.update(t.get_params_dependent_on_data(params=params, data=data))
            data["image"] = np.ascontiguousarray(t.apply(data["image"], **params))
            applied.append((name, params))

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
