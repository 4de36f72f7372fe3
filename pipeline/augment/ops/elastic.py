"""`elastic`: elastic distortion (Simard et al. 2003), a smoothed random displacement field.

Offline: albumentations' `ElasticTransform` (the drop-in of `pipeline.augment.albu`), keypoints and
polygon vertices moved by the displacement at their position; online: a blurred uniform field
sampled with `grid_sample`.
"""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import FILL, WARP_TARGETS, Op, Param, named


def build(op: Any, channels: int, T: Any) -> Any:
    """`ElasticTransform` with a constant border and direct keypoint remapping."""
    import cv2

    k = op.params
    return named(T.ElasticTransform, op.name)(alpha=k["alpha"], sigma=k["sigma"], border_mode=cv2.BORDER_CONSTANT,
                                              fill=k["fill"], keypoint_remapping_method="direct", p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample displaced by its own field: uniform noise in [-1, 1], blurred, times alpha."""
    import torch

    from pipeline.augment import online as O

    k = op.params
    n, _, h, w = x.shape
    noise = torch.rand(n, 2, h, w, generator=gen, dtype=torch.float64) * 2 - 1
    field = O.blur(noise, torch.full((n,), float(k["sigma"]), dtype=torch.float64))
    base = O.base_grid(h, w, torch.float64)[..., :2].view(1, h, w, 2)
    src = base + k["alpha"] * field.permute(0, 2, 3, 1)
    return O.sample(x, src.to(x.device), k["fill"])


OPS = (
    Op("elastic", "single", {"alpha": Param("number", 30.0, "displacement strength in pixels"),
                             "sigma": Param("number", 5.0, "smoothness of the displacement field"),
                             "fill": FILL},
       WARP_TARGETS, "elastic distortion (Simard 2003)", offline=build, online=batch, fast="ElasticTransform",
       geometric=True),
)
