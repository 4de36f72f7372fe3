"""`noise`: additive Gaussian noise with a std drawn per sample (a fraction of 255); pixels only."""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import ALL_TARGETS, Op, Param, named, pair


def build(op: Any, channels: int, T: Any) -> Any:
    """`GaussNoise` (the drop-in of `pipeline.augment.albu`)."""
    return named(T.GaussNoise, op.name)(std_range=pair(op.params["std"]), p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample plus normal noise of its own std."""
    import torch

    from pipeline.augment import online as O

    lo, hi = O.as_range(op.params["std"], symmetric=False)
    std = O.uniform(gen, x.shape[0], lo, hi).to(x.dtype).view(-1, 1, 1, 1) * 255.0
    return x + std * torch.randn(x.shape, generator=gen).to(x.device)


OPS = (
    Op("noise", "single", {"std": Param("range", [0.02, 0.08], "noise std range as a fraction of 255")},
       ALL_TARGETS, "additive Gaussian noise", offline=build, online=batch, fast="GaussNoise"),
)
