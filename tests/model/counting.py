"""Independent counts for the summary tests: parameters from `numel()`, MACs and shapes from forward hooks.

The hooks see the tensors a real forward pass produces, so they share nothing with the summary's formulas.
"""

from __future__ import annotations

import torch
from torch import nn


def numel_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def hook_count(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, dict[str, tuple[int, ...]]]:
    """(MACs per image, {leaf module name: output shape}) from one forward pass of a batch of two."""
    macs = 0
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str):
        def fn(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            nonlocal macs
            x = inputs[0]
            shapes[name] = tuple(output.shape[1:])
            if isinstance(module, nn.ConvTranspose2d):
                # each input value times its (out/g) x kh x kw slice of the weight
                macs += x[0].numel() * module.weight[0].numel()
            elif isinstance(module, nn.Conv2d):
                # each output value is a dot product with one filter of (in/g) x kh x kw weights
                macs += output[0].numel() * module.weight[0].numel()
            elif isinstance(module, nn.Linear):
                macs += output[0].numel() * module.in_features
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, *input_shape))
    for h in handles:
        h.remove()
    return macs, shapes
