"""NumberModel, the seed's small CNN for 32x32 digits, and its convolution variants.

`build_model(variant, in_channels, num_classes)` is the one factory the training stage uses;
`VARIANTS` lists the classifiers and `AUTOENCODERS` the reconstruction models it builds; `model_task`
says which of the two tasks a name trains. The conv blocks live in `layers`, the transposed-conv
autoencoder in `autoencoder`, and the layer-by-layer counts of `pipeline model summary` in `summary`.
"""

from __future__ import annotations

from pipeline.model.number_model import (
    AUTOENCODERS,
    VARIANTS,
    NumberModel,
    build_model,
    model_names,
    model_task,
)

__all__ = ["AUTOENCODERS", "VARIANTS", "NumberModel", "build_model", "model_names", "model_task"]
