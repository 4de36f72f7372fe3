"""pipeline.augment.fastpixel names the pixel drop-ins of pipeline.augment.albu (their tests:
tests/augment/test_albu.py)."""

from __future__ import annotations

from pipeline.augment import albu, fastpixel


def test_the_former_names_are_the_drop_ins() -> None:
    for name in fastpixel.__all__:
        assert getattr(fastpixel, name) is getattr(albu, name), name
    assert set(fastpixel.__all__) == {"ColorJitter", "GaussNoise"} <= set(albu.DROP_INS)
