"""pipeline.augment.ops.mosaic: 4 or 9 tiles on the first sample's canvas, labels by area share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment.ops.mosaic import mosaic
from pipeline.augment.single import Item
from tests.augment.ops.kit import batch, config, online, recipe, soft


@pytest.mark.parametrize("tiles", ["4", "9"])
def test_cells_tile_the_canvas_and_the_label_is_the_area_share(tiles: str) -> None:
    op = config("mosaic", tiles=tiles)
    n = op.spec.partners(op.params) + 1
    assert n == int(tiles)
    items = [Item(np.full((20, 24), 10 * i, np.uint8), np.eye(n)[i]) for i in range(n)]
    out = mosaic(op, items[0], items[1:], np.random.default_rng(2), recipe("mosaic", tiles=tiles))
    cells = out.params[-1]["cells"]
    assert out.image.shape == (20, 24) and sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in cells) == 480
    for (x1, y1, x2, y2), (source, _, _) in zip(cells, out.params[-1]["windows"], strict=True):
        assert (out.image[y1:y2, x1:x2] == 10 * source).all()
        assert out.soft[source] == pytest.approx((x2 - x1) * (y2 - y1) / 480)


def test_online_targets_sum_to_one_and_failed_coins_change_nothing() -> None:
    x, y = batch(), soft()
    out, target = online(config("mosaic", p=1.0, tiles=9), x, y)
    assert out.shape == x.shape and torch.allclose(target.sum(dim=1), torch.ones(4))
    same, target0 = online(config("mosaic", p=0.0), x, y)
    assert torch.equal(same, x) and torch.equal(target0, y)
