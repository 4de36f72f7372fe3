"""Convolution blocks: the seed's convolution variants as drop-in replacements for one k x k conv.

Every block maps `in_channels` to `out_channels` feature maps and, for the same `kernel_size`, gives the
same output size as the plain `nn.Conv2d(in_channels, out_channels, kernel_size)` it replaces (no padding,
stride 1). What changes is how the k x k x C_in filter is built, and so what it costs.

Parameter counts (weights; each block adds `out_channels` biases on its last conv only, since
the sub-convs are linear and a bias in between would be redundant). X, Y are the kernel's height and
width, C the input channels, N the output channels, g the groups:

    standard              N * (X*Y*C)                 one full filter per output channel
    dilated               N * (X*Y*C)                 same weights, spread out: receptive field (X-1)*d+1
    spatial-separable     N * (X*C) + N * (Y*N)       X x 1 then 1 x Y
    depthwise-separable   C * (X*Y) + N * C           X x Y per channel (groups = C), then 1 x 1
    grouped               N * (X*Y*C/g)               each filter sees C/g channels
    flattened             N * C + N * X + N * Y       1 x 1 across channels, then X x 1, then 1 x Y

Per output channel that is the seed's comparison: a standard filter has X*Y*C parameters, a
flattened one X+Y+C (Jin et al., "Flattened convolutional neural networks", 2014).

`UpBlock` is the transposed convolution (the seed's "deconvolution"): it spreads each input pixel over
a k x k patch, so a 2x2 input with a 3x3 kernel and stride 1 becomes 4x4:
out = (in - 1) * stride - 2 * padding + kernel_size.
"""

from __future__ import annotations

import math

from torch import nn

from pipeline.core.errors import UsageError


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output height or width of a convolution or pooling (floor((size + 2p - d*(k-1) - 1) / s) + 1)."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output height or width of a transposed convolution ((size-1)*s - 2p + d*(k-1) + output_padding + 1)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


class DilatedConv(nn.Conv2d):
    """A k x k conv whose taps sit `dilation` pixels apart (an "atrous" conv).

    Parameters: N * (X*Y*C) + N, the same as a standard X x Y conv. The receptive field grows to
    (X-1)*d + 1, so a 3x3 kernel with dilation 2 sees a 5x5 window with 9 instead of 25 weights per
    channel; on a 224x224 input it gives 220x220 (224 - 2*(3-1)). With `kernel_size` = 3 and dilation 2 it
    gives the same output size as the 5x5 conv it replaces.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 2) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)

    @staticmethod
    def parameter_count(in_channels: int, out_channels: int, kernel_size: int) -> int:
        """N * (X*Y*C) + N."""
        return out_channels * kernel_size * kernel_size * in_channels + out_channels


class SpatialSeparableConv(nn.Sequential):
    """A k x k conv replaced by a k x 1 conv followed by a 1 x k conv (no activation in between).

    Parameters: N * (X*C) + N * (Y*N) + N. A rank-1 k x k kernel is exactly the product of a column and a
    row, so it needs X + Y instead of X * Y weights per channel pair; in general the pair is an
    approximation that is cheaper once N is not much larger than C.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.kx1 = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), bias=False)
        self.k1x = nn.Conv2d(out_channels, out_channels, (1, kernel_size))

    @staticmethod
    def parameter_count(in_channels: int, out_channels: int, kernel_size: int) -> int:
        """N * (X*C) + N * (Y*N) + N."""
        return out_channels * kernel_size * in_channels + out_channels * kernel_size * out_channels + out_channels


class DepthwiseSeparableConv(nn.Sequential):
    """A k x k depthwise conv (groups = channels: one filter per input channel) then a 1 x 1 pointwise conv.

    Parameters: C * (X*Y) + N * C + N, against N * (X*Y*C) + N for a standard conv: the spatial filtering is
    done once per input channel, the channel mixing once per output channel (MobileNet, Xception).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    @staticmethod
    def parameter_count(in_channels: int, out_channels: int, kernel_size: int) -> int:
        """C * (X*Y) + N * C + N."""
        return in_channels * kernel_size * kernel_size + out_channels * in_channels + out_channels


class GroupedConv(nn.Conv2d):
    """A k x k conv split into `groups` independent convs, each over C/g input and N/g output channels.

    Parameters: N * (X*Y*C/g) + N, a g-th of a standard conv. The weight tensor is N x C/g x X x Y: a
    128 -> 64 conv with groups = 8 has weight shape 64 x 16 x 3 x 3 (AlexNet's two-GPU split, ResNeXt).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, groups: int = 2) -> None:
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise UsageError(
                f"groups={groups} must divide both channel counts of a {in_channels} -> {out_channels} conv",
                fix=f"use one of: {', '.join(str(g) for g in valid_groups(in_channels, out_channels))}",
            )
        super().__init__(in_channels, out_channels, kernel_size, groups=groups)

    @staticmethod
    def parameter_count(in_channels: int, out_channels: int, kernel_size: int, groups: int = 2) -> int:
        """N * (X*Y*C/g) + N."""
        return out_channels * kernel_size * kernel_size * (in_channels // groups) + out_channels


def valid_groups(in_channels: int, out_channels: int) -> list[int]:
    """The group counts that divide both channel counts (the divisors of their greatest common divisor)."""
    common = math.gcd(in_channels, out_channels)
    return [g for g in range(1, common + 1) if common % g == 0]


class FlattenedConv(nn.Sequential):
    """A k x k conv flattened into three 1-D convs: 1 x 1 across channels, then k x 1, then 1 x k.

    The first conv mixes the C input channels into N maps; the two spatial convs are depthwise (one
    k x 1 and one 1 x k filter per map). Parameters: N * C + N * X + N * Y + N, i.e. C + X + Y weights
    per output channel against X * Y * C for a standard conv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.channels = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.kx1 = nn.Conv2d(out_channels, out_channels, (kernel_size, 1), groups=out_channels, bias=False)
        self.k1x = nn.Conv2d(out_channels, out_channels, (1, kernel_size), groups=out_channels)

    @staticmethod
    def parameter_count(in_channels: int, out_channels: int, kernel_size: int) -> int:
        """N * C + N * X + N * Y + N."""
        return out_channels * (in_channels + 2 * kernel_size) + out_channels


class ConvBNReLU(nn.Sequential):
    """conv (no bias) -> batch norm -> ReLU, the unit of the `wide` variant.

    Parameters: N * (X*Y*C) for the conv plus 2 * N for the norm's scale and shift (the norm's shift makes
    a conv bias redundant). The running mean and variance are buffers, not parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Sequential):
    """An upsampling decoder block: transposed conv -> ReLU (or nothing after the last block).

    A transposed conv with stride s scatters every input pixel, weighted by the k x k kernel, into the
    output at s-pixel steps and sums the overlaps: out = (in - 1) * s - 2 * padding + k. The seed's example,
    a 2x2 input with a 3x3 kernel and stride 1, gives 4x4; kernel 4, stride 2, padding 1 doubles the size.
    Parameters: C * N * X * Y + N (weight shape C x N x X x Y, input channels first).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4, stride: int = 2,
                 padding: int = 1, activation: bool = True) -> None:
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride,
                                                      padding=padding)]
        if activation:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)
