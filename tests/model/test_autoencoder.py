"""`pipeline.model.autoencoder`: the code and output shapes of ConvAutoencoder, and that it learns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.model import build_model
from pipeline.model.autoencoder import ConvAutoencoder


def test_autoencoder_reconstructs_its_input_shape_and_learns() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 32, 32, generator=gen)
    torch.manual_seed(0)
    model = ConvAutoencoder(1)
    assert model.encode(x).shape == (8, 64, 2, 2)
    assert model(x).shape == x.shape
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = last = 0.0
    for step in range(20):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), x)
        loss.backward()
        opt.step()
        first, last = (loss.item(), loss.item()) if step == 0 else (first, loss.item())
    assert last < 0.5 * first


@pytest.mark.parametrize("channels", [1, 3])
def test_each_stage_halves_then_doubles_the_map(channels: int) -> None:
    model = ConvAutoencoder(channels)
    x = torch.zeros(2, channels, 32, 32)
    sizes = []
    for layer in model.encoder:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(16, 16, 16), (32, 8, 8), (64, 4, 4), (64, 2, 2)]
    for block in model.decoder:
        x = block(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes[4:] == [(64, 4, 4), (32, 8, 8), (16, 16, 16), (channels, 32, 32)]


def test_code_channels_set_the_code_size() -> None:
    model = ConvAutoencoder(1, code_channels=8)
    assert model.encode(torch.zeros(1, 1, 32, 32)).shape == (1, 8, 2, 2)
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_only_the_last_decoder_block_has_no_activation() -> None:
    # a reconstruction may take any value: the loss decides, not a ReLU at the end
    model = ConvAutoencoder(1)
    relus = [any(isinstance(m, nn.ReLU) for m in block) for block in model.decoder]
    assert relus == [True, True, True, False]
    with torch.no_grad():
        for p in model.decoder[-1].parameters():
            p.fill_(0.0)
        model.decoder[-1][0].bias.fill_(-1.0)
    assert (model(torch.rand(2, 1, 32, 32)) == -1.0).all()  # negative outputs pass through


def test_autoencoders_build_through_the_same_factory_and_say_their_task() -> None:
    from pipeline.model import AUTOENCODERS, model_names, model_task

    assert model_names()[-len(AUTOENCODERS):] == list(AUTOENCODERS)
    assert model_task("autoencoder") == "reconstruction" and model_task("grouped") == "classification"
    model = build_model("autoencoder", 3, 10, widths=(8, 16, 24))
    assert isinstance(model, ConvAutoencoder) and model(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    assert [m.out_channels for m in model.encoder if isinstance(m, nn.Conv2d)] == [8, 16, 24, 64]
