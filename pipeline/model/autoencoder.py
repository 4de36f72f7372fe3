"""A small convolutional autoencoder for 32x32 images: where the transposed convolution belongs.

The encoder halves the map three times with stride-2 convs, then a 3x3 conv without padding squeezes
4x4 to a 64 x 2 x 2 code. The decoder undoes it with transposed convs (`UpBlock`): first the seed's
example, a 3x3 kernel with stride 1 on the 2x2 code, which gives 4x4 ((2 - 1) * 1 + 3); then three
4x4, stride-2, padding-1 blocks that double the size each, 4 -> 8 -> 16 -> 32.

    encoder  conv 3x3 s2 p1 (C -> 16)   32 -> 16      decoder  convT 3x3 s1 (64 -> 64)      2 -> 4
             conv 3x3 s2 p1 (16 -> 32)  16 -> 8                convT 4x4 s2 p1 (64 -> 32)   4 -> 8
             conv 3x3 s2 p1 (32 -> 64)   8 -> 4                convT 4x4 s2 p1 (32 -> 16)   8 -> 16
             conv 3x3 (64 -> 64)         4 -> 2                convT 4x4 s2 p1 (16 -> C)   16 -> 32

Trained with a reconstruction loss (e.g. mean squared error against the input), the 256-number code is
a compressed description of the image; `pipeline model summary --variant autoencoder` shows every shape.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.model.layers import UpBlock


class ConvAutoencoder(nn.Module):
    """Encoder (strided convs) and decoder (transposed convs) for C x 32 x 32 inputs; output = input shape."""

    variant = "autoencoder"
    widths: tuple[int, int, int] = (16, 32, 64)  # the three strided convs' output channels, mirrored by the decoder

    def __init__(self, in_channels: int = 1, code_channels: int = 64,
                 widths: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        if widths is not None:
            from pipeline.model.number_model import check_widths

            self.widths = check_widths(widths, 3, self.variant)
        w1, w2, w3 = self.widths
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, w1, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w2, w3, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w3, code_channels, 3),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            UpBlock(code_channels, w3, kernel_size=3, stride=1, padding=0),  # the seed's 2x2 -> 4x4
            UpBlock(w3, w2),
            UpBlock(w2, w1),
            UpBlock(w1, in_channels, activation=False),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
