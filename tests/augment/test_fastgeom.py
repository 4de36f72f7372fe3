"""pipeline.augment.fastgeom names the geometry drop-ins of pipeline.augment.albu (their tests:
tests/augment/test_albu.py)."""

from __future__ import annotations

from pipeline.augment import albu, fastgeom


def test_the_former_names_are_the_drop_ins() -> None:
    for name in fastgeom.__all__:
        assert getattr(fastgeom, name) is getattr(albu, name), name
    assert {"Affine", "ElasticTransform", "Rotate"} <= set(fastgeom.__all__) & set(albu.DROP_INS)
