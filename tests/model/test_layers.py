"""The convolution blocks against the seed's examples and their own parameter formulas."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.core.errors import UsageError
from pipeline.model.layers import (
    DepthwiseSeparableConv,
    DilatedConv,
    FlattenedConv,
    GroupedConv,
    SpatialSeparableConv,
    UpBlock,
    conv_output_size,
    conv_transpose_output_size,
)
from pipeline.model.summary import summarize


def _numel(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_seed_dilated_3x3_on_224_gives_220() -> None:
    conv = DilatedConv(3, 8, kernel_size=3, dilation=2)
    assert conv(torch.zeros(1, 3, 224, 224)).shape == (1, 8, 220, 220)
    assert summarize(nn.Sequential(conv), (3, 224, 224)).output == (8, 220, 220)
    assert conv_output_size(224, 3, dilation=2) == 220


def test_seed_grouped_128_to_64_with_8_groups_has_weight_64x16x3x3() -> None:
    conv = GroupedConv(128, 64, kernel_size=3, groups=8)
    assert tuple(conv.weight.shape) == (64, 16, 3, 3)
    row = summarize(nn.Sequential(conv), (128, 10, 10)).rows[0]
    assert row.weight == (64, 16, 3, 3)
    assert row.params == 64 * 16 * 3 * 3 + 64 == _numel(conv)


def test_seed_transposed_2x2_input_3x3_kernel_stride_1_gives_4x4() -> None:
    up = UpBlock(5, 7, kernel_size=3, stride=1, padding=0)
    assert up(torch.zeros(1, 5, 2, 2)).shape == (1, 7, 4, 4)
    assert conv_transpose_output_size(2, 3, stride=1) == 4
    assert summarize(up, (5, 2, 2)).output == (7, 4, 4)


def test_stride_2_up_block_doubles() -> None:
    assert UpBlock(4, 2)(torch.zeros(1, 4, 8, 8)).shape == (1, 2, 16, 16)


@pytest.mark.parametrize("c, n, k", [
    (1, 6, 5),    # NumberModel's first conv
    (6, 16, 5),   # its second conv
    (3, 12, 3),   # colour input, small kernel
    (16, 4, 7),   # fewer outputs than inputs
])
def test_parameter_formulas_match_numel(c: int, n: int, k: int) -> None:
    assert DilatedConv.parameter_count(c, n, k) == _numel(DilatedConv(c, n, k)) == n * k * k * c + n
    assert SpatialSeparableConv.parameter_count(c, n, k) == _numel(SpatialSeparableConv(c, n, k))
    assert DepthwiseSeparableConv.parameter_count(c, n, k) == _numel(DepthwiseSeparableConv(c, n, k))
    assert FlattenedConv.parameter_count(c, n, k) == _numel(FlattenedConv(c, n, k))
    g = 2 if c % 2 == 0 and n % 2 == 0 else 1
    assert GroupedConv.parameter_count(c, n, k, g) == _numel(GroupedConv(c, n, k, groups=g))


def test_flattened_filter_costs_c_plus_x_plus_y_against_x_times_y_times_c() -> None:
    c, n, k = 6, 16, 5
    flat = FlattenedConv(c, n, k)
    weights = sum(m.weight.numel() for m in flat.modules() if isinstance(m, nn.Conv2d))
    assert weights / n == c + k + k  # 16 per filter
    assert nn.Conv2d(c, n, k).weight.numel() / n == k * k * c  # 150 per filter


@pytest.mark.parametrize("block", [SpatialSeparableConv, DepthwiseSeparableConv, FlattenedConv, GroupedConv])
def test_blocks_keep_the_standard_output_size(block) -> None:
    x = torch.zeros(2, 8, 14, 14)
    assert block(8, 16, 5)(x).shape == nn.Conv2d(8, 16, 5)(x).shape == (2, 16, 10, 10)


def test_spatial_separable_reproduces_a_rank_one_kernel_exactly() -> None:
    torch.manual_seed(0)
    sep = SpatialSeparableConv(1, 1, 3)
    col, row = sep.kx1.weight.view(3, 1), sep.k1x.weight.view(1, 3)
    full = nn.Conv2d(1, 1, 3)
    with torch.no_grad():
        full.weight.copy_((col @ row).view(1, 1, 3, 3))
        full.bias.copy_(sep.k1x.bias)
    x = torch.randn(1, 1, 9, 9)
    torch.testing.assert_close(sep(x), full(x))


def test_groups_that_do_not_divide_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(UsageError, match=r"groups=3 .*use one of: 1, 2, 4, 8"):
        GroupedConv(8, 16, 5, groups=3)
