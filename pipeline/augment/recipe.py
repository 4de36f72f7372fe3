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
after them and each draws its partners from the same split. What each op is called, its
parameters and the targets it supports come from its registry entry (`pipeline.augment.ops`).
An unknown op, key or parameter is a `ConfigError` that lists the valid ones. The recipe hash
covers every resolved parameter, so two recipes with the same hash produce the same augmentation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.augment.ops import OPS, TARGETS, Op, Param, get
from pipeline.augment.ops.base import fail as _fail
from pipeline.core.errors import ConfigError
from pipeline.core.numbers import is_number as _num

__all__ = ["OPS", "RECIPE_KEYS", "TARGETS", "OpConfig", "Param", "Recipe", "describe_ops", "load_recipe", "parse_op",
           "parse_recipe"]

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
    def spec(self) -> Op:
        """The op's registry entry."""
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


def parse_op(entry: object, where: str) -> OpConfig:
    """Validate one `ops` entry: ``{op: NAME, p: P, PARAM: VALUE, ...}``."""
    if not isinstance(entry, dict) or "op" not in entry:
        raise _fail(where, "op", "a mapping like {op: rotate, p: 0.5, degrees: 10}", entry)
    name = entry["op"]
    spec = get(name, where)
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
        params[key] = param.validate(f"{where} ({name})", key, value)
    spec.check(f"{where} ({name})", params)
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
    from pipeline.core.errors import DataError
    from pipeline.core.limits import read_yaml_file

    try:  # safe types only, no aliases, a size cap (`pipeline.core.limits`)
        data = read_yaml_file(path, fix="fix the syntax (aliases and anchors are not allowed)")
    except DataError as err:
        raise ConfigError(err.message, fix=err.fix) from None
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
