"""NumberModel: a LeNet-5-class CNN for 32x32 inputs (the seed's digit classifier).

    conv 5x5 (C -> 6)  -> ReLU -> max-pool 2   32x32 -> 28x28 -> 14x14
    conv 5x5 (6 -> 16) -> ReLU -> max-pool 2   14x14 -> 10x10 -> 5x5
    fc 400 -> 120 -> ReLU -> fc 120 -> 84 -> ReLU -> fc 84 -> classes

Input channels and the class count come from the dataset.
"""

from __future__ import annotations

import torch
from torch import nn


class NumberModel(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


VARIANTS: dict[str, type[nn.Module]] = {"standard": NumberModel}


def build_model(variant: str = "standard", in_channels: int = 1, num_classes: int = 10, **kwargs) -> nn.Module:
    """The model for `variant`; an unknown name lists the valid ones."""
    from pipeline.core.errors import UsageError

    if variant not in VARIANTS:
        raise UsageError(f"unknown model variant {variant!r}", fix=f"use one of: {', '.join(VARIANTS)}")
    return VARIANTS[variant](in_channels=in_channels, num_classes=num_classes, **kwargs)
