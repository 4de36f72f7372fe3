"""The augmentation ops: one module per op (or per family sharing parameters and kernels), each
declaring its registry entry (`pipeline.augment.ops.base.Op`), and the registry built from them.

Adding an op means adding its module here and a row to the README's op table and to
docs/augment.md; tests/augment/test_ops.py walks the registry and fails for an op missing a part.
The registry is a plain dict; an unknown name is a `ConfigError` listing the valid ones (`get`).
"""

from __future__ import annotations

from pipeline.augment.ops import (
    affine,
    color_jitter,
    cutmix,
    cutout,
    elastic,
    flip,
    gaussian_blur,
    grayscale,
    invert,
    mixup,
    mosaic,
    noise,
    perspective,
    random_crop,
    resize,
    rotate,
    sample_pairing,
    sharpen,
)
from pipeline.augment.ops.base import TARGETS, Op, Param
from pipeline.core.errors import ConfigError

MODULES = (affine, color_jitter, cutmix, cutout, elastic, flip, gaussian_blur, grayscale, invert, mixup, mosaic, noise,
           perspective, random_crop, resize, rotate, sample_pairing, sharpen)

OPS: dict[str, Op] = dict(sorted((op.name, op) for module in MODULES for op in module.OPS))

__all__ = ["OPS", "TARGETS", "Op", "Param", "get"]


def get(name: object, where: str = "recipe") -> Op:
    """The registry entry of `name`; a `ConfigError` naming the valid ops otherwise."""
    if not isinstance(name, str) or name not in OPS:
        raise ConfigError(f"{where}: unknown op {name!r}", fix=f"use one of: {', '.join(OPS)}")
    return OPS[name]
