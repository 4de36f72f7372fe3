"""`gaussian_blur`: Gaussian blur with a sigma drawn per sample; pixels only."""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import ALL_TARGETS, Op, Param, named, pair


def build(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `GaussianBlur`, its kernel size derived from sigma."""
    return named(T.GaussianBlur, op.name)(blur_limit=0, sigma_limit=pair(op.params["sigma"]), p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample blurred with its own sigma and albumentations' kernel width (two batched matmuls)."""
    from pipeline.augment import online as O

    lo, hi = O.as_range(op.params["sigma"], symmetric=False)
    return O.blur(x, O.uniform(gen, x.shape[0], lo, hi))


OPS = (
    Op("gaussian_blur", "single", {"sigma": Param("range", [0.1, 1.5], "sigma range [lo, hi] in pixels")},
       ALL_TARGETS, "Gaussian blur", offline=build, online=batch),
)
