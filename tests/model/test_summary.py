"""`summarize` against independent counts: numel() for parameters, forward hooks for MACs and shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.core.errors import UsageError
from pipeline.model.summary import compare, compare_table, model_names, parse_input, summarize, summary_model
from tests.model.counting import hook_count, numel_params


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("shape", [(1, 32, 32), (3, 32, 32)])
def test_summary_matches_numel_and_hooks(name: str, shape: tuple[int, int, int]) -> None:
    model = summary_model(name, shape[0], 10)
    s = summarize(model, shape)
    macs, shapes = hook_count(model, shape)
    assert s.params == numel_params(model)
    assert s.macs == macs
    assert {r.name: r.output for r in s.layers} == shapes
    assert sum(r.params for r in s.rows if r.block) == sum(r.params for r in s.layers if r.depth > 0)


def test_grouped_option_changes_the_count_as_the_formula_says() -> None:
    g2, g4 = (summarize(summary_model("grouped", 1, 10, groups=g), (1, 32, 32)) for g in (2, 4))
    conv2 = {g: next(r for r in s.rows if r.name == "features.3") for g, s in ((2, g2), (4, g4))}
    assert conv2[2].params == 16 * (8 // 2) * 25 + 16
    assert conv2[4].params == 16 * (8 // 4) * 25 + 16
    assert conv2[4].weight == (16, 2, 5, 5)


def test_autoencoder_decoder_starts_with_the_seed_transposed_conv() -> None:
    rows = {r.name: r for r in summarize(summary_model("autoencoder", 1), (1, 32, 32)).rows}
    assert rows["encoder.7"].output == (64, 2, 2)
    first = rows["decoder.0.0"]
    assert first.kind == "ConvT 3x3" and first.output == (64, 4, 4) and first.weight == (64, 64, 3, 3)
    assert rows["decoder.3.0"].output == (1, 32, 32)


def test_table_has_every_row_and_the_totals() -> None:
    s = summarize(summary_model("flattened", 1, 10), (1, 32, 32))
    text = s.table()
    assert text.splitlines()[0].split() == ["layer", "type", "output", "weight", "params", "MACs"]
    assert "  features.0.kx1" in text and "Conv2d 5x1 g6" in text
    assert text.splitlines()[-1].split() == ["total", "10", f"{s.params:,}", f"{s.macs:,}"]
    assert s.to_dict()["params"] == s.params and len(s.to_dict()["layers"]) == len(s.rows)


def test_compare_lists_every_variant_relative_to_standard() -> None:
    items = compare((1, 32, 32), 10, timed=True, batch=8)
    assert [i["variant"] for i in items][:2] == ["standard", "dilated"] and len(items) == 8
    assert all(i["forward_images_per_s"] > 0 for i in items)
    lines = compare_table(items).splitlines()
    assert lines[2].split()[:3] == ["standard", "61,706", "1.00x"]


@pytest.mark.parametrize("text, why", [
    ("1x32", "two numbers"),
    ("0x32x32", "zero channels"),
    ("ax32x32", "not a number"),
])
def test_bad_input_shape(text: str, why: str) -> None:
    with pytest.raises(UsageError, match="expected CxHxW"):
        parse_input(text)


def test_wrong_size_for_the_classifier_names_the_layer() -> None:
    with pytest.raises(UsageError, match=r"classifier.1 \(Linear\) expects 400 features"):
        summarize(summary_model("standard", 1, 10), (1, 28, 28))


def test_unknown_layer_type_is_refused() -> None:
    with pytest.raises(UsageError, match="no formula for GELU"):
        summarize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU()), (1, 8, 8))


@pytest.mark.parametrize("name", model_names())
def test_macs_are_half_of_torch_flop_counter(name: str) -> None:
    # torch's own counter, on the aten ops a forward pass dispatches, counts a multiply-add as 2 FLOPs
    from torch.utils.flop_counter import FlopCounterMode

    model = summary_model(name, 1, 10).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 1, 32, 32))
    assert counter.get_total_flops() == 2 * summarize(model, (1, 32, 32)).macs
