"""NumberModel: a LeNet-5-class CNN for 32x32 inputs (the seed's digit classifier), and its variants.

    conv 5x5 (C -> 6)  -> max-pool 2 -> ReLU   32x32 -> 28x28 -> 14x14
    conv 5x5 (6 -> 16) -> max-pool 2 -> ReLU   14x14 -> 10x10 -> 5x5
    fc 400 -> 120 -> ReLU -> fc 120 -> 84 -> ReLU -> fc 84 -> classes

The seed applies each ReLU before its max-pool; here it runs after, on a quarter of the values:
max(relu(a), relu(b)) = relu(max(a, b)) and the pool picks the same element, so outputs and gradients
are the seed order's bit for bit (tested), with about 10 % more training samples per second on a CPU.

Input channels and the class count come from the dataset. The convolution variants keep this skeleton
and every feature-map size, and swap only the two convs for one of the blocks in `pipeline.model.layers`,
so their parameter and multiply-add counts compare like for like (`pipeline model summary --variant all`).
`wide` is the exception: a wider network with batch normalization, built for accuracy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from pipeline.model.autoencoder import ConvAutoencoder
from pipeline.model.layers import (
    ConvBNReLU,
    DepthwiseSeparableConv,
    DilatedConv,
    FlattenedConv,
    GroupedConv,
    SpatialSeparableConv,
)


class NumberModel(nn.Module):
    """The standard variant: plain 5x5 convs, N * (5*5*C) + N parameters each (conv 1: 156, conv 2: 2,416).

    Subclasses override `make_conv` to replace the convs; `widths` are the two convs' output channels
    (the class default, or any two positive counts given when building: `widths=(12, 32)`).
    """

    variant = "standard"
    widths: tuple[int, int] = (6, 16)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        if widths is not None:
            self.widths = check_widths(widths, 2, self.variant)
        w1, w2 = self.widths
        self.features = nn.Sequential(  # the convs stay at 0 and 3, so checkpoints keep their keys
            self.make_conv(in_channels, w1, 5, first=True),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            self.make_conv(w1, w2, 5, first=False),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w2 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def make_conv(self, in_channels: int, out_channels: int, kernel_size: int, first: bool) -> nn.Module:
        """The conv block that maps a (H, W) map to (H - k + 1, W - k + 1); `first` marks the input conv."""
        return nn.Conv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class DilatedNumberModel(NumberModel):
    """`dilated`: each 5x5 conv becomes a 3x3 conv with dilation 2.

    A 3x3 kernel with dilation 2 covers the same 5x5 window (receptive field (3-1)*2+1 = 5), so every map
    keeps its size, with 9 instead of 25 weights per channel pair: N * (3*3*C) + N (conv 1: 60, conv 2: 880).
    """

    variant = "dilated"

    def make_conv(self, in_channels: int, out_channels: int, kernel_size: int, first: bool) -> nn.Module:
        return DilatedConv(in_channels, out_channels, kernel_size=(kernel_size + 1) // 2, dilation=2)


class SpatialSeparableNumberModel(NumberModel):
    """`spatial-separable`: each 5x5 conv becomes 5x1 then 1x5.

    Parameters per conv: N * (5*C) + N * (5*N) + N (conv 1: 6*5 + 6*30 + 6 = 216, conv 2: 480 + 1,280 + 16).
    The first conv costs more than its 5x5 original because the 1x5 step mixes N maps, not C = 1.
    """

    variant = "spatial-separable"

    def make_conv(self, in_channels: int, out_channels: int, kernel_size: int, first: bool) -> nn.Module:
        return SpatialSeparableConv(in_channels, out_channels, kernel_size)


class DepthwiseSeparableNumberModel(NumberModel):
    """`depthwise-separable`: each 5x5 conv becomes a 5x5 depthwise conv (groups = C) then a 1x1 conv.

    Parameters per conv: C * (5*5) + N * C + N (conv 1: 25 + 6 + 6 = 37, conv 2: 150 + 96 + 16 = 262).
    """

    variant = "depthwise-separable"

    def make_conv(self, in_channels: int, out_channels: int, kernel_size: int, first: bool) -> nn.Module:
        return DepthwiseSeparableConv(in_channels, out_channels, kernel_size)


class GroupedNumberModel(NumberModel):
    """`grouped`: the second conv is split into `groups` groups (default 2).

    Parameters of the grouped conv: N * (5*5*C/g) + N (8 -> 16 with g = 2: 16 * 100 + 16 = 1,616). The first
    conv stays standard, since its input is the image's 1 or 3 channels. Its width is 8 instead of 6 so that
    groups of 1, 2, 4 or 8 divide both channel counts of the second conv.
    """

    variant = "grouped"
    widths = (8, 16)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, groups: int = 2,
                 widths: tuple[int, int] | None = None) -> None:
        self.groups = groups
        super().__init__(in_channels, num_classes, widths)

    def make_conv(self, in_channels: int, out_channels: int, kernel_size: int, first: bool) -> nn.Module:
        if first:
            return nn.Conv2d(in_channels, out_channels, kernel_size)
        return GroupedConv(in_channels, out_channels, kernel_size, groups=self.groups)


class FlattenedNumberModel(NumberModel):
    """`flattened`: each 5x5 conv becomes 1x1 across channels, then 5x1, then 1x5 (one filter per map).

    Parameters per conv: N * C + N * 5 + N * 5 + N, i.e. C + X + Y weights per filter instead of X * Y * C
    (conv 1: 6 + 30 + 30 + 6 = 72, conv 2: 96 + 80 + 80 + 16 = 272).
    """

    variant = "flattened"

    def make_conv(self, in_channels: int, out_channels: int, kernel_size: int, first: bool) -> nn.Module:
        return FlattenedConv(in_channels, out_channels, kernel_size)


class WideNumberModel(nn.Module):
    """`wide`: the LeNet layout made wider and batch-normalized, for accuracy rather than size.

        conv 5x5 (C -> 32) -> BN -> ReLU -> max-pool 2     32x32 -> 28x28 -> 14x14
        conv 5x5 (32 -> 64) -> BN -> ReLU -> max-pool 2    14x14 -> 10x10 -> 5x5
        fc 1600 -> 256 -> BN -> ReLU -> dropout -> fc 256 -> classes

    Parameters: 32 * 25 * C + 64 (conv 1 and its norm), 64 * 25 * 32 + 128 (conv 2 and its norm),
    1600 * 256 + 512 (fc and its norm), 256 * classes + classes: 464,874 for 1 channel and 10 classes,
    about 6.2 M multiply-adds per 32x32 image (the standard variant: 61,706 and 0.42 M).
    """

    variant = "wide"
    widths: tuple[int, int, int] = (32, 64, 256)  # conv 1, conv 2, the hidden fc layer

    def __init__(self, in_channels: int = 1, num_classes: int = 10, dropout: float = 0.3,
                 widths: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        if widths is not None:
            self.widths = check_widths(widths, 3, self.variant)
        w1, w2, hidden = self.widths
        self.features = self.make_features(in_channels, w1, w2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w2 * 5 * 5, hidden, bias=False),  # the norm's shift is the bias
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),  # (the same checkpoint keys either way)
            nn.Linear(hidden, num_classes),
        )

    def make_features(self, in_channels: int, w1: int, w2: int) -> nn.Sequential:
        """The two conv stages: 32x32 in, (w2, 5, 5) out."""
        return nn.Sequential(
            ConvBNReLU(in_channels, w1, 5),
            nn.MaxPool2d(2),
            ConvBNReLU(w1, w2, 5),
            nn.MaxPool2d(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FastNumberModel(WideNumberModel):
    """`fast`: `wide` with each max-pool moved before its batch norm and ReLU, at (20, 40, 256), no dropout.

        conv 5x5 (C -> 20) -> max-pool 2 -> BN -> ReLU     32x32 -> 28x28 -> 14x14
        conv 5x5 (20 -> 40) -> max-pool 2 -> BN -> ReLU    14x14 -> 10x10 -> 5x5
        fc 1000 -> 256 -> BN -> ReLU -> fc 256 -> classes

    Max-pooling commutes with any increasing per-channel map, ReLU after a norm with a positive scale
    among them, so this computes almost what conv -> BN -> ReLU -> pool does (the norm's statistics are
    those of the pooled maps), with the norm and the ReLU, forward and backward, on a quarter of the
    values: the order the CIFAR-10 speed-run networks use. A CPU epoch takes about an eighth less time
    than with `wide`'s order at the same widths. Short runs need no dropout (`dropout` adds it).
    Parameters: 20 * 25 * C + 40, 40 * 25 * 20 + 80, 1000 * 256 + 512 and 256 * classes + classes:
    279,702 for 1 channel and 10 classes, about 2.7 M multiply-adds per 32x32 image. The model of
    `configs/train/fast.yaml`.
    """

    variant = "fast"
    widths: tuple[int, int, int] = (20, 40, 256)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, dropout: float = 0.0,
                 widths: tuple[int, int, int] | None = None) -> None:
        super().__init__(in_channels, num_classes, dropout, widths)

    def make_features(self, in_channels: int, w1: int, w2: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(in_channels, w1, 5, bias=False),  # the norm's shift is the bias
            nn.MaxPool2d(2),
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 5, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=True),
        )


def check_widths(widths, count: int, variant: str) -> tuple[int, ...]:
    """`widths` as a tuple of `count` positive ints; a clear error otherwise."""
    from pipeline.core.errors import UsageError

    values = tuple(widths)
    if len(values) != count or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in values):
        raise UsageError(f"model variant {variant!r}: widths {list(values)} should be {count} positive integers",
                         fix=f"give {count} channel counts, e.g. widths=" + ",".join(["16"] * count))
    return values


# name -> class; every class takes (in_channels, num_classes, **options) and expects 32x32 inputs.
VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "standard": NumberModel,
    "dilated": DilatedNumberModel,
    "spatial-separable": SpatialSeparableNumberModel,
    "depthwise-separable": DepthwiseSeparableNumberModel,
    "grouped": GroupedNumberModel,
    "flattened": FlattenedNumberModel,
    "wide": WideNumberModel,
    "fast": FastNumberModel,
}

# name -> class of the reconstruction models: the output is the input image, there are no classes.
# Each takes (in_channels, **options) and expects 32x32 inputs; `pipeline train` trains them on any images.
AUTOENCODERS: dict[str, Callable[..., nn.Module]] = {
    "autoencoder": ConvAutoencoder,
}


def model_names() -> list[str]:
    """Every name `build_model` accepts: the classifier variants, then the reconstruction models."""
    return [*VARIANTS, *AUTOENCODERS]


def model_task(variant: str) -> str:
    """What a variant learns: `reconstruction` for the autoencoders, `classification` for the rest."""
    return "reconstruction" if variant in AUTOENCODERS else "classification"


def build_model(variant: str = "standard", in_channels: int = 1, num_classes: int = 10, **kwargs) -> nn.Module:
    """The model for `variant` (a classifier or an autoencoder); an unknown name lists the valid ones.

    Extra keyword options go to the variant (`groups` for `grouped`, `widths` for the NumberModel
    variants and the autoencoder, `dropout` for `wide`). An autoencoder ignores `num_classes`.
    """
    from pipeline.core.errors import UsageError

    if variant not in VARIANTS and variant not in AUTOENCODERS:
        raise UsageError(f"unknown model variant {variant!r}", fix=f"use one of: {', '.join(model_names())}")
    factory = VARIANTS.get(variant) or AUTOENCODERS[variant]
    accepted = [name for name in inspect.signature(factory).parameters if name not in ("in_channels", "num_classes")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UsageError(f"model variant {variant!r} has no option {', '.join(unknown)}",
                         fix=f"use one of: {', '.join(accepted)}" if accepted else "give no options")
    if variant in AUTOENCODERS:
        return factory(in_channels=in_channels, **kwargs)
    return factory(in_channels=in_channels, num_classes=num_classes, **kwargs)
