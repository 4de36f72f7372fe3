"""`pipeline.model.number_model`: NumberModel and its variants, one factory, comparable shapes, every
variant learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.core.errors import UsageError
from pipeline.model import VARIANTS, NumberModel, build_model
from pipeline.model.summary import summarize
from tests.helpers import digit_like

COMPARABLE = [v for v in VARIANTS if v not in ("wide", "fast")]


def test_variant_names() -> None:
    assert list(VARIANTS) == ["standard", "dilated", "spatial-separable", "depthwise-separable", "grouped",
                              "flattened", "wide", "fast"]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("channels, classes", [(1, 10), (3, 43)])
def test_every_variant_maps_32x32_to_class_scores(variant: str, channels: int, classes: int) -> None:
    model = build_model(variant, channels, classes)
    assert model(torch.zeros(4, channels, 32, 32)).shape == (4, classes)


def test_standard_is_the_seed_model_with_unchanged_checkpoint_keys() -> None:
    model = build_model("standard", 1, 10)
    assert type(model) is NumberModel
    assert sum(p.numel() for p in model.parameters()) == 61_706  # LeNet-5 with 10 classes
    assert list(model.state_dict()) == [
        "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
        "classifier.1.weight", "classifier.1.bias", "classifier.3.weight", "classifier.3.bias",
        "classifier.5.weight", "classifier.5.bias",
    ]


@pytest.mark.parametrize("variant", COMPARABLE)
def test_comparable_variants_keep_every_feature_map_size(variant: str) -> None:
    def maps(name: str) -> list[tuple[int, ...]]:
        rows = summarize(build_model(name, 1, 10), (1, 32, 32)).rows
        return [r.output[1:] for r in rows if r.depth == 0 and len(r.output) == 3]

    # conv, pool, ReLU (after its pool, on a quarter of the values), twice
    assert maps(variant) == maps("standard") == [(28, 28)] + [(14, 14)] * 2 + [(10, 10)] + [(5, 5)] * 2


def test_grouped_takes_groups() -> None:
    model = build_model("grouped", 1, 10, groups=4)
    assert model.features[3].groups == 4
    assert tuple(model.features[3].weight.shape) == (16, 2, 5, 5)
    assert build_model("grouped", 1, 10).features[3].groups == 2


def test_wide_uses_batch_norm() -> None:
    model = build_model("wide", 1, 10)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fast_pools_before_its_norms_and_nearly_matches_wide_with_the_same_weights() -> None:
    """Pooling first is the same function while the norm is a fixed increasing map (eval mode, a positive
    scale): copied weights and running statistics give `wide`'s outputs."""
    torch.manual_seed(0)
    fast = build_model("fast", 1, 10, widths=(8, 16, 32)).eval()
    assert [type(m).__name__ for m in fast.features] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"] * 2
    assert summarize(fast, (1, 32, 32)).params == 8 * 25 + 16 + 16 * 8 * 25 + 32 + 400 * 32 + 64 + 32 * 10 + 10
    wide = build_model("wide", 1, 10, widths=(8, 16, 32)).eval()
    for norm in (m for m in fast.modules() if isinstance(m, nn.BatchNorm2d)):
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)  # positive: an increasing map, which max-pooling commutes with
    pairs = [(fast.features[0], wide.features[0][0]), (fast.features[2], wide.features[0][1]),
             (fast.features[4], wide.features[2][0]), (fast.features[6], wide.features[2][1])]
    for a, b in pairs:
        b.load_state_dict(a.state_dict())
    wide.classifier.load_state_dict(fast.classifier.state_dict())
    x = torch.randn(3, 1, 32, 32)
    assert torch.allclose(fast(x), wide(x), atol=1e-5)


def test_unknown_variant_and_option_list_the_valid_ones() -> None:
    with pytest.raises(UsageError, match="use one of: standard, dilated"):
        build_model("resnet", 1, 10)
    with pytest.raises(UsageError, match="no option groups.*use one of: dropout"):
        build_model("wide", 1, 10, groups=2)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_learns_a_fixed_batch(variant: str) -> None:
    # 60 Adam steps on 20 digit-like images (a bright bar whose position is the label).
    x = torch.stack([torch.from_numpy(np.array(digit_like(i % 10, seed=i, size=32))).float() / 255
                     for i in range(20)]).unsqueeze(1)
    y = torch.arange(20) % 10
    torch.manual_seed(0)
    model = build_model(variant, 1, 10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


@pytest.mark.parametrize(("variant", "widths", "first"), [
    ("standard", (12, 32), 12),        # plain convs
    ("dilated", (4, 8), 4),            # the conv sits inside a block
    ("grouped", (8, 24), 8),           # both divisible by the default 2 groups
    ("wide", (16, 32, 128), 16),       # conv 1, conv 2 and the hidden fc layer, batch norm sized to match
    ("fast", (16, 32, 128), 16),
])
def test_widths_change_the_conv_channels_and_keep_the_shapes(variant, widths, first) -> None:
    model = build_model(variant, 1, 10, widths=widths).eval()  # eval: batch norm takes a batch of one
    assert model.widths == widths and model(torch.zeros(1, 1, 32, 32)).shape == (1, 10)
    assert next(p for p in model.parameters() if p.ndim == 4).shape[0] in (first, 1)


def test_bad_widths_name_the_variant_and_count() -> None:
    with pytest.raises(UsageError, match=r"'autoencoder': widths \[8, 16\] should be 3 positive integers"):
        build_model("autoencoder", 1, 10, widths=(8, 16))
    with pytest.raises(UsageError, match=r"'wide': widths \[8, 16\] should be 3 positive integers"):
        build_model("wide", 1, 10, widths=(8, 16))


@pytest.mark.parametrize("variant", COMPARABLE)
@pytest.mark.parametrize("channels_last", [False, True])
def test_relu_after_the_pool_gives_the_seed_orders_outputs_and_gradients_bit_for_bit(variant: str,
                                                                                    channels_last: bool) -> None:
    torch.manual_seed(0)
    model = build_model(variant, 1, 10)
    f = model.features
    assert [type(m).__name__ for m in (f[1], f[2], f[4], f[5])] == ["MaxPool2d", "ReLU"] * 2
    seed_order = nn.Sequential(f[0], f[2], f[1], f[3], f[5], f[4])  # conv, ReLU, pool: the same modules
    x = torch.cat([torch.randn(6, 1, 32, 32), torch.zeros(2, 1, 32, 32),  # all-equal windows: ties in every pool
                   torch.from_numpy(np.stack([np.asarray(digit_like(d, d, 32)) for d in range(4)])[:, None]).float() / 255.0])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    weights = torch.randn(len(x), 10)
    results = []
    for features in (f, seed_order):
        model.zero_grad(set_to_none=True)
        out = model.classifier(features(x))
        (out * weights).sum().backward()
        results.append((out.detach().clone(), [p.grad.clone() for p in model.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.equal(out_a, out_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))
