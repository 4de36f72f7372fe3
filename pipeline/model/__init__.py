"""NumberModel, the seed's small CNN for 32x32 digits, and its convolution variants.

`build_model(variant, in_channels, num_classes)` is the one factory the training stage uses;
`VARIANTS` lists the names it accepts. The conv blocks live in `layers`, the transposed-conv
autoencoder in `autoencoder`, and the layer-by-layer counts of `pipeline model summary` in `summary`.
"""

from __future__ import annotations

from pipeline.model.number_model import VARIANTS, NumberModel, build_model

__all__ = ["VARIANTS", "NumberModel", "build_model"]
