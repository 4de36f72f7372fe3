"""`sharpen`: blend with an unsharp-kernel version of the image; pixels only."""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import ALL_TARGETS, Op, Param, named, pair


def build(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `Sharpen`."""
    k = op.params
    return named(T.Sharpen, op.name)(alpha=pair(k["alpha"]), lightness=pair(k["lightness"]), p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample convolved with its own 3x3 kernel: identity blended with the sharpening one."""
    import torch
    import torch.nn.functional as F

    from pipeline.augment import online as O

    k = op.params
    n, c, h, w = x.shape
    a_lo, a_hi = O.as_range(k["alpha"], symmetric=False)
    l_lo, l_hi = O.as_range(k["lightness"], symmetric=False)
    alpha = O.uniform(gen, n, a_lo, a_hi)
    light = O.uniform(gen, n, l_lo, l_hi)
    ident = torch.zeros(n, 3, 3, dtype=torch.float64)
    ident[:, 1, 1] = 1.0
    sharp = -torch.ones(n, 3, 3, dtype=torch.float64)
    sharp[:, 1, 1] = 8.0 + light
    kern = (1 - alpha.view(-1, 1, 1)) * ident + alpha.view(-1, 1, 1) * sharp
    weight = kern.repeat_interleave(c, dim=0).view(n * c, 1, 3, 3).to(x.dtype).to(x.device)
    flat = F.pad(x.reshape(1, n * c, h, w), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(flat, weight, groups=n * c).view(n, c, h, w)


OPS = (
    Op("sharpen", "single", {"alpha": Param("range", [0.2, 0.5], "blend with the sharpened image"),
                             "lightness": Param("range", [0.5, 1.0], "lightness of the sharpened image")},
       ALL_TARGETS, "unsharp kernel", offline=build, online=batch),
)
