"""`perspective`: a random four-point perspective warp, each corner moved inwards by a drawn fraction."""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import FILL, WARP_TARGETS, Op, Param, named, pair


def build(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `Perspective`, keeping the size."""
    import cv2

    k = op.params
    return named(T.Perspective, op.name)(scale=pair(k["scale"]), keep_size=True, border_mode=cv2.BORDER_CONSTANT,
                                         fill=k["fill"], p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample warped by its own perspective matrix (corners jittered inwards)."""
    import cv2
    import numpy as np
    import torch

    from pipeline.augment import online as O

    n, _, h, w = x.shape
    lo, hi = O.as_range(op.params["scale"], symmetric=False)
    scale = O.uniform(gen, n, lo, hi).numpy()
    jitter = torch.rand(n, 4, 2, generator=gen, dtype=torch.float64).numpy()
    src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
    inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
    out = []
    for i in range(n):
        dst = src + inward * jitter[i] * scale[i] * np.array([w, h])
        out.append(cv2.getPerspectiveTransform(src, dst.astype(np.float32)))
    return O.warp(x, torch.from_numpy(np.stack(out)), op.params["fill"])


OPS = (
    Op("perspective", "single", {"scale": Param("range", [0.05, 0.1], "corner jitter as a fraction of the size"),
                                 "fill": FILL},
       WARP_TARGETS, "random four-point perspective warp", offline=build, online=batch, geometric=True),
)
