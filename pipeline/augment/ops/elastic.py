"""`elastic`: elastic distortion (Simard et al. 2003), a smoothed random displacement field.

Offline: albumentations' `ElasticTransform` (the drop-in of `pipeline.augment.albu`), keypoints and
polygon vertices moved by the displacement at their position; online: the same field drawn per
sample on the batch (normal noise scaled to [-1, 1], blurred with a replicated border, times alpha),
sampled with `grid_sample` together with any affine ops just before it.
"""

from __future__ import annotations

import functools
from typing import Any

from pipeline.augment.ops.base import FILL, WARP_TARGETS, Op, Param, named


def build(op: Any, channels: int, T: Any) -> Any:
    """`ElasticTransform` with a constant border and direct keypoint remapping."""
    import cv2

    k = op.params
    return named(T.ElasticTransform, op.name)(alpha=k["alpha"], sigma=k["sigma"], border_mode=cv2.BORDER_CONSTANT,
                                              fill=k["fill"], keypoint_remapping_method="direct", p=op.p)


def kernel_radius(sigma: float) -> int:
    """The half width of OpenCV's automatic Gaussian kernel for float images: ``round(8 sigma + 1) | 1``."""
    return (int(round(sigma * 8 + 1)) | 1) // 2


@functools.lru_cache(maxsize=16)
def _blurs(sigma: float, h: int, w: int) -> Any:
    """The field's blur along rows and columns as float32 matrices (H, H) and (W, W), built once per size."""
    import torch

    from pipeline.augment import online as O

    one = torch.tensor([sigma], dtype=torch.float64)
    radius = kernel_radius(sigma)
    return (O.gauss_matrices(one, h, radius, border="replicate")[0].float(),
            O.gauss_matrices(one, w, radius, border="replicate")[0].float())


def draw(op: Any, n: int, h: int, w: int, gen: Any, rng: Any) -> Any:
    """One displacement field per sample, as albumentations draws it: standard normal noise for dx
    and dy, divided by its largest magnitude, blurred (sigma, replicated border), times alpha."""
    import torch

    from pipeline.augment import online as O

    k = op.params
    noise = torch.randn(n, 2, h, w, generator=gen)
    noise = noise / noise.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
    rows, cols = _blurs(float(k["sigma"]), h, w)
    # one matrix for every sample: two plain matrix products over the whole batch
    field = (noise @ cols.T).transpose(2, 3) @ rows.T  # (N, 2, W, H): blurred along both axes
    return O.Warp(field=(field.permute(0, 3, 2, 1) * float(k["alpha"])).contiguous())


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample displaced by its own field (`draw`), sampled with `grid_sample`."""
    from pipeline.augment import online as O

    n, _, h, w = x.shape
    return O.apply_warp(x, draw(op, n, h, w, gen, rng), op.params["fill"])


OPS = (
    Op("elastic", "single", {"alpha": Param("number", 30.0, "displacement strength in pixels"),
                             "sigma": Param("number", 5.0, "smoothness of the displacement field"),
                             "fill": FILL},
       WARP_TARGETS, "elastic distortion (Simard 2003)", offline=build, online=batch, warp=draw, fast="ElasticTransform",
       geometric=True),
)
