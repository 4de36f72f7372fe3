"""The online hook: a recipe applied to training batches (`pipeline train --augment RECIPE`).

    aug = OnlineAugmenter("configs/augment/digits.yaml", classes=dataset.classes, seed=0)
    x, y = aug(x_uint8, y_soft, step=step)   # (N, C, H, W) uint8, (N, K) -> float [0, 255], (N, K)

Single-sample ops run vectorised in torch on the whole batch, on its device: each sample flips
its own coin and parameters are drawn for the chosen samples only, from the offline ops'
distributions. Consecutive geometric ops compose into one warp (`_Chain`): their per-sample 3x3
matrices multiplied, an elastic displacement field added in output pixels, one affine grid
and one `grid_sample` for the batch. Blur is two batched matrix products (`gauss_matrices`).
Multi-sample ops pair each sample with a permutation of the batch
(`pipeline.augment.batch`). Each op's batched kernel is declared in its registry entry
(`pipeline.augment.ops`); this module holds the augmenter and the tensor helpers the kernels
share (matrices, warp, sampling, blur, luma). Everything is drawn from generators seeded by (seed, step), so a
step is reproducible. Same recipe semantics as the offline stage, not the same pixels: offline
runs albumentations on single images, online runs these batched kernels. Ops that change the
image size (resize, random_scale, random_crop to another size) are refused here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


def affine_matrices(n: int, h: int, w: int, gen: torch.Generator, degrees: tuple[float, float] = (0.0, 0.0),
                    translate: tuple[float, float] = (0.0, 0.0), scale: tuple[float, float] = (1.0, 1.0),
                    shear: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """Forward (input -> output pixel) matrices (N, 3, 3): rotation, zoom and shear about the
    centre, then a shift (fractions of the size). Six draws of `n` values each, always in the
    order angle, x zoom, x shift, y shift, shear, y zoom, whichever of them the op varies: the
    zoom of each axis is drawn on its own, as albumentations' `Affine` does (keep_ratio=False)."""
    a = torch.deg2rad(uniform(gen, n, *degrees))
    sx = uniform(gen, n, *scale)
    tx = uniform(gen, n, *translate) * w
    ty = uniform(gen, n, *translate) * h
    sh = torch.tan(torch.deg2rad(uniform(gen, n, *shear)))
    sy = uniform(gen, n, *scale)
    # the matrices from the draws in numpy: for a batch, microseconds instead of a tenth of a millisecond
    a, sx, sy, sh, tx, ty = (v.numpy() for v in (a, sx, sy, sh, tx, ty))
    cos, sin = np.cos(a), np.sin(a)
    m = np.zeros((n, 3, 3))
    m[:, 0, 0], m[:, 0, 1] = sx * cos, sy * (sh * cos - sin)
    m[:, 1, 0], m[:, 1, 1] = sx * sin, sy * (sh * sin + cos)
    # about the centre c: x -> A (x - c) + c, that is a shift of c - A c; then the drawn shift
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m[:, 0, 2] = cx - (m[:, 0, 0] * cx + m[:, 0, 1] * cy) + tx
    m[:, 1, 2] = cy - (m[:, 1, 0] * cx + m[:, 1, 1] * cy) + ty
    m[:, 2, 2] = 1.0
    return torch.from_numpy(m)


def base_grid(h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    """Homogeneous pixel coordinates (1, H*W, 3): x, y, 1 row by row."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, h * w, 3)


def _to_normalised(px: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel-centre coordinates (..., 2) -> grid_sample's [-1, 1] (align_corners=False)."""
    return torch.stack([(2 * px[..., 0] + 1) / w - 1, (2 * px[..., 1] + 1) / h - 1], dim=-1)


def _grid_sample(x: torch.Tensor, grid: torch.Tensor, fill: float) -> torch.Tensor:
    """Bilinear samples of `x` at normalised `grid` (N, H, W, 2); outside pixels get `fill` (one
    `grid_sample` call: a channel of ones rides along to tell how much of each sample was inside)."""
    c = x.shape[1]
    grid = grid.to(x.device, x.dtype)
    if not fill:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ones = torch.ones_like(x[:, :1])
    out = F.grid_sample(torch.cat([x, ones], dim=1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, :c] + fill * (1.0 - out[:, c:])


def sample(x: torch.Tensor, src_px: torch.Tensor, fill: float) -> torch.Tensor:
    """Sample `x` at source pixel coordinates (N, H, W, 2); outside pixels get `fill`."""
    _, _, h, w = x.shape
    return _grid_sample(x, _to_normalised(src_px.to(torch.float64), h, w), fill)


def _pixels_to_normalised(h: int, w: int) -> np.ndarray:
    """The 3x3 matrix taking pixel-centre coordinates to grid_sample's [-1, 1] (align_corners=False)."""
    return np.array([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0], [0.0, 0.0, 1.0]])


_AFFINE_ROW = np.array([0.0, 0.0, 1.0])


def _normalised_thetas(forward: torch.Tensor | None, n: int, h: int, w: int) -> np.ndarray | None:
    """The (N, 2, 3) matrices taking normalised output to normalised input coordinates, the inverse of
    each `forward` in grid_sample's units (identities when `forward` is None); None when a matrix is
    projective (its last row is not exactly 0, 0, 1). Worked out in numpy: for a batch of 3x3 matrices
    that is a few microseconds, where the same steps as tensors cost a tenth of a millisecond."""
    if forward is None:
        return np.broadcast_to(np.eye(3)[:2], (n, 2, 3))
    fwd = forward.detach().to("cpu", torch.float64).numpy()
    if not (fwd[:, 2] == _AFFINE_ROW).all():
        return None
    # N F^-1 N^-1 in closed form, N = diag(s) x + o the pixel-to-normalised map: the linear part is
    # L = S A^-1 S^-1 (A^-1 the 2x2 inverse by its adjugate), the shift o - L o - S A^-1 t
    a, b, tx = fwd[:, 0, 0], fwd[:, 0, 1], fwd[:, 0, 2]
    c, d, ty = fwd[:, 1, 0], fwd[:, 1, 1], fwd[:, 1, 2]
    det = a * d - b * c
    sx, sy, ox, oy = 2.0 / w, 2.0 / h, 1.0 / w - 1.0, 1.0 / h - 1.0
    out = np.empty((fwd.shape[0], 2, 3))
    out[:, 0, 0], out[:, 0, 1] = d / det, -b / det * (sx / sy)
    out[:, 1, 0], out[:, 1, 1] = -c / det * (sy / sx), a / det
    # the inverse's own shift, -A^-1 t in pixels, mapped by S
    out[:, 0, 2] = ox - out[:, 0, 0] * ox - out[:, 0, 1] * oy - sx * (d * tx - b * ty) / det
    out[:, 1, 2] = oy - out[:, 1, 0] * ox - out[:, 1, 1] * oy - sy * (a * ty - c * tx) / det
    return out


def _full_field(field: torch.Tensor, rows: torch.Tensor | None, n: int) -> torch.Tensor:
    """A displacement field for all `n` samples from one for the samples `rows` (None: it already is)."""
    if rows is None:
        return field
    full = field.new_zeros(n, *field.shape[1:])
    full[rows.to(field.device)] = field
    return full


def resample(x: torch.Tensor, forward: torch.Tensor | None = None, field: torch.Tensor | None = None,
             fill: float = 0.0, rows: torch.Tensor | None = None) -> torch.Tensor:
    """One warp of a batch (N, C, H, W): output pixel p shows input pixel ``forward^-1 (p + field(p))``.

    `forward` (N, 3, 3) maps input to output pixels (None: the identity); `field` (N, H, W, 2) is a
    displacement in output pixels (None: none), so an elastic field drawn after a chain of affine
    ops lands exactly where the sequential ops would put it. `rows`, when given, are the samples the
    field belongs to (then it is (len(rows), H, W, 2) and the others have none). For affine matrices
    the sampling grid is `affine_grid`'s, computed element-wise on the batch's device, with the field
    added on its rows only, then one `grid_sample`; a projective one samples a grid computed here.
    Outside pixels get `fill`.
    """
    n, c, h, w = x.shape
    thetas = _normalised_thetas(forward, n, h, w)
    if thetas is None:  # projective: the general path
        inv = torch.linalg.inv(forward.to(torch.float64).cpu())
        pts = base_grid(h, w, torch.float64)
        if field is not None:
            pts = pts.clone().repeat(n, 1, 1)
            pts[..., :2] = pts[..., :2] + _full_field(field, rows, n).to(torch.float64).reshape(n, h * w, 2).cpu()
        pts = pts @ inv.transpose(1, 2)
        return sample(x, (pts[..., :2] / pts[..., 2:3]).view(n, h, w, 2), fill)
    theta = torch.from_numpy(np.ascontiguousarray(thetas, dtype=np.float32)).to(x.device)  # (N, 2, 3)
    # what `affine_grid(theta, align_corners=False)` computes, element-wise: on CPU several times
    # faster for small images. Each coordinate is t0 * gx + (t1 * gy + t2): the bracket once per
    # row, then one pass over the grid, written in place into one preallocated tensor
    t = theta.reshape(n, 6, 1, 1)
    gx = ((2 * torch.arange(w, device=x.device, dtype=torch.float32) + 1) / w - 1).view(1, 1, w)
    gy = ((2 * torch.arange(h, device=x.device, dtype=torch.float32) + 1) / h - 1).view(1, h, 1)
    grid = torch.empty(n, h, w, 2, device=x.device, dtype=torch.float32)
    for k in range(2):
        torch.addcmul(torch.addcmul(t[:, 3 * k + 2], t[:, 3 * k + 1], gy), t[:, 3 * k], gx, out=grid[..., k])
    if field is not None:
        # t (p + d) = t p + A d: a displacement d in output pixels moves the sample by the matrix part
        # of t applied to d in normalised units, on the field's rows alone
        at = torch.arange(n, device=x.device) if rows is None else rows.to(x.device)
        moved = field.to(x.device, torch.float32)
        dx, dy = moved[..., 0] * (2.0 / w), moved[..., 1] * (2.0 / h)
        a = theta.index_select(0, at).reshape(-1, 6, 1, 1)
        delta = torch.stack([a[:, 0] * dx + a[:, 1] * dy, a[:, 3] * dx + a[:, 4] * dy], dim=-1)
        grid.index_add_(0, at, delta)
    return _grid_sample(x, grid, fill)


def warp(x: torch.Tensor, forward: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Apply per-sample forward matrices (N, 3, 3) to images (N, C, H, W)."""
    return resample(x, forward, None, fill)


@dataclass(frozen=True)
class Warp:
    """What a geometric op drew for a batch: forward matrices (N, 3, 3) in pixel coordinates and/or
    a displacement field (N, H, W, 2) in output pixels (`resample`). The augmenter composes the
    warps of consecutive geometric ops into one resampling; `Op.warp` declares the drawing."""

    matrix: torch.Tensor | None = None
    field: torch.Tensor | None = None


def apply_warp(x: torch.Tensor, drawn: Warp, fill: float) -> torch.Tensor:
    """A geometric op's batched kernel: its drawn `Warp` applied by one resampling."""
    return resample(x, drawn.matrix, drawn.field, fill)


def reflect_101(idx: torch.Tensor, size: int) -> torch.Tensor:
    """Indices outside [0, size) mirrored without repeating the edge (OpenCV's BORDER_REFLECT_101)."""
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    i = idx.abs() % period
    return torch.where(i >= size, period - i, i)


def gauss_matrices(sigma: torch.Tensor, size: int, radius: torch.Tensor | int, border: str = "reflect_101"
                   ) -> torch.Tensor:
    """Per-sample 1-D Gaussian blurs (N, size, size) as matrices with the border folded in, so
    ``K_h @ img @ K_w^T`` blurs a batch in two batched matmuls. `radius`: the kernel's half width,
    one for all or one per sample; `border`: "reflect_101" (OpenCV's default) or "replicate"."""
    n = sigma.shape[0]
    radius = torch.as_tensor(radius).expand(n) if not isinstance(radius, torch.Tensor) else radius
    top = max(0, int(radius.max()))
    t = torch.arange(-top, top + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.to(torch.float64).view(-1, 1).clamp(min=1e-6)) ** 2)
    k = k * (t.abs().view(1, -1) <= radius.view(-1, 1)).to(k.dtype)
    k = k / k.sum(dim=1, keepdim=True)
    idx = torch.arange(size).view(-1, 1) + t.long().view(1, -1)  # (size, 2r+1) source rows
    idx = reflect_101(idx, size) if border == "reflect_101" else idx.clamp(0, size - 1)
    out = torch.zeros(n, size, size, dtype=torch.float64)
    out.scatter_add_(2, idx.expand(n, -1, -1), k.view(n, 1, -1).expand(n, size, -1).contiguous())
    return out


def blur_with(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows @ x @ cols^T`` per sample: a separable blur given as matrices (N, H, H) and (N, W, W)."""
    rows = rows.to(x.device, x.dtype).unsqueeze(1)
    cols = cols.to(x.device, x.dtype).unsqueeze(1)
    return rows @ x @ cols.transpose(-1, -2)


def blur(x: torch.Tensor, sigma: torch.Tensor, radius: torch.Tensor | int | None = None) -> torch.Tensor:
    """Per-sample separable Gaussian blur (reflect-101 border) as two batched matmuls; the radius
    defaults to albumentations' ``int(3.5 sigma)`` per sample (PIL's rule)."""
    _, _, h, w = x.shape
    if radius is None:
        radius = (sigma.to(torch.float64) * 3.5).floor().long()
    rows = gauss_matrices(sigma, h, radius)
    return blur_with(x, rows, rows if w == h else gauss_matrices(sigma, w, radius))


# --------------------------------------------------------------------------------------------
# The augmenter
# --------------------------------------------------------------------------------------------


class _Chain:
    """Consecutive geometric ops composed into one resampling: their forward matrices multiplied
    (a sample whose coin failed contributes the identity) and at most one displacement field, the
    last op's. Same draws as applying them one by one; one interpolation instead of several."""

    def __init__(self, n: int, h: int, w: int) -> None:
        self.n, self.h, self.w = n, h, w
        self.matrix: np.ndarray | None = None  # (N, 3, 3) float64
        self.field: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None  # the samples the field belongs to
        self.fill: float | None = None

    def takes(self, fill: float) -> bool:
        """Whether an op with this border fill can join (a field ends a chain; fills must agree)."""
        return self.field is None and (self.fill is None or self.fill == fill)

    def add(self, drawn: Warp, chosen: torch.Tensor, fill: float) -> None:
        """Append an op's warp, drawn for the samples `chosen` (indices); the others keep still."""
        if drawn.matrix is not None:  # 3x3 matrices of a batch: numpy is the cheaper place to multiply them
            m = np.tile(np.eye(3), (self.n, 1, 1))
            m[chosen.cpu().numpy()] = drawn.matrix.detach().to("cpu", torch.float64).numpy()
            self.matrix = m if self.matrix is None else m @ self.matrix
        if drawn.field is not None:
            self.field, self.rows = drawn.field, chosen
        self.fill = fill

    def apply(self, img: torch.Tensor) -> torch.Tensor:
        """`img` resampled by the chain so far (unchanged when empty); the chain starts again."""
        if self.matrix is not None or self.field is not None:
            matrix = None if self.matrix is None else torch.from_numpy(self.matrix)
            img = resample(img, matrix, self.field, float(self.fill or 0.0), self.rows).clamp_(0.0, 255.0)
        self.matrix, self.field, self.rows, self.fill = None, None, None, None
        return img


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
        h, w = img.shape[2:]
        chain = _Chain(n, h, w)
        for op in self.recipe.single:
            # each sample flips its coin; parameters are drawn for the chosen samples only, in batch order
            chosen = torch.nonzero(torch.rand(n, generator=gen) < op.p).flatten()
            if chosen.numel() == 0:
                continue
            fill = op.params.get("fill", 0.0)
            if op.spec.warp is not None:
                if not chain.takes(fill):
                    img = chain.apply(img)
                chain.add(op.spec.warp(op, chosen.numel(), h, w, gen, rng), chosen, fill)
                continue
            img = chain.apply(img)
            at = chosen.to(img.device)
            new = op.spec.online(op, img.index_select(0, at), gen, rng).clamp(0.0, 255.0)
            img = img.index_copy(0, at, new)
        img = chain.apply(img)
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
