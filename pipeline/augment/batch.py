"""Batched multi-sample ops in torch for online training: SamplePairing, Mixup, CutMix, Cutout, Mosaic.

Inputs are float images ``x`` (N, C, H, W) in [0, 255] and soft targets ``y`` (N, K). Partners
are a permutation of the batch. Each op has a ``draw_*`` function that draws every random
parameter from an injected `torch.Generator` (and numpy `Generator` for Beta draws), and a pure
``*_apply`` kernel that never modifies its inputs. Samples whose coin flip (probability ``p``)
fails keep their image and target exactly.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def _coin(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


# --------------------------------------------------------------------------------------------
# Mixup and SamplePairing
# --------------------------------------------------------------------------------------------


def _beta(rng: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    """`n` draws of Beta(alpha, alpha) as float64.

    Beta(1, 1) is the uniform distribution, and is drawn as such: numpy's general sampler uses
    Johnk's rejection method for alpha <= 1 (two powers per try, about two tries per draw), ten
    times the cost of a uniform draw. CutMix's usual alpha is 1.
    """
    if alpha == 1.0:
        return rng.random(n)
    return rng.beta(alpha, alpha, size=n)


def draw_mixup(n: int, p: float, alpha: float, gen: torch.Generator, rng: np.random.Generator) -> dict:
    on = _coin(n, p, gen).numpy()
    lam = _beta(rng, alpha, n).astype(np.float32)
    return {"lam": torch.from_numpy(np.where(on, lam, np.float32(1.0))), "perm": torch.randperm(n, generator=gen)}


def _blend(a: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``a * lam + a[perm] * (1 - lam)``, `lam` broadcast per sample.

    For floating-point `a` (and `lam` of its dtype) one gather (`index_select`, far cheaper than
    advanced indexing) fills the output buffer, which is then scaled and summed in place: the same
    products and sum as the formula, bit for bit, without its three temporaries.
    """
    if not (a.is_floating_point() and lam.dtype == a.dtype):
        return a * lam + a[perm] * (1.0 - lam)  # integer images: the formula's own type promotion
    out = torch.index_select(a, 0, perm)
    return out.mul_(1.0 - lam).add_(a * lam)


def mixup_apply(x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``lam * x + (1 - lam) * x[perm]`` per sample, the same for the targets."""
    lam = lam.to(x.device, x.dtype)
    perm = perm.to(x.device)
    return _blend(x, perm, lam.view(-1, 1, 1, 1)), _blend(y, perm.to(y.device), lam.view(-1, 1).to(y.dtype))


def draw_sample_pairing(n: int, p: float, gen: torch.Generator) -> dict:
    return {"on": _coin(n, p, gen), "perm": torch.randperm(n, generator=gen)}


def sample_pairing_apply(x: torch.Tensor, y: torch.Tensor, on: torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The average with the partner; targets unchanged (Inoue 2018)."""
    mixed = (x + x[perm.to(x.device)]) * 0.5
    return torch.where(on.to(x.device).view(-1, 1, 1, 1), mixed, x), y.clone()


# --------------------------------------------------------------------------------------------
# CutMix and Cutout
# --------------------------------------------------------------------------------------------


def _rect_mask(rects: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, 4) integer rects x1, y1, x2, y2 -> boolean masks (N, 1, H, W)."""
    ys = torch.arange(h, device=rects.device).view(1, h, 1)
    xs = torch.arange(w, device=rects.device).view(1, 1, w)
    r = rects.view(-1, 4, 1, 1)
    m = (xs >= r[:, 0]) & (xs < r[:, 2]) & (ys >= r[:, 1]) & (ys < r[:, 3])
    return m.unsqueeze(1)


_SAME_WIDTH_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_NUMPY_FLOAT = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}
_NUMPY_INT = {torch.uint8: np.uint8, torch.int16: np.int16, torch.int32: np.int32, torch.int64: np.int64}


@functools.lru_cache(maxsize=32)
def _spans(length: int, dtype: type) -> np.ndarray:
    """``table[a, b]`` = the mask of ``a <= j < b`` over ``j < length`` as `dtype`, all ones inside
    (-1; for booleans True), for every 0 <= a, b <= length: one lookup per sample replaces a
    broadcast comparison of each sample's bounds against an `arange`."""
    j = np.arange(length)
    bounds = np.arange(length + 1)
    inside = (j >= bounds[:, None, None]) & (j < bounds[None, :, None])
    return inside if dtype is np.bool_ else -inside.astype(dtype)


def _span_rows(length: int, dtype: type, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``_spans(length, dtype)[a, b]``: one `np.take` of flat row numbers, cheaper than indexing
    with two arrays."""
    table = _spans(length, dtype)
    return np.take(table.reshape(-1, length), a * (length + 1) + b, axis=0)


@functools.lru_cache(maxsize=16)
def _row_numbers(n: int, c: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The (N, C, H) row numbers of a contiguous (N, C, H, W) batch, and each sample's first row."""
    return np.arange(n * c * h).reshape(n, c, h), np.arange(n) * (c * h)


@functools.lru_cache(maxsize=16)
def _limits(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, h) and (w, h, w, h) as float64 columns, and (w, h, w, h) as int64: the bounds a rect is
    clipped to."""
    return np.array([[w], [h]], dtype=np.float64), np.array([[w], [h], [w], [h]], dtype=np.float64), np.array([w, h, w, h])


def _paste(x: torch.Tensor, perm: np.ndarray, r: np.ndarray) -> torch.Tensor:
    """Sample i with the rect ``r[i]`` (x1, y1, x2, y2, clipped to the image) of sample ``perm[i]``
    pasted in, every sample at once, exact to the bit (NaN payloads, infinities and signed zeros
    included): the same result as ``torch.where(rect mask, x[perm], x)``.

    1. One row gather by index arithmetic: row y of sample i (every channel) comes from sample
       ``perm[i]`` when y1 <= y < y2, else from sample i itself (the row span as an all-ones mask
       and-ed with the row offset to the partner: two integer ops on (N, H)).
    2. One column select on the raw bits, ``x ^ ((x ^ rows) & cols)``, with each sample's column
       mask (all ones where x1 <= x < x2) broadcast as (N, 1, 1, W): a row taken from the sample
       itself equals `x`, so only the rect's rows change, and in them only the rect's columns.
    No full-size mask is built and nothing loops over samples; `torch.where`, unvectorized on a CPU,
    costs about twice the three bitwise passes.
    """
    n, c, h, w = x.shape
    ints = _SAME_WIDTH_INT[x.element_size()]
    x = x.contiguous()
    own, first = _row_numbers(n, c, h)
    shift = _span_rows(h, np.int64, r[:, 1], r[:, 3]) & (perm * (c * h) - first)[:, None]  # (N, H)
    rows = (own + shift[:, None, :]).reshape(-1)
    cols = torch.from_numpy(_span_rows(w, _NUMPY_INT[ints], r[:, 0], r[:, 2])).view(n, 1, 1, w)
    if x.device.type == "cpu":  # numpy's row gather is the cheaper one here
        bits = x.detach().view(ints).view(n * c * h, w).numpy()
        out = torch.from_numpy(np.take(bits, rows, axis=0)).view(x.dtype).view(n, c, h, w)
    else:
        out = torch.index_select(x.view(n * c * h, w), 0, torch.from_numpy(rows).to(x.device)).view(n, c, h, w)
        cols = cols.to(x.device)
    xi = x.view(ints)
    out.view(ints).bitwise_xor_(xi).bitwise_and_(cols).bitwise_xor_(xi)
    return out


def draw_cutmix(n: int, h: int, w: int, p: float, alpha: float, gen: torch.Generator, rng: np.random.Generator) -> dict:
    """Rects from lambda ~ Beta(alpha, alpha) and a uniform centre; clipped to the image.

    The arithmetic on these few numbers per sample runs in numpy ufuncs (float64, rounding half to
    even as torch does; the integers involved are exact in float64) on one (4, N) array, its rows
    x1, y1, x2, y2: every operand is a whole row of N, so each ufunc runs one long loop (on (N, 2)
    columns numpy would loop over N pairs). A dozen small torch ops would cost more than the
    pasting itself. The coin is torch's uniform draw compared in float32, as
    ``torch.rand(n) < p`` compares.
    """
    coin = torch.rand(n, generator=gen)  # drawn whatever p is: the later draws do not depend on p
    cut = _beta(rng, alpha, n)
    centre = torch.rand(n, 2, generator=gen, dtype=torch.float64).numpy()
    extent, bounds, _ = _limits(h, w)
    rects = np.empty((4, n))
    lo, size = rects[:2], rects[2:]
    np.subtract(1.0, cut, out=cut)
    np.sqrt(cut, out=cut)
    np.multiply(cut, extent, out=size)
    np.rint(size, out=size)  # cut width, cut height
    np.multiply(centre.T, extent, out=lo)
    np.rint(lo, out=lo)  # the centre
    lo -= np.floor(size * 0.5)  # size // 2: sizes are whole and >= 0, halving is exact
    size += lo  # now the far corner
    np.maximum(rects, 0.0, out=rects)
    np.minimum(rects, bounds, out=rects)
    if not p >= 1.0:  # rand < 1 always: with p >= 1 every sample is on
        rects *= coin.numpy() < np.float32(p)
    return {"rects": torch.from_numpy(np.ascontiguousarray(rects.T, dtype=np.int64)),
            "perm": torch.randperm(n, generator=gen)}


def cutmix_apply(x: torch.Tensor, y: torch.Tensor, rects: torch.Tensor, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste each partner's rect; lambda = 1 - pasted area / image area (after clipping).

    Every box is pasted at once, with no loop over samples (`_paste`). Targets on the CPU in
    float32/float64 are mixed in numpy (``y * lam + y[perm] * (1 - lam)``, the same IEEE products
    and sum in y's precision, without torch's per-op cost on a few thousand numbers).
    """
    n, _, h, w = x.shape
    r = rects.cpu().numpy()
    p = perm.cpu().numpy()
    out = _paste(x, p, np.minimum(np.maximum(r, 0), _limits(h, w)[2]))  # outside the image = at its edge
    area = (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])
    ftype = _NUMPY_FLOAT.get(y.dtype)
    if ftype is not None and y.device.type == "cpu" and not y.requires_grad and ftype is not np.float16:
        yn = y.numpy()
        lam = (ftype(1.0) - area.astype(ftype) / ftype(h * w))[:, None]
        mixed = np.take(yn, p, axis=0)
        mixed *= ftype(1.0) - lam
        mixed += yn * lam
        return out, torch.from_numpy(mixed)
    if ftype is not None:  # the same IEEE division and subtraction in y's own precision, in numpy
        lam = torch.from_numpy(ftype(1.0) - area.astype(ftype) / ftype(h * w)).to(y.device)
    else:
        lam = 1.0 - torch.from_numpy(area).to(y.device, y.dtype) / float(h * w)
    return out, _blend(y, perm.to(y.device), lam.view(-1, 1))


def draw_cutout(n: int, h: int, w: int, p: float, holes: int, size: tuple[float, float], fill: float | str,
                channels: int, gen: torch.Generator) -> dict:
    on = _coin(n, p, gen)
    side = (size[0] + (size[1] - size[0]) * torch.rand(n, holes, generator=gen)) * min(h, w)
    side = torch.round(side).long().clamp(min=1)
    cx = torch.randint(0, w, (n, holes), generator=gen)
    cy = torch.randint(0, h, (n, holes), generator=gen)
    x1, y1 = (cx - side // 2).clamp(0, w), (cy - side // 2).clamp(0, h)
    x2, y2 = (cx - side // 2 + side).clamp(0, w), (cy - side // 2 + side).clamp(0, h)
    rects = torch.stack([x1, y1, x2, y2], dim=2)  # (N, holes, 4)
    rects = torch.where(on.view(-1, 1, 1), rects, torch.zeros_like(rects))
    noise = torch.randint(0, 256, (n, channels, h, w), generator=gen).float() if fill == "random" else None
    return {"rects": rects, "fill": fill, "noise": noise}


def cutout_apply(x: torch.Tensor, y: torch.Tensor, rects: torch.Tensor, fill: float | str,
                 noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Erase the union of each sample's squares; targets unchanged."""
    n, _, h, w = x.shape
    holes = rects.shape[1]
    mask = _rect_mask(rects.to(x.device).reshape(-1, 4), h, w).view(n, holes, h, w).any(dim=1, keepdim=True)
    value = noise.to(x.device, x.dtype) if noise is not None else torch.tensor(float(fill), device=x.device, dtype=x.dtype)
    return torch.where(mask, value, x), y.clone()


# --------------------------------------------------------------------------------------------
# Mosaic
# --------------------------------------------------------------------------------------------


def draw_mosaic(n: int, h: int, w: int, p: float, tiles: int, gen: torch.Generator) -> dict:
    """Cut lines per sample (one per axis for 4 tiles, two for 9) and one permutation per extra tile."""
    on = _coin(n, p, gen)
    k = 1 if tiles == 4 else 2
    lo, hi = (0.25, 0.75) if tiles == 4 else (0.2, 0.8)
    cx = torch.sort(lo + (hi - lo) * torch.rand(n, k, generator=gen), dim=1).values
    cy = torch.sort(lo + (hi - lo) * torch.rand(n, k, generator=gen), dim=1).values
    perms = [torch.randperm(n, generator=gen) for _ in range(tiles - 1)]
    return {"on": on, "cx": torch.round(cx * w).long(), "cy": torch.round(cy * h).long(), "perms": perms}


def mosaic_apply(x: torch.Tensor, y: torch.Tensor, on: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor,
                 perms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell (i, j) of the grid shows the same region of source i * cols + j (source 0 = the sample
    itself); the target is the area-weighted mix."""
    n, _, h, w = x.shape
    dev = x.device
    zeros = torch.zeros(n, 1, dtype=torch.long, device=dev)
    xs_cut = torch.cat([zeros, cx.to(dev), torch.full_like(zeros, w)], dim=1)
    ys_cut = torch.cat([zeros, cy.to(dev), torch.full_like(zeros, h)], dim=1)
    cols = xs_cut.shape[1] - 1
    sources = [torch.arange(n, device=dev)] + [q.to(dev) for q in perms]
    out = torch.zeros_like(x)
    target = torch.zeros_like(y)
    for i in range(cols):
        for j in range(cols):
            rect = torch.stack([xs_cut[:, j], ys_cut[:, i], xs_cut[:, j + 1], ys_cut[:, i + 1]], dim=1)
            src = sources[i * cols + j]
            mask = _rect_mask(rect, h, w)
            out = torch.where(mask, x[src], out)
            area = ((rect[:, 2] - rect[:, 0]) * (rect[:, 3] - rect[:, 1])).to(y.dtype) / float(h * w)
            target = target + y[src] * area.view(-1, 1)
    on = on.to(dev)
    return torch.where(on.view(-1, 1, 1, 1), out, x), torch.where(on.view(-1, 1), target, y)
