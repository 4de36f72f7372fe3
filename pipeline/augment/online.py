"""The online hook: a recipe applied to training batches (`pipeline train --augment RECIPE`).

    aug = OnlineAugmenter("configs/augment/digits.yaml", classes=dataset.classes, seed=0)
    x, y = aug(x_uint8, y_soft, step=step)   # (N, C, H, W) uint8, (N, K) -> float [0, 255], (N, K)

Single-sample ops run vectorised in torch on the whole batch: each sample flips its own coin
and draws its own parameters, then one kernel applies them (geometric ops as one per-sample
3x3 matrix through `grid_sample`, elastic as a smoothed displacement field, blur and sharpen as
grouped convolutions). Multi-sample ops pair each sample with a permutation of the batch
(`pipeline.augment.batch`). Each op's batched kernel is declared in its registry entry
(`pipeline.augment.ops`); this module holds the augmenter and the tensor helpers the kernels
share (matrices, warp, sampling, blur, luma). Everything is drawn from generators seeded by (seed, step), so a
step is reproducible. Same recipe semantics as the offline stage, not the same pixels: offline
runs albumentations on single images, online runs these batched kernels. Ops that change the
image size (resize, random_scale, random_crop to another size) are refused here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.augment.recipe import Recipe, load_recipe
from pipeline.core.errors import ConfigError
from pipeline.core.rng import derive_seed


def as_range(value: float | list[float], symmetric: bool) -> tuple[float, float]:
    """A `range` parameter as (lo, hi): v means (-v, v) when `symmetric`, else (v, v)."""
    if isinstance(value, list):
        return float(value[0]), float(value[1])
    return (-float(value), float(value)) if symmetric else (float(value), float(value))


def uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """`n` float64 draws from U(lo, hi) (one `torch.rand` call)."""
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Geometry: per-sample forward matrices in pixel coordinates, applied by one warp
# --------------------------------------------------------------------------------------------


def _centred(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """`m` (N, 3, 3) acting about the image centre."""
    c = torch.eye(3, dtype=m.dtype).repeat(m.shape[0], 1, 1)
    ci = c.clone()
    c[:, 0, 2], c[:, 1, 2] = (w - 1) / 2.0, (h - 1) / 2.0
    ci[:, 0, 2], ci[:, 1, 2] = -(w - 1) / 2.0, -(h - 1) / 2.0
    return c @ m @ ci


def affine_matrices(n: int, h: int, w: int, gen: torch.Generator, degrees: tuple[float, float] = (0.0, 0.0),
                    translate: tuple[float, float] = (0.0, 0.0), scale: tuple[float, float] = (1.0, 1.0),
                    shear: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """Forward (input -> output pixel) matrices (N, 3, 3): rotation, zoom and shear about the
    centre, then a shift (fractions of the size). Five draws of `n` values each, always in the
    order angle, zoom, x shift, y shift, shear, whichever of them the op varies."""
    a = torch.deg2rad(uniform(gen, n, *degrees))
    s = uniform(gen, n, *scale)
    tx = uniform(gen, n, *translate) * w
    ty = uniform(gen, n, *translate) * h
    sh = torch.tan(torch.deg2rad(uniform(gen, n, *shear)))
    m = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    m[:, 0, 0], m[:, 0, 1] = s * torch.cos(a), s * (-torch.sin(a) + sh * torch.cos(a))
    m[:, 1, 0], m[:, 1, 1] = s * torch.sin(a), s * (torch.cos(a) + sh * torch.sin(a))
    m = _centred(m, h, w)
    m[:, 0, 2] += tx
    m[:, 1, 2] += ty
    return m


def base_grid(h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    """Homogeneous pixel coordinates (1, H*W, 3): x, y, 1 row by row."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, h * w, 3)


def _to_normalised(px: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel-centre coordinates (..., 2) -> grid_sample's [-1, 1] (align_corners=False)."""
    return torch.stack([(2 * px[..., 0] + 1) / w - 1, (2 * px[..., 1] + 1) / h - 1], dim=-1)


def sample(x: torch.Tensor, src_px: torch.Tensor, fill: float) -> torch.Tensor:
    """Sample `x` at source pixel coordinates (N, H, W, 2); outside pixels get `fill`."""
    n, c, h, w = x.shape
    grid = _to_normalised(src_px, h, w).to(x.dtype)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if fill:
        inside = F.grid_sample(torch.ones(n, 1, h, w, dtype=x.dtype, device=x.device), grid, mode="bilinear",
                               padding_mode="zeros", align_corners=False)
        out = out + fill * (1.0 - inside)
    return out


def warp(x: torch.Tensor, forward: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Apply per-sample forward matrices (N, 3, 3) to images (N, C, H, W)."""
    n, _, h, w = x.shape
    inv = torch.linalg.inv(forward).to(torch.float64)
    pts = base_grid(h, w, torch.float64) @ inv.transpose(1, 2)  # (N, HW, 3)
    src = pts[..., :2] / pts[..., 2:3]
    return sample(x, src.view(n, h, w, 2).to(x.device), fill)


def _gauss_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64).view(1, -1)
    k = torch.exp(-(t**2) / (2 * sigma.view(-1, 1).clamp(min=1e-3) ** 2))
    return k / k.sum(dim=1, keepdim=True)


def blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample separable Gaussian blur (reflect padding) as grouped convolutions."""
    n, c, h, w = x.shape
    radius = max(1, min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1) // 2))
    k = _gauss_kernels(sigma, radius).to(x.dtype).to(x.device)  # (N, 2r+1)
    weight = k.repeat_interleave(c, dim=0)  # (N*C, 2r+1)
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), weight.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), weight.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


# --------------------------------------------------------------------------------------------
# The augmenter
# --------------------------------------------------------------------------------------------


class OnlineAugmenter:
    """Applies a recipe to uint8 batches with soft targets; deterministic from (seed, step).

    Each op runs its registry entry's batched kernel (`pipeline.augment.ops`)."""

    def __init__(self, recipe_path: str | Path | Recipe, classes: list[str], seed: int = 0) -> None:
        self.recipe = recipe_path if isinstance(recipe_path, Recipe) else load_recipe(recipe_path)
        self.classes = list(classes)
        self.seed = int(seed)
        self.recipe.check_targets({"label"}, where="online training batches")
        for i, op in enumerate(self.recipe.ops):
            if op.spec.resizes(op.params):
                raise ConfigError(
                    f"{self.recipe.path}: ops[{i}] {op.name!r} changes the image size, which online training cannot take",
                    fix="remove it from the recipe, or augment offline with `pipeline augment`",
                )
            if op.spec.online is None:
                raise ConfigError(f"{self.recipe.path}: ops[{i}] {op.name!r} is not available online",
                                  fix="remove it from the recipe, or augment offline with `pipeline augment`")

    def __repr__(self) -> str:
        return f"OnlineAugmenter({self.recipe.name!r}, ops={[o.name for o in self.recipe.ops]}, seed={self.seed})"

    def __call__(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4:
            raise ConfigError(f"online augmentation expects (N, C, H, W) images, got shape {tuple(x.shape)}")
        if y.shape != (x.shape[0], len(self.classes)):
            raise ConfigError(f"online augmentation expects targets of shape (N, {len(self.classes)}), got {tuple(y.shape)}")
        seed = derive_seed(self.seed, "online", int(step))
        gen = torch.Generator().manual_seed(seed & ((1 << 62) - 1))
        rng = np.random.Generator(np.random.PCG64(seed))
        img = x.to(torch.float32)
        target = y.to(torch.float32).clone()
        n = img.shape[0]
        for op in self.recipe.single:
            on = torch.rand(n, generator=gen) < op.p
            new = op.spec.online(op, img, gen, rng)  # drawn whatever the coins say: the draws stay aligned
            if bool(on.any()):
                img = torch.where(on.view(-1, 1, 1, 1).to(img.device), new, img).clamp_(0.0, 255.0)
        for op in self.recipe.multi:
            img, target = op.spec.online(op, img, target, gen, rng)
        if self.recipe.label_smoothing > 0:
            eps = self.recipe.label_smoothing
            target = target * (1.0 - eps) + eps / target.shape[1]
        target = target / target.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return img.clamp(0.0, 255.0), target


def grey(x: torch.Tensor) -> torch.Tensor:
    """The luma (N, 1, H, W) of RGB batches (BT.601 weights); the first channel otherwise."""
    if x.shape[1] != 3:
        return x[:, :1]
    wts = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * wts).sum(dim=1, keepdim=True)


def hue_rotate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Hue rotation by `shift` turns (fraction of 360 degrees) in YIQ space, per sample."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          dtype=x.dtype, device=x.device)
    from_yiq = torch.linalg.inv(to_yiq)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    a = shift * 2 * math.pi
    cos, sin = torch.cos(a).view(-1, 1, 1), torch.sin(a).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], i * cos - q * sin, i * sin + q * cos], dim=1)
    return torch.einsum("ij,njhw->nihw", from_yiq, yiq).clamp(0, 255)
