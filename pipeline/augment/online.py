"""The online hook: a recipe applied to training batches (`pipeline train --augment RECIPE`).

    aug = OnlineAugmenter("configs/augment/digits.yaml", classes=dataset.classes, seed=0)
    x, y = aug(x_uint8, y_soft, step=step)   # (N, C, H, W) uint8, (N, K) -> float [0, 255], (N, K)

Single-sample ops run vectorised in torch on the whole batch: each sample flips its own coin
and draws its own parameters, then one kernel applies them (geometric ops as one per-sample
3x3 matrix through `grid_sample`, elastic as a smoothed displacement field, blur and sharpen as
grouped convolutions). Multi-sample ops pair each sample with a permutation of the batch
(`pipeline.augment.batch`). Everything is drawn from generators seeded by (seed, step), so a
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

from pipeline.augment import batch as B
from pipeline.augment.recipe import OpConfig, Recipe, load_recipe
from pipeline.core.errors import ConfigError
from pipeline.core.rng import derive_seed

_GEOMETRIC = {"rotate", "affine", "shift", "scale", "random_crop", "perspective"}


def _range(value: float | list[float], symmetric: bool) -> tuple[float, float]:
    if isinstance(value, list):
        return float(value[0]), float(value[1])
    return (-float(value), float(value)) if symmetric else (float(value), float(value))


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
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


def draw_matrix(op: OpConfig, n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Forward (input -> output pixel) matrices (N, 3, 3) for one geometric op."""
    k = op.params
    eye = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    if op.name == "random_crop":
        pad = k["padding"]
        m = eye.clone()
        m[:, 0, 2] = torch.randint(-pad, pad + 1, (n,), generator=gen).double()
        m[:, 1, 2] = torch.randint(-pad, pad + 1, (n,), generator=gen).double()
        return m
    if op.name == "perspective":
        import cv2

        lo, hi = _range(k["scale"], symmetric=False)
        scale = _uniform(gen, n, lo, hi).numpy()
        jitter = torch.rand(n, 4, 2, generator=gen, dtype=torch.float64).numpy()
        src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
        inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)
        out = []
        for i in range(n):
            dst = src + inward * jitter[i] * scale[i] * np.array([w, h])
            out.append(cv2.getPerspectiveTransform(src, dst.astype(np.float32)))
        return torch.from_numpy(np.stack(out))
    degrees = _range(k.get("degrees", 0.0), True) if op.name in ("rotate", "affine") else (0.0, 0.0)
    translate = _range(k.get("translate", 0.0), True) if op.name in ("affine", "shift") else (0.0, 0.0)
    scale = _range(k.get("scale", 1.0), False) if op.name in ("affine", "scale") else (1.0, 1.0)
    shear = _range(k.get("shear", 0.0), True) if op.name == "affine" else (0.0, 0.0)
    a = torch.deg2rad(_uniform(gen, n, *degrees))
    s = _uniform(gen, n, *scale)
    tx = _uniform(gen, n, *translate) * w
    ty = _uniform(gen, n, *translate) * h
    sh = torch.tan(torch.deg2rad(_uniform(gen, n, *shear)))
    m = eye.clone()
    m[:, 0, 0], m[:, 0, 1] = s * torch.cos(a), s * (-torch.sin(a) + sh * torch.cos(a))
    m[:, 1, 0], m[:, 1, 1] = s * torch.sin(a), s * (torch.cos(a) + sh * torch.sin(a))
    m = _centred(m, h, w)
    m[:, 0, 2] += tx
    m[:, 1, 2] += ty
    return m


def _base_grid(h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, h * w, 3)


def _to_normalised(px: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel-centre coordinates (..., 2) -> grid_sample's [-1, 1] (align_corners=False)."""
    return torch.stack([(2 * px[..., 0] + 1) / w - 1, (2 * px[..., 1] + 1) / h - 1], dim=-1)


def _sample(x: torch.Tensor, src_px: torch.Tensor, fill: float) -> torch.Tensor:
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
    pts = _base_grid(h, w, torch.float64) @ inv.transpose(1, 2)  # (N, HW, 3)
    src = pts[..., :2] / pts[..., 2:3]
    return _sample(x, src.view(n, h, w, 2).to(x.device), fill)


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
    """Applies a recipe to uint8 batches with soft targets; deterministic from (seed, step)."""

    def __init__(self, recipe_path: str | Path | Recipe, classes: list[str], seed: int = 0) -> None:
        self.recipe = recipe_path if isinstance(recipe_path, Recipe) else load_recipe(recipe_path)
        self.classes = list(classes)
        self.seed = int(seed)
        self.recipe.check_targets({"label"}, where="online training batches")
        for i, op in enumerate(self.recipe.ops):
            if op.name in ("resize", "random_scale") or (op.name == "random_crop" and op.params["size"] is not None):
                raise ConfigError(
                    f"{self.recipe.path}: ops[{i}] {op.name!r} changes the image size, which online training cannot take",
                    fix="remove it from the recipe, or augment offline with `pipeline augment`",
                )

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
        n, c, h, w = img.shape
        for op in self.recipe.single:
            on = torch.rand(n, generator=gen) < op.p
            if not bool(on.any()):
                _ = self._single(op, img, gen, rng)  # keep the draws aligned whatever the coins say
                continue
            new = self._single(op, img, gen, rng)
            img = torch.where(on.view(-1, 1, 1, 1).to(img.device), new, img).clamp_(0.0, 255.0)
        for op in self.recipe.multi:
            img, target = self._multi(op, img, target, gen, rng)
        if self.recipe.label_smoothing > 0:
            eps = self.recipe.label_smoothing
            target = target * (1.0 - eps) + eps / target.shape[1]
        target = target / target.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return img.clamp(0.0, 255.0), target

    # -- single-sample ops on the batch ------------------------------------------------------
    def _single(self, op: OpConfig, x: torch.Tensor, gen: torch.Generator, rng: np.random.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        k = op.params
        name = op.name
        if name == "hflip":
            return x.flip(-1)
        if name == "vflip":
            return x.flip(-2)
        if name in _GEOMETRIC:
            return warp(x, draw_matrix(op, n, h, w, gen), k.get("fill", 0.0))
        if name == "elastic":
            noise = torch.rand(n, 2, h, w, generator=gen, dtype=torch.float64) * 2 - 1
            field = blur(noise, torch.full((n,), float(k["sigma"]), dtype=torch.float64))
            base = _base_grid(h, w, torch.float64)[..., :2].view(1, h, w, 2)
            src = base + k["alpha"] * field.permute(0, 2, 3, 1)
            return _sample(x, src.to(x.device), k["fill"])
        if name == "gaussian_blur":
            lo, hi = _range(k["sigma"], symmetric=False)
            return blur(x, _uniform(gen, n, lo, hi))
        if name == "color_jitter":
            return self._jitter(x, k, gen)
        if name == "grayscale":
            return _grey(x).expand(-1, c, -1, -1) if c == 3 else x
        if name == "noise":
            lo, hi = _range(k["std"], symmetric=False)
            std = _uniform(gen, n, lo, hi).to(x.dtype).view(-1, 1, 1, 1) * 255.0
            return x + std * torch.randn(x.shape, generator=gen).to(x.device)
        if name == "sharpen":
            a_lo, a_hi = _range(k["alpha"], symmetric=False)
            l_lo, l_hi = _range(k["lightness"], symmetric=False)
            alpha = _uniform(gen, n, a_lo, a_hi)
            light = _uniform(gen, n, l_lo, l_hi)
            ident = torch.zeros(n, 3, 3, dtype=torch.float64)
            ident[:, 1, 1] = 1.0
            sharp = -torch.ones(n, 3, 3, dtype=torch.float64)
            sharp[:, 1, 1] = 8.0 + light
            kern = (1 - alpha.view(-1, 1, 1)) * ident + alpha.view(-1, 1, 1) * sharp
            weight = kern.repeat_interleave(c, dim=0).view(n * c, 1, 3, 3).to(x.dtype).to(x.device)
            flat = F.pad(x.reshape(1, n * c, h, w), (1, 1, 1, 1), mode="replicate")
            return F.conv2d(flat, weight, groups=n * c).view(n, c, h, w)
        if name == "invert":
            return 255.0 - x
        raise ConfigError(f"{name!r} is not available online")

    # -- multi-sample ops on the batch: partners are a permutation of it ----------------------
    def _multi(self, op: OpConfig, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
               rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x.shape
        k = op.params
        if op.name == "mixup":
            return B.mixup_apply(x, y, **B.draw_mixup(n, op.p, k["alpha"], gen, rng))
        if op.name == "cutmix":
            return B.cutmix_apply(x, y, **B.draw_cutmix(n, h, w, op.p, k["alpha"], gen, rng))
        if op.name == "cutout":
            size = _range(k["size"], symmetric=False)
            return B.cutout_apply(x, y, **B.draw_cutout(n, h, w, op.p, k["holes"], size, k["fill"], c, gen))
        if op.name == "sample_pairing":
            return B.sample_pairing_apply(x, y, **B.draw_sample_pairing(n, op.p, gen))
        if op.name == "mosaic":
            return B.mosaic_apply(x, y, **B.draw_mosaic(n, h, w, op.p, int(k["tiles"]), gen))
        raise ConfigError(f"{op.name!r} is not a multi-sample op")

    def _jitter(self, x: torch.Tensor, k: dict, gen: torch.Generator) -> torch.Tensor:
        n, c = x.shape[:2]
        b, ct, s, hue = k["brightness"], k["contrast"], k["saturation"], k["hue"]
        fb = _uniform(gen, n, max(0.0, 1 - b), 1 + b).to(x.dtype).view(-1, 1, 1, 1).to(x.device)
        fc = _uniform(gen, n, max(0.0, 1 - ct), 1 + ct).to(x.dtype).view(-1, 1, 1, 1).to(x.device)
        fs = _uniform(gen, n, max(0.0, 1 - s), 1 + s).to(x.dtype).view(-1, 1, 1, 1).to(x.device)
        fh = _uniform(gen, n, -hue, hue).to(x.dtype).to(x.device)
        out = (x * fb).clamp(0, 255)
        mean = _grey(out).mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * fc + mean).clamp(0, 255)
        if c == 3:
            g = _grey(out)
            out = ((out - g) * fs + g).clamp(0, 255)
            if hue > 0:
                out = _hue_rotate(out, fh)
        return out


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x[:, :1]
    wts = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * wts).sum(dim=1, keepdim=True)


def _hue_rotate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
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
