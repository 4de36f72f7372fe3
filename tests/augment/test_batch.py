"""pipeline.augment.batch: the batched multi-sample ops, drawn then applied.

Every `*_apply` kernel is pure (inputs untouched), samples whose coin fails keep their image and
target exactly, and soft targets stay probability vectors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.augment import batch as B

SETTINGS = settings(max_examples=15, deadline=None)


def batch(n: int = 16, c: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.nn.functional.one_hot(torch.randint(0, 10, (n,), generator=g), 10).float()
    return x, y


def gens(seed: int = 0) -> tuple[torch.Generator, np.random.Generator]:
    return torch.Generator().manual_seed(seed), np.random.default_rng(seed)


@SETTINGS
@given(seed=st.integers(0, 2**31), alpha=st.floats(0.1, 4.0))
def test_batched_cutmix_lambda_is_the_pasted_area(seed, alpha):
    n = 8
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 32, 32).contiguous()
    y = torch.eye(n)
    params = B.draw_cutmix(n, 32, 32, 1.0, alpha, torch.Generator().manual_seed(seed), np.random.default_rng(seed))
    out, target = B.cutmix_apply(x, y, **params)
    perm = params["perm"]
    for i in range(n):
        pasted = float((out[i] == perm[i]).float().mean()) if perm[i] != i else 0.0
        if perm[i] != i:
            assert target[i, i] == pytest.approx(1 - pasted, abs=1e-6)
            assert target[i, perm[i]] == pytest.approx(pasted, abs=1e-6)
    assert torch.allclose(target.sum(dim=1), torch.ones(n))


@SETTINGS
@given(seed=st.integers(0, 2**31), tiles=st.sampled_from([4, 9]))
def test_batched_mixup_mosaic_soft_labels_sum_to_one_and_inputs_untouched(seed, tiles):
    x, y = batch(10, 1, seed % 1000)
    x = x.float()
    x0, y0 = x.clone(), y.clone()
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    for out, target in (B.mixup_apply(x, y, **B.draw_mixup(10, 0.7, 0.4, gen, rng)),
                        B.mosaic_apply(x, y, **B.draw_mosaic(10, 32, 32, 0.7, tiles, gen)),
                        B.cutout_apply(x, y, **B.draw_cutout(10, 32, 32, 0.7, 2, (0.2, 0.4), "random", 1, gen)),
                        B.sample_pairing_apply(x, y, **B.draw_sample_pairing(10, 0.7, gen))):
        assert torch.allclose(target.sum(dim=1), torch.ones(10), atol=1e-6)
        assert out.shape == x.shape
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_rect_masks_cover_exactly_their_rectangles() -> None:
    rects = torch.tensor([[1, 2, 4, 3], [0, 0, 0, 0], [3, 0, 5, 5]])
    mask = B._rect_mask(rects, 5, 5)
    assert mask.shape == (3, 1, 5, 5)
    assert mask[0, 0].sum() == 3 and bool(mask[0, 0, 2, 1:4].all())
    assert not mask[1].any() and mask[2, 0].sum() == 10


@pytest.mark.parametrize("name", ["mixup", "cutmix", "cutout", "sample_pairing", "mosaic"])
def test_a_coin_that_never_comes_up_changes_nothing(name: str) -> None:
    x, y = batch(8, 3)
    x = x.float()
    gen, rng = gens(1)
    draw = {"mixup": lambda: B.mixup_apply(x, y, **B.draw_mixup(8, 0.0, 0.4, gen, rng)),
            "cutmix": lambda: B.cutmix_apply(x, y, **B.draw_cutmix(8, 32, 32, 0.0, 1.0, gen, rng)),
            "cutout": lambda: B.cutout_apply(x, y, **B.draw_cutout(8, 32, 32, 0.0, 2, (0.2, 0.4), 0.0, 3, gen)),
            "sample_pairing": lambda: B.sample_pairing_apply(x, y, **B.draw_sample_pairing(8, 0.0, gen)),
            "mosaic": lambda: B.mosaic_apply(x, y, **B.draw_mosaic(8, 32, 32, 0.0, 4, gen))}[name]
    out, target = draw()
    assert torch.equal(out, x) and torch.equal(target, y)


def test_mixup_with_lambda_one_is_the_identity_and_lambda_mixes_pixels_and_targets_alike() -> None:
    x, y = batch(4)
    x = x.float()
    perm = torch.tensor([1, 0, 3, 2])
    out, target = B.mixup_apply(x, y, torch.ones(4), perm)
    assert torch.equal(out, x) and torch.equal(target, y)
    lam = torch.tensor([0.25, 0.5, 0.75, 1.0])
    out, target = B.mixup_apply(x, y, lam, perm)
    for i in range(4):
        assert torch.allclose(out[i], lam[i] * x[i] + (1 - lam[i]) * x[perm[i]])
        assert torch.allclose(target[i], lam[i] * y[i] + (1 - lam[i]) * y[perm[i]])


def test_cutout_erases_the_union_of_the_squares_with_the_fill() -> None:
    x, y = batch(2)
    x = x.float()
    rects = torch.tensor([[[0, 0, 4, 4], [2, 2, 6, 6]], [[0, 0, 0, 0], [0, 0, 0, 0]]])
    out, target = B.cutout_apply(x, y, rects, 7.0, None)
    erased = out[0, 0] == 7
    assert bool(erased[:4, :4].all()) and bool(erased[2:6, 2:6].all())
    assert torch.equal(out[0, 0, 6:], x[0, 0, 6:]) and torch.equal(out[1], x[1]) and torch.equal(target, y)


def test_random_cutout_fills_with_drawn_noise_of_the_batch_shape() -> None:
    params = B.draw_cutout(3, 8, 8, 1.0, 1, (0.5, 0.5), "random", 2, gens(0)[0])
    assert params["noise"].shape == (3, 2, 8, 8) and params["fill"] == "random"
    assert float(params["noise"].min()) >= 0 and float(params["noise"].max()) <= 255


@pytest.mark.parametrize("tiles", [4, 9])
def test_mosaic_cells_come_from_their_sources(tiles: int) -> None:
    n = 6
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 16, 16).contiguous()
    y = torch.eye(n)
    params = B.draw_mosaic(n, 16, 16, 1.0, tiles, gens(2)[0])
    out, target = B.mosaic_apply(x, y, **params)
    assert len(params["perms"]) == tiles - 1
    for i in range(n):
        shares = torch.bincount(out[i].flatten().long(), minlength=n).float() / 256
        assert torch.allclose(target[i], shares, atol=1e-6)  # the target is each source's area share


# The Mixup and CutMix kernels as first written (advanced indexing, a full boolean mask, one
# `torch.where`, torch arithmetic for the draws): the faster ones must give the same bits.


def _reference_beta(rng, alpha, n):
    return rng.random(n) if alpha == 1.0 else rng.beta(alpha, alpha, size=n)  # Beta(1, 1) is uniform


def _reference_draw_mixup(n, p, alpha, gen, rng):
    on = torch.rand(n, generator=gen) < p
    lam = torch.from_numpy(_reference_beta(rng, alpha, n).astype(np.float32))
    return {"lam": torch.where(on, lam, torch.ones_like(lam)), "perm": torch.randperm(n, generator=gen)}


def _reference_mixup_apply(x, y, lam, perm):
    lam = lam.to(x.device, x.dtype)
    lx = lam.view(-1, 1, 1, 1)
    out = x * lx + x[perm] * (1.0 - lx)
    ly = lam.view(-1, 1).to(y.dtype)
    return out, y * ly + y[perm] * (1.0 - ly)


def _reference_draw_cutmix(n, h, w, p, alpha, gen, rng):
    on = torch.rand(n, generator=gen) < p
    lam = torch.from_numpy(_reference_beta(rng, alpha, n).astype(np.float64))
    centre = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    cut = torch.sqrt(1.0 - lam)
    cw, ch = torch.round(w * cut).long(), torch.round(h * cut).long()
    cx, cy = torch.round(centre[:, 0] * w).long(), torch.round(centre[:, 1] * h).long()
    x1, x2 = (cx - cw // 2).clamp(0, w), (cx - cw // 2 + cw).clamp(0, w)
    y1, y2 = (cy - ch // 2).clamp(0, h), (cy - ch // 2 + ch).clamp(0, h)
    rects = torch.stack([x1, y1, x2, y2], dim=1)
    rects = torch.where(on.view(-1, 1), rects, torch.zeros_like(rects))
    return {"rects": rects, "perm": torch.randperm(n, generator=gen)}


def _reference_cutmix_apply(x, y, rects, perm):
    n, _, h, w = x.shape
    mask = B._rect_mask(rects, h, w)
    out = torch.where(mask, x[perm], x)
    area = ((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])).to(y.dtype)
    lam = (1.0 - area / float(h * w)).view(-1, 1)
    return out, y * lam + y[perm] * (1.0 - lam)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.contiguous().view(ints), b.contiguous().view(ints))


DTYPES = [torch.float32, torch.float64, torch.float16, torch.uint8]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 12), c=st.integers(1, 3), h=st.integers(1, 19),
       w=st.integers(1, 19), p=st.sampled_from([0.0, 0.5, 1.0]), alpha=st.one_of(st.just(1.0), st.floats(0.1, 4.0)),
       dtype=st.sampled_from(DTYPES), signed_zeros=st.booleans())
def test_mixup_and_cutmix_draw_and_give_the_same_bits_as_the_first_kernels(seed, n, c, h, w, p, alpha, dtype,
                                                                            signed_zeros):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 100).to(dtype) if dtype != torch.uint8 \
        else torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    if signed_zeros and dtype != torch.uint8:
        x[:, :, ::2] = -0.0
    y = torch.softmax(torch.randn(n, 10, generator=g, dtype=torch.float64), dim=1).to(
        dtype if dtype != torch.uint8 else torch.float32)
    before = (x.clone(), y.clone())
    for draw, ref_draw, apply, ref_apply, args in (
            (B.draw_mixup, _reference_draw_mixup, B.mixup_apply, _reference_mixup_apply, (n, p, alpha)),
            (B.draw_cutmix, _reference_draw_cutmix, B.cutmix_apply, _reference_cutmix_apply, (n, h, w, p, alpha))):
        params = draw(*args, *gens(seed))
        expected = ref_draw(*args, *gens(seed))
        assert params.keys() == expected.keys()
        assert all(_same_bits(params[k], expected[k]) for k in params)
        out, target = apply(x, y, **params)
        ref_out, ref_target = ref_apply(x, y, **expected)
        assert _same_bits(out, ref_out) and _same_bits(target, ref_target)
        assert _same_bits(x, before[0]) and _same_bits(y, before[1])  # inputs untouched


def test_cutmix_pastes_each_partner_rect_bit_for_bit_even_nan_and_infinity() -> None:
    x = torch.full((2, 1, 4, 4), float("nan"))
    x[1] = float("-inf")
    x[1, 0, 0, 1] = -0.0  # outside sample 1's rect: kept, sign and all
    rects = torch.tensor([[1, 1, 3, 4], [0, 0, 1, 2]])
    out, target = B.cutmix_apply(x, torch.eye(2), rects, torch.tensor([1, 0]))
    assert torch.isinf(out[0, 0, 1:4, 1:3]).all() and torch.isnan(out[0, 0, 0]).all()
    assert torch.isnan(out[1, 0, 0:2, 0]).all() and torch.isinf(out[1, 0, 2:, 0]).all()
    assert torch.signbit(out[1, 0, 0, 1]) and out[1, 0, 0, 1] == 0
    assert torch.allclose(target, torch.tensor([[1 - 6 / 16, 6 / 16], [2 / 16, 1 - 2 / 16]]))


def _per_sample_cutmix(x: torch.Tensor, rects: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """CutMix's definition, one sample at a time: a copy of the sample with the partner's rect sliced in."""
    out = x.clone()
    h, w = x.shape[-2:]
    for i, (x1, y1, x2, y2) in enumerate(rects.tolist()):
        x1, x2 = min(max(x1, 0), w), min(max(x2, 0), w)
        y1, y2 = min(max(y1, 0), h), min(max(y2, 0), h)
        out[i, :, y1:y2, x1:x2] = x[int(perm[i]), :, y1:y2, x1:x2]
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 9), c=st.integers(1, 4), h=st.integers(1, 17),
       w=st.integers(1, 17), dtype=st.sampled_from(DTYPES), data=st.data())
def test_vectorized_cutmix_paste_equals_the_per_sample_definition(seed, n, c, h, w, dtype, data):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 100).to(dtype) if dtype != torch.uint8 \
        else torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    # any rects, reaching past the image or inverted, and any partners (repeats and self included)
    corner = st.integers(-3, max(h, w) + 3)
    rects = torch.tensor(data.draw(st.lists(st.tuples(corner, corner, corner, corner), min_size=n, max_size=n)))
    perm = torch.tensor(data.draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
    before = x.clone()
    out, _ = B.cutmix_apply(x, torch.eye(n)[:, :max(n, 1)], rects, perm)
    assert _same_bits(out, _per_sample_cutmix(x, rects, perm))
    assert _same_bits(x, before)


def test_vectorized_cutmix_paste_on_a_channels_last_batch_equals_the_definition() -> None:
    x, y = batch(n=6, c=3)
    x = x.contiguous(memory_format=torch.channels_last)
    params = B.draw_cutmix(6, 32, 32, 1.0, 1.0, *gens(3))
    out, _ = B.cutmix_apply(x, y, **params)
    assert torch.equal(out, _per_sample_cutmix(x, params["rects"], params["perm"]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the GPU path runs where one is")
def test_batched_mixup_and_cutmix_on_the_gpu_give_the_cpu_bits() -> None:
    x, y = batch(n=32, c=1)
    for draw, apply, args in ((B.draw_mixup, B.mixup_apply, (32, 1.0, 1.0)),
                              (B.draw_cutmix, B.cutmix_apply, (32, 32, 32, 1.0, 1.0))):
        params = draw(*args, *gens(5))
        out, target = apply(x.float(), y, **params)
        gpu_out, gpu_target = apply(x.float().cuda(), y.cuda(), **params)
        assert gpu_out.device.type == "cuda" and gpu_target.device.type == "cuda"
        exact = apply is B.cutmix_apply  # a paste moves bits; a blend may round differently (fused multiply-add)
        assert torch.equal(gpu_out.cpu(), out) if exact else torch.allclose(gpu_out.cpu(), out, atol=1e-3)
        assert torch.allclose(gpu_target.cpu(), target)


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.5])
def test_lambda_draws_follow_beta_alpha_alpha(alpha):
    """Beta(1, 1) is drawn as the uniform distribution it is; every alpha still gives Beta(alpha, alpha)."""
    from scipy import stats

    lam = B._beta(np.random.default_rng(7), alpha, 20_000)
    assert lam.dtype == np.float64 and ((lam >= 0) & (lam <= 1)).all()
    assert stats.kstest(lam, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    assert stats.kstest(lam, stats.beta(alpha * 1.25, alpha * 1.25).cdf).pvalue < 1e-3  # the test can tell alphas apart
