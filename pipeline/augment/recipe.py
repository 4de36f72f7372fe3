"""Augmentation recipes: an ordered list of ops in YAML, validated on load.

A recipe file (see ``configs/augment/*.yaml``)::

    name: digits                  # optional, defaults to the file's stem
    visibility: 0.3               # boxes keeping less of their area than this are dropped
    min_area: 4                   # ... and boxes smaller than this many pixels
    label_smoothing: 0.0          # applied to the soft labels of augmented classification samples
    ops:
      - {op: rotate, p: 0.5, degrees: 12}
      - {op: random_crop, p: 0.5, padding: 2}
      - {op: mixup, p: 0.3, alpha: 0.4}

Single-sample ops run first (on albumentations offline, in torch online); multi-sample ops come
after them and each draws its partners from the same split. An unknown op, key or parameter is
a `ConfigError` that lists the valid ones. The recipe hash covers every resolved parameter, so
two recipes with the same hash produce the same augmentation.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.errors import ConfigError

# Label targets a dataset may carry. "label" covers the image-level label and soft label.
TARGETS = ("label", "boxes", "polygons", "keypoints", "masks", "polylines")
_ALL = frozenset(TARGETS)
_GEOMETRIC = frozenset({"label", "boxes", "polygons", "keypoints", "masks"})
# Mirroring swaps left and right: keypoints named "left_eye" would end up on the right.
_FLIP = frozenset({"label", "boxes", "polygons", "masks"})


@dataclass(frozen=True)
class Param:
    kind: str  # number | range | int | size | fill | choice | bool
    default: Any
    doc: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpSpec:
    """What an op is called, whether it mixes samples, its parameters and the targets it supports."""

    name: str
    kind: str  # "single" or "multi"
    params: dict[str, Param]
    targets: frozenset[str]
    doc: str
    geometric: bool = False  # moves pixels, so labels must move with them
    resizes: bool = False  # output size differs from input size


_FILL = Param("fill", 0, "border fill value (0-255)")

OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec("hflip", "single", {}, _FLIP, "mirror left-right", geometric=True),
        OpSpec("vflip", "single", {}, _FLIP, "mirror top-bottom", geometric=True),
        OpSpec("rotate", "single", {"degrees": Param("range", 15.0, "angle in degrees: d means [-d, d]"), "fill": _FILL},
               _GEOMETRIC, "rotation about the centre", geometric=True),
        OpSpec("affine", "single", {
            "degrees": Param("range", 0.0, "rotation: d means [-d, d]"),
            "translate": Param("range", 0.0, "shift as a fraction of the size: t means [-t, t]"),
            "scale": Param("range", [1.0, 1.0], "zoom factor range [lo, hi]"),
            "shear": Param("range", 0.0, "shear in degrees: s means [-s, s]"),
            "fill": _FILL,
        }, _GEOMETRIC, "rotation, shift, zoom and shear in one warp", geometric=True),
        OpSpec("shift", "single", {"translate": Param("range", 0.1, "fraction of the size: t means [-t, t]"), "fill": _FILL},
               _GEOMETRIC, "translation", geometric=True),
        OpSpec("scale", "single", {"scale": Param("range", [0.9, 1.1], "zoom factor range [lo, hi]; the size stays"),
                                   "fill": _FILL},
               _GEOMETRIC, "zoom in or out about the centre, same output size", geometric=True),
        OpSpec("resize", "single", {"width": Param("int", 32, "output width"), "height": Param("int", 32, "output height")},
               _GEOMETRIC, "resize to a fixed size", geometric=True, resizes=True),
        OpSpec("random_scale", "single", {"scale": Param("range", [0.8, 1.2], "size factor range [lo, hi]")},
               _GEOMETRIC, "resize by a random factor (the output size changes)", geometric=True, resizes=True),
        OpSpec("random_crop", "single", {
            "padding": Param("int", 4, "pixels padded on each side before cropping"),
            "size": Param("size", None, "[height, width] of the crop; default: the input size"),
            "fill": _FILL,
        }, _GEOMETRIC, "random crop with padding (torchvision RandomCrop(size, padding))", geometric=True),
        OpSpec("perspective", "single", {"scale": Param("range", [0.05, 0.1], "corner jitter as a fraction of the size"),
                                         "fill": _FILL},
               _GEOMETRIC, "random four-point perspective warp", geometric=True),
        OpSpec("elastic", "single", {"alpha": Param("number", 30.0, "displacement strength in pixels"),
                                     "sigma": Param("number", 5.0, "smoothness of the displacement field"),
                                     "fill": _FILL},
               _GEOMETRIC, "elastic distortion (Simard 2003)", geometric=True),
        OpSpec("gaussian_blur", "single", {"sigma": Param("range", [0.1, 1.5], "sigma range [lo, hi] in pixels")},
               _ALL, "Gaussian blur"),
        OpSpec("color_jitter", "single", {
            "brightness": Param("number", 0.2, "factor in [1-b, 1+b]"),
            "contrast": Param("number", 0.2, "factor in [1-c, 1+c]"),
            "saturation": Param("number", 0.0, "factor in [1-s, 1+s] (colour images)"),
            "hue": Param("number", 0.0, "hue shift in [-h, h], h <= 0.5 (colour images)"),
        }, _ALL, "brightness, contrast, saturation and hue"),
        OpSpec("grayscale", "single", {}, _ALL, "to grey, keeping the channel count"),
        OpSpec("noise", "single", {"std": Param("range", [0.02, 0.08], "noise std range as a fraction of 255")},
               _ALL, "additive Gaussian noise"),
        OpSpec("sharpen", "single", {"alpha": Param("range", [0.2, 0.5], "blend with the sharpened image"),
                                     "lightness": Param("range", [0.5, 1.0], "lightness of the sharpened image")},
               _ALL, "unsharp kernel"),
        OpSpec("invert", "single", {}, _ALL, "colour inversion (255 - x)"),
        # multi-sample ops: partners come from the same split
        OpSpec("sample_pairing", "multi", {}, frozenset({"label"}),
               "average with a partner (Inoue 2018); label of the first"),
        OpSpec("mixup", "multi", {"alpha": Param("number", 0.2, "lambda ~ Beta(alpha, alpha)")}, _ALL,
               "pixel mix; soft label (lambda, 1-lambda); detection keeps both box sets with weights"),
        OpSpec("cutmix", "multi", {"alpha": Param("number", 1.0, "lambda ~ Beta(alpha, alpha)")},
               frozenset({"label", "boxes", "keypoints"}),
               "paste a rectangle of the partner; label by pasted area"),
        OpSpec("cutout", "multi", {
            "holes": Param("int", 1, "number of erased squares"),
            "size": Param("range", [0.2, 0.4], "side as a fraction of the shorter image side"),
            "fill": Param("fill", 0, "0-255, or 'random' for noise"),
        }, frozenset({"label", "boxes", "polygons", "keypoints"}), "erase squares; boxes mostly covered are dropped"),
        OpSpec("mosaic", "multi", {"tiles": Param("choice", "4", "4 or 9 tiles", choices=("4", "9"))},
               frozenset({"label", "boxes", "polygons", "keypoints"}),
               "tiles from 4 or 9 samples on one canvas; label by area share"),
    ]
}

RECIPE_KEYS = {
    "name": "recipe name recorded with every sample",
    "visibility": "boxes keeping less than this fraction of their area are dropped (0-1)",
    "min_area": "boxes smaller than this many pixels are dropped",
    "label_smoothing": "epsilon of label smoothing on soft labels (0 = none)",
    "ops": "the ordered list of ops",
}


@dataclass(frozen=True)
class OpConfig:
    """One op of a recipe with every parameter resolved."""

    name: str
    p: float
    params: dict[str, Any]

    @property
    def spec(self) -> OpSpec:
        return OPS[self.name]

    def to_json(self) -> dict:
        return {"op": self.name, "p": self.p, **self.params}


@dataclass(frozen=True)
class Recipe:
    name: str
    ops: tuple[OpConfig, ...]
    visibility: float = 0.3
    min_area: float = 1.0
    label_smoothing: float = 0.0
    path: str | None = field(default=None, compare=False)

    @cached_property
    def single(self) -> list[OpConfig]:
        return [o for o in self.ops if o.spec.kind == "single"]

    @cached_property
    def multi(self) -> list[OpConfig]:
        return [o for o in self.ops if o.spec.kind == "multi"]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "visibility": self.visibility,
            "min_area": self.min_area,
            "label_smoothing": self.label_smoothing,
            "ops": [o.to_json() for o in self.ops],
        }

    @cached_property
    def hash(self) -> str:
        """sha256 of the resolved recipe (name excluded: renaming changes nothing drawn)."""
        data = self.to_json()
        data.pop("name")
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def check_targets(self, present: set[str], where: str = "dataset") -> None:
        """Refuse ops that cannot handle a label target the dataset carries."""
        for i, op in enumerate(self.ops):
            missing = sorted(present - op.spec.targets, key=TARGETS.index)
            if missing:
                raise ConfigError(
                    f"{self.path or self.name}: ops[{i}] {op.name!r} cannot handle {', '.join(missing)} "
                    f"found in {where} (it supports {', '.join(t for t in TARGETS if t in op.spec.targets)})",
                    fix=f"remove {op.name!r} from the recipe or use a dataset without {missing[0]}",
                )


def _fail(where: str, field_: str, expected: str, got: object, fix: str | None = None) -> ConfigError:
    text = repr(got)
    text = text if len(text) <= 60 else text[:57] + "..."
    return ConfigError(f"{where}: {field_}: expected {expected}, got {text}", fix=fix)


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_param(where: str, fld: str, param: Param, value: Any) -> Any:
    kind = param.kind
    if kind == "number":
        if not _num(value) or value < 0:
            raise _fail(where, fld, "a number >= 0", value)
        return float(value)
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _fail(where, fld, "an integer >= 0", value)
        return int(value)
    if kind == "range":
        if _num(value):
            return float(value)
        if isinstance(value, list) and len(value) == 2 and all(_num(v) for v in value) and value[0] <= value[1]:
            return [float(value[0]), float(value[1])]
        raise _fail(where, fld, "a number or [lo, hi] with lo <= hi", value)
    if kind == "size":
        if value is None:
            return None
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                               for v in value):
            return [int(value[0]), int(value[1])]
        raise _fail(where, fld, "[height, width] of positive integers, or null", value)
    if kind == "fill":
        if value == "random" and param.doc.endswith("'random' for noise"):
            return "random"
        if _num(value) and 0 <= value <= 255:
            return float(value)
        raise _fail(where, fld, "a number 0-255" + (" or 'random'" if "random" in param.doc else ""), value)
    if kind == "choice":
        if str(value) in param.choices:
            return str(value)
        raise _fail(where, fld, "one of " + ", ".join(param.choices), value)
    raise AssertionError(kind)


def _check_semantics(where: str, name: str, params: dict[str, Any]) -> None:
    if name == "color_jitter" and params["hue"] > 0.5:
        raise _fail(where, "hue", "a number in [0, 0.5]", params["hue"])
    if name in ("resize",) and (params["width"] < 1 or params["height"] < 1):
        raise _fail(where, "width/height", "positive integers", [params["width"], params["height"]])
    if name in ("mixup", "cutmix") and params["alpha"] <= 0:
        raise _fail(where, "alpha", "a number > 0", params["alpha"])
    if name == "cutout" and params["holes"] < 1:
        raise _fail(where, "holes", "an integer >= 1", params["holes"])
    for key in ("scale",):
        v = params.get(key)
        if name in ("affine", "scale", "random_scale") and isinstance(v, list) and v[0] <= 0:
            raise _fail(where, key, "factors > 0", v)
        if name in ("affine", "scale", "random_scale") and isinstance(v, float) and v <= 0:
            raise _fail(where, key, "a factor > 0", v)


def parse_op(entry: object, where: str) -> OpConfig:
    """Validate one `ops` entry: ``{op: NAME, p: P, PARAM: VALUE, ...}``."""
    if not isinstance(entry, dict) or "op" not in entry:
        raise _fail(where, "op", "a mapping like {op: rotate, p: 0.5, degrees: 10}", entry)
    name = entry["op"]
    if name not in OPS:
        raise ConfigError(f"{where}: unknown op {name!r}", fix=f"use one of: {', '.join(sorted(OPS))}")
    spec = OPS[name]
    p = entry.get("p", 1.0)
    if not _num(p) or not 0 <= p <= 1:
        raise _fail(where, "p", "a probability between 0 and 1", p)
    unknown = sorted(set(entry) - {"op", "p"} - set(spec.params))
    if unknown:
        valid = ", ".join(["p", *sorted(spec.params)])
        raise ConfigError(f"{where}: {name}: unknown parameter {unknown[0]!r}", fix=f"valid parameters of {name}: {valid}")
    params = {}
    for key in sorted(spec.params):
        param = spec.params[key]
        value = entry.get(key, param.default)
        params[key] = _check_param(f"{where} ({name})", key, param, value)
    _check_semantics(f"{where} ({name})", name, params)
    return OpConfig(name=name, p=float(p), params=params)


def parse_recipe(data: object, where: str, default_name: str = "recipe") -> Recipe:
    """Validate a recipe's parsed YAML."""
    if not isinstance(data, dict):
        raise _fail(where, "recipe", "a mapping with an `ops` list", data)
    unknown = sorted(set(data) - set(RECIPE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}", fix=f"valid keys: {', '.join(sorted(RECIPE_KEYS))}")
    ops_raw = data.get("ops")
    if not isinstance(ops_raw, list) or not ops_raw:
        raise _fail(where, "ops", "a non-empty list of ops", ops_raw)
    ops = tuple(parse_op(entry, f"{where}: ops[{i}]") for i, entry in enumerate(ops_raw))
    seen_multi = None
    for i, op in enumerate(ops):
        if op.spec.kind == "multi":
            seen_multi = seen_multi if seen_multi is not None else i
        elif seen_multi is not None:
            raise ConfigError(
                f"{where}: ops[{i}] {op.name!r} comes after the multi-sample op ops[{seen_multi}] {ops[seen_multi].name!r}",
                fix="list single-sample ops first: partners get the same single-sample ops before they are mixed",
            )
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise _fail(where, "name", "a non-empty string", name)
    visibility = data.get("visibility", 0.3)
    if not _num(visibility) or not 0 <= visibility <= 1:
        raise _fail(where, "visibility", "a fraction between 0 and 1", visibility)
    min_area = data.get("min_area", 1.0)
    if not _num(min_area) or min_area < 0:
        raise _fail(where, "min_area", "a number of pixels >= 0", min_area)
    smoothing = data.get("label_smoothing", 0.0)
    if not _num(smoothing) or not 0 <= smoothing < 1:
        raise _fail(where, "label_smoothing", "a number in [0, 1)", smoothing)
    return Recipe(name=name, ops=ops, visibility=float(visibility), min_area=float(min_area),
                  label_smoothing=float(smoothing), path=where)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; errors name the file, the op index and the parameter."""
    path = Path(path)
    if not path.is_file():
        shipped = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "configs" / "augment").glob("*.yaml"))
        raise ConfigError(f"{path}: no such recipe file",
                          fix="point --recipe at a YAML file" + (f", e.g. configs/augment/{shipped[0]}" if shipped else ""))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " "), fix="fix the syntax") from exc
    return parse_recipe(data, str(path), default_name=path.stem)


def describe_ops() -> list[tuple[str, str, str, str]]:
    """(op, kind, targets, parameters) rows for documentation and error messages."""
    rows = []
    for name in sorted(OPS):
        spec = OPS[name]
        targets = ", ".join(t for t in TARGETS if t in spec.targets)
        params = ", ".join(f"{k}={v.default!r}" for k, v in sorted(spec.params.items()))
        rows.append((name, spec.kind, targets, params))
    return rows
