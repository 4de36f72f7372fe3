"""Layer-by-layer summary of a model: output shape, weight shape, parameters and multiply-adds.

Everything here is computed from the layers' settings with the textbook formulas, not by running the
model: output sizes with floor((in + 2p - d(k-1) - 1) / s) + 1 (transposed: (in-1)s - 2p + d(k-1) + op + 1),
parameters as weights plus biases, multiply-adds (MACs) per image as

    conv             out_h * out_w * N * (C/g) * X * Y     every output value is one X*Y*C/g dot product
    transposed conv  in_h * in_w * C * (N/g) * X * Y       every input value is spread over an X x Y patch
    linear           in_features * out_features

Norms, activations and pooling count zero MACs (a norm folds into the conv before it at inference);
biases are parameters but not MACs. Containers are walked in the order their children were registered,
which is the order `NumberModel`, its variants and the autoencoder apply them; `summarize` checks the
final shape against one real forward pass and refuses a model that does not follow that order.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline.core.errors import UsageError
from pipeline.model.layers import conv_output_size, conv_transpose_output_size
from pipeline.model.number_model import VARIANTS, build_model, model_names

__all__ = ["ModelSummary", "LayerRow", "compare", "compare_table", "model_names", "parse_input", "summarize",
           "summary_model"]

Shape = tuple[int, ...]


@dataclass
class LayerRow:
    """One row: a layer (or, with `block` set, a conv block whose rows follow one level deeper)."""

    name: str
    kind: str
    output: Shape
    weight: Shape | None
    params: int
    macs: int
    depth: int = 0
    block: bool = False


@dataclass
class ModelSummary:
    """All rows of a model plus totals (totals add up the layer rows, never the block rows)."""

    model: str
    variant: str
    input: Shape
    rows: list[LayerRow] = field(default_factory=list)

    @property
    def layers(self) -> list[LayerRow]:
        return [r for r in self.rows if not r.block]

    @property
    def params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def output(self) -> Shape:
        return self.rows[-1].output if self.rows else self.input

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "variant": self.variant,
            "input": list(self.input),
            "output": list(self.output),
            "params": self.params,
            "macs": self.macs,
            "layers": [
                {**asdict(r), "output": list(r.output), "weight": list(r.weight) if r.weight else None}
                for r in self.rows
            ],
        }

    def table(self) -> str:
        """The rows as an aligned text table with a totals line."""
        header = ("layer", "type", "output", "weight", "params", "MACs")
        lines = [
            ("  " * r.depth + r.name, r.kind, fmt_shape(r.output), fmt_shape(r.weight) if r.weight else "",
             f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows
        ]
        total = ("total", "", fmt_shape(self.output), "", f"{self.params:,}", f"{self.macs:,}")
        widths = [max(len(row[i]) for row in [header, *lines, total]) for i in range(len(header))]
        right = {4, 5}

        def render(row: tuple[str, ...]) -> str:
            cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([render(header), rule, *[render(x) for x in lines], rule, render(total)])


def fmt_shape(shape: Shape | None) -> str:
    return "x".join(str(s) for s in shape) if shape else ""


def parse_input(text: str) -> Shape:
    """'1x32x32' -> (1, 32, 32): channels x height x width, all positive."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"--input {text!r}: expected CxHxW with positive integers", fix="e.g. --input 1x32x32")
    return shape


def summary_model(variant: str, in_channels: int = 1, num_classes: int = 10, **options: Any) -> nn.Module:
    """The classifier variant or autoencoder `variant`, built exactly as `pipeline train` builds it."""
    return build_model(variant, in_channels, num_classes, **options)


def summarize(model: nn.Module, input_shape: Shape, *, variant: str = "", check: bool = True) -> ModelSummary:
    """The layer table of `model` for one input of `input_shape` (C, H, W), computed from formulas.

    With `check`, one forward pass on a zero batch confirms that the computed output shape is real.
    """
    summary = ModelSummary(model=type(model).__name__, variant=variant or getattr(model, "variant", ""),
                           input=tuple(input_shape))
    out = _walk(model, tuple(input_shape), "", 0, summary.rows, top=True)
    if check:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            real = tuple(model(torch.zeros(1, *input_shape)).shape[1:])
        model.train(was_training)
        if real != out:
            raise UsageError(f"{summary.model}: the summary computes output {fmt_shape(out)} but the model gives "
                             f"{fmt_shape(real)}", fix="summaries need containers that apply children in order")
    return summary


def _walk(module: nn.Module, shape: Shape, name: str, depth: int, rows: list[LayerRow], top: bool = False) -> Shape:
    children = list(module.named_children())
    if not children:
        row = _leaf(module, shape, name or type(module).__name__, depth)
        rows.append(row)
        return row.output
    if top or type(module) is nn.Sequential:
        for child_name, child in children:
            shape = _walk(child, shape, f"{name}.{child_name}" if name else child_name, depth, rows)
        return shape
    # a conv block: a header row with its totals, its layers one level deeper
    header = LayerRow(name=name, kind=type(module).__name__, output=shape, weight=None, params=0, macs=0,
                      depth=depth, block=True)
    rows.append(header)
    first = len(rows)
    for child_name, child in children:
        shape = _walk(child, shape, f"{name}.{child_name}", depth + 1, rows)
    inner = [r for r in rows[first:] if not r.block]
    header.output, header.params, header.macs = shape, sum(r.params for r in inner), sum(r.macs for r in inner)
    return shape


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _leaf(m: nn.Module, shape: Shape, name: str, depth: int) -> LayerRow:
    def row(kind: str, output: Shape, weight: Shape | None = None, params: int = 0, macs: int = 0) -> LayerRow:
        return LayerRow(name=name, kind=kind, output=tuple(output), weight=weight, params=params, macs=macs,
                        depth=depth)

    def need_channels(expected: int) -> None:
        if len(shape) != 3 or shape[0] != expected:
            raise UsageError(f"{name} ({type(m).__name__}) expects {expected} input channels, got input "
                             f"{fmt_shape(shape)}", fix=f"use --input {expected}x32x32")

    if isinstance(m, nn.ConvTranspose2d):
        need_channels(m.in_channels)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = (_pair(m.kernel_size), _pair(m.stride), _pair(m.padding),
                                                            _pair(m.dilation), _pair(m.output_padding))
        h = conv_transpose_output_size(shape[1], kh, sh, ph, oh, dh)
        w = conv_transpose_output_size(shape[2], kw, sw, pw, ow, dw)
        per_group_out = m.out_channels // m.groups
        params = m.in_channels * per_group_out * kh * kw + (m.out_channels if m.bias is not None else 0)
        macs = shape[1] * shape[2] * m.in_channels * per_group_out * kh * kw
        return row(f"ConvT {kh}x{kw}{_extras(m, sh, ph, dh)}", (m.out_channels, h, w),
                   (m.in_channels, per_group_out, kh, kw), params, macs)
    if isinstance(m, nn.Conv2d):
        need_channels(m.in_channels)
        (kh, kw), (sh, sw), (dh, dw) = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
        if m.padding == "same":
            h, w = shape[1], shape[2]
            ph = pw = 0
        else:
            ph, pw = (0, 0) if m.padding == "valid" else _pair(m.padding)
            h = conv_output_size(shape[1], kh, sh, ph, dh)
            w = conv_output_size(shape[2], kw, sw, pw, dw)
        if h < 1 or w < 1:
            raise UsageError(f"{name}: a {kh}x{kw} conv leaves nothing of a {fmt_shape(shape)} input",
                             fix="use a larger --input")
        per_group_in = m.in_channels // m.groups
        params = m.out_channels * per_group_in * kh * kw + (m.out_channels if m.bias is not None else 0)
        macs = h * w * m.out_channels * per_group_in * kh * kw
        return row(f"Conv2d {kh}x{kw}{_extras(m, sh, ph, dh)}", (m.out_channels, h, w),
                   (m.out_channels, per_group_in, kh, kw), params, macs)
    if isinstance(m, nn.Linear):
        features = math.prod(shape)
        if len(shape) != 1 or features != m.in_features:
            raise UsageError(f"{name} (Linear) expects {m.in_features} features, got {fmt_shape(shape)}",
                             fix="this model is built for 32x32 inputs: use --input Cx32x32")
        params = m.in_features * m.out_features + (m.out_features if m.bias is not None else 0)
        return row("Linear", (m.out_features,), (m.out_features, m.in_features), params, m.in_features * m.out_features)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        params = 2 * m.num_features if m.affine else 0
        return row(type(m).__name__, shape, (m.num_features,) if m.affine else None, params)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        (kh, kw) = _pair(m.kernel_size)
        (sh, sw) = _pair(m.stride if m.stride is not None else m.kernel_size)
        (ph, pw) = _pair(m.padding)
        dil = _pair(getattr(m, "dilation", 1))
        if m.ceil_mode:
            raise UsageError(f"{name}: ceil_mode pooling is not covered by the summary")
        h = conv_output_size(shape[1], kh, sh, ph, dil[0])
        w = conv_output_size(shape[2], kw, sw, pw, dil[1])
        return row(f"{type(m).__name__} {kh}x{kw}", (shape[0], h, w))
    if isinstance(m, nn.AdaptiveAvgPool2d):
        oh, ow = _pair(m.output_size)
        return row(f"AdaptiveAvgPool2d {oh}x{ow}", (shape[0], oh, ow))
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise UsageError(f"{name}: only Flatten(start_dim=1) is covered by the summary")
        return row("Flatten", (math.prod(shape),))
    if isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Identity)):
        return row(type(m).__name__, shape)
    raise UsageError(f"{name}: the summary has no formula for {type(m).__name__}",
                     fix="use Conv2d, ConvTranspose2d, Linear, BatchNorm, pooling, Flatten or activations")


def _extras(m: nn.Module, stride: int, padding: int, dilation: int) -> str:
    parts = []
    if stride != 1:
        parts.append(f"s{stride}")
    if padding:
        parts.append(f"p{padding}")
    if dilation != 1:
        parts.append(f"d{dilation}")
    if getattr(m, "groups", 1) != 1:
        parts.append(f"g{m.groups}")
    return (" " + " ".join(parts)) if parts else ""


def forward_seconds(model: nn.Module, input_shape: Shape, *, batch: int = 256, repeats: int = 5) -> float:
    """Median wall time of one eval-mode forward pass of a `batch` of zeros, on the CPU, in seconds."""
    model.eval()
    x = torch.zeros(batch, *input_shape)
    times = []
    with torch.no_grad():
        model(x)  # warm-up: first calls pick kernels and allocate
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def compare(input_shape: Shape = (1, 32, 32), num_classes: int = 10, *, timed: bool = False,
            batch: int = 256) -> list[dict[str, Any]]:
    """One dict per classifier variant: params, MACs and, when `timed`, CPU forward images/s."""
    out = []
    for name in VARIANTS:
        model = build_model(name, input_shape[0], num_classes)
        s = summarize(model, input_shape, variant=name)
        item: dict[str, Any] = {"variant": name, "params": s.params, "macs": s.macs}
        if timed:
            item["forward_images_per_s"] = batch / forward_seconds(model, input_shape, batch=batch)
        out.append(item)
    return out


def compare_table(items: list[dict[str, Any]]) -> str:
    """`compare`'s dicts as an aligned table, with each variant's cost relative to `standard`."""
    base = next((i for i in items if i["variant"] == "standard"), items[0])
    timed = all("forward_images_per_s" in i for i in items)
    header = ["variant", "params", "vs std", "MACs", "vs std"] + (["forward img/s"] if timed else [])
    lines = []
    for i in items:
        line = [i["variant"], f"{i['params']:,}", f"{i['params'] / base['params']:.2f}x", f"{i['macs']:,}",
                f"{i['macs'] / base['macs']:.2f}x"]
        if timed:
            line.append(f"{i['forward_images_per_s']:,.0f}")
        lines.append(line)
    widths = [max(len(r[c]) for r in [header, *lines]) for c in range(len(header))]
    render = [
        "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [header, *lines]
    ]
    return "\n".join([render[0], "  ".join("-" * w for w in widths), *render[1:]])
