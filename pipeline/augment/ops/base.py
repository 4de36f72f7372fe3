"""What an augmentation op declares: its parameter schema, its targets and its kernels.

Every op module of this package builds one `Op` per op it defines; `pipeline.augment.ops` collects
them into the registry. An `Op` says everything the rest of the package needs to know about it:

- `params`: name -> `Param` (kind, default, the values it accepts, a one-line doc);
- `targets`: the label targets it handles (`TARGETS`); a dataset carrying anything else is refused;
- `offline`: for a single-sample op, a builder of its albumentations transform; for a
  multi-sample op, the kernel that mixes one `Item` with its partners;
- `online`: the batched torch kernel used by `pipeline train --augment`, or None;
- `warp`: for a geometric op, how it draws its batched warp (matrices and/or a displacement
  field), so consecutive geometric ops compose into one resampling online, or None;
- `fast`: the name of the drop-in class of `pipeline.augment.albu` its transform is built from
  (same draws, same pixels as albumentations' own, for less), or None.

Nothing here imports albumentations or torch: the kernels import what they need when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.core.numbers import is_number

# Label targets a dataset may carry. "label" covers the image-level label and soft label.
TARGETS = ("label", "boxes", "polygons", "keypoints", "masks", "polylines")
ALL_TARGETS = frozenset(TARGETS)
# What an op that moves pixels carries with them (a polyline is not clipped: refused).
WARP_TARGETS = frozenset({"label", "boxes", "polygons", "keypoints", "masks"})
# Mirroring swaps left and right: keypoints named "left_eye" would end up on the right.
FLIP_TARGETS = frozenset({"label", "boxes", "polygons", "masks"})

PARAM_KINDS = ("number", "int", "range", "size", "fill", "choice")


def fail(where: str, field_: str, expected: str, got: object, fix: str | None = None) -> ConfigError:
    """The error for a recipe value: where, which field, what was expected, what was found."""
    text = repr(got)
    text = text if len(text) <= 60 else text[:57] + "..."
    return ConfigError(f"{where}: {field_}: expected {expected}, got {text}", fix=fix)


@dataclass(frozen=True)
class Param:
    """One parameter of an op: its kind, default and doc.

    Kinds: ``number`` (a float >= 0), ``int`` (an integer >= 0), ``range`` (a number or
    ``[lo, hi]`` with lo <= hi), ``size`` (``[height, width]`` of positive integers, or null),
    ``fill`` (a number 0-255, or ``'random'`` where `random` is set), ``choice`` (one of `choices`).
    """

    kind: str
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    random: bool = False  # a fill that may be "random" (noise)

    def validate(self, where: str, fld: str, value: Any) -> Any:
        """`value` resolved to its canonical type; a `ConfigError` naming `where` and `fld` otherwise."""
        kind = self.kind
        if kind == "number":
            if not is_number(value) or value < 0:
                raise fail(where, fld, "a number >= 0", value)
            return float(value)
        if kind == "int":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise fail(where, fld, "an integer >= 0", value)
            return int(value)
        if kind == "range":
            if is_number(value):
                return float(value)
            if isinstance(value, list) and len(value) == 2 and all(is_number(v) for v in value) and value[0] <= value[1]:
                return [float(value[0]), float(value[1])]
            raise fail(where, fld, "a number or [lo, hi] with lo <= hi", value)
        if kind == "size":
            if value is None:
                return None
            if isinstance(value, list) and len(value) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
                return [int(value[0]), int(value[1])]
            raise fail(where, fld, "[height, width] of positive integers, or null", value)
        if kind == "fill":
            if value == "random" and self.random:
                return "random"
            if is_number(value) and 0 <= value <= 255:
                return float(value)
            raise fail(where, fld, "a number 0-255" + (" or 'random'" if self.random else ""), value)
        if kind == "choice":
            if str(value) in self.choices:
                return str(value)
            raise fail(where, fld, "one of " + ", ".join(self.choices), value)
        raise ConfigError(f"{where}: {fld}: unknown parameter kind {kind!r}", fix=f"use one of {', '.join(PARAM_KINDS)}")


FILL = Param("fill", 0, "border fill value (0-255)")


def never(params: Mapping[str, Any]) -> bool:
    """For `Op.resizes`: the op keeps the image size whatever its parameters."""
    return False


def always(params: Mapping[str, Any]) -> bool:
    """For `Op.resizes`: the op changes the image size whatever its parameters."""
    return True


def no_check(where: str, params: dict[str, Any]) -> None:
    """For `Op.check`: no rule beyond each parameter's own."""


@dataclass(frozen=True)
class Op:
    """One augmentation op, declared once.

    `offline`: single ops: ``builder(op: OpConfig, channels: int, T) -> transform | None`` where
    `T` gives albumentations' transform classes, the drop-ins of `pipeline.augment.albu` in
    place of the stock ones unless a reference run asks for albumentations' own (None: nothing
    to do for that channel count); multi ops: ``kernel(op, a: Item, partners: list[Item], rng,
    recipe) -> Item``.
    `online`: single ops: ``kernel(op, x, gen, rng) -> x'`` on a float batch (N, C, H, W);
    multi ops: ``kernel(op, x, y, gen, rng) -> (x', y')``; None where online training cannot run it.
    `warp`: geometric single ops: ``draw(op, n, h, w, gen, rng) -> pipeline.augment.online.Warp``, the
    same draws as `online` (which applies them); the augmenter composes consecutive ones.
    `check(where, params)` enforces rules across parameters after each was validated.
    `partners(params)` (multi ops) is how many other samples the op mixes with the first;
    `smooths_labels` (multi ops) whether the recipe's label smoothing applies to its soft label.
    """

    name: str
    kind: str  # "single" or "multi"
    params: Mapping[str, Param]
    targets: frozenset[str]
    doc: str
    offline: Callable[..., Any]
    online: Callable[..., Any] | None = None
    warp: Callable[..., Any] | None = None
    fast: str | None = None
    geometric: bool = False  # moves pixels, so labels must move with them
    resizes: Callable[[Mapping[str, Any]], bool] = never  # output size differs from input size
    check: Callable[[str, dict[str, Any]], None] = no_check
    partners: Callable[[Mapping[str, Any]], int] | None = None
    smooths_labels: bool = True


def sym(value: float | list[float]) -> tuple[float, float]:
    """A `range` parameter read symmetrically: d means (-d, d)."""
    if isinstance(value, list):
        return (value[0], value[1])
    return (-value, value)


def pair(value: float | list[float]) -> tuple[float, float]:
    """A `range` parameter read as it is: v means (v, v)."""
    if isinstance(value, list):
        return (value[0], value[1])
    return (value, value)


def scale_factors(where: str, params: dict[str, Any]) -> None:
    """A zoom `scale` must be > 0 (a range's low end too)."""
    v = params.get("scale")
    if isinstance(v, list) and v[0] <= 0:
        raise fail(where, "scale", "factors > 0", v)
    if isinstance(v, float) and v <= 0:
        raise fail(where, "scale", "a factor > 0", v)


def named(cls: type, name: str) -> type:
    """A subclass of `cls` called `name`, so albumentations records its parameters under our op name."""
    key = (name, cls)
    if key not in _NAMED:
        _NAMED[key] = type(name, (cls,), {})
    return _NAMED[key]


_NAMED: dict[tuple[str, type], type] = {}

