"""Recipes: shipped files load, mistakes are errors that list the valid choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.augment.recipe import OPS, load_recipe, parse_recipe
from pipeline.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["digits", "digits-fast", "photos", "detection"])
def test_shipped_recipes_load(name):
    recipe = load_recipe(ROOT / "configs" / "augment" / f"{name}.yaml")
    assert recipe.name == name and recipe.ops
    assert len(recipe.hash) == 64


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"ops": [{"op": "rotat"}]}, "use one of: affine, color_jitter"),  # typo in the op name
        ({"ops": [{"op": "rotate", "degree": 3}]}, "valid parameters of rotate: p, degrees, fill"),  # typo in a parameter
        ({"ops": [{"op": "rotate", "p": 1.5}]}, "p: expected a probability"),  # probability out of range
        ({"ops": [{"op": "affine", "scale": [1.2, 0.8]}]}, "lo <= hi"),  # reversed range
        ({"ops": [{"op": "mixup", "alpha": 0}]}, "alpha: expected a number > 0"),
        ({"ops": [{"op": "mosaic", "tiles": 5}]}, "one of 4, 9"),
        ({"ops": []}, "non-empty list"),
        ({"ops": [{"op": "rotate"}], "visibilty": 0.5}, "valid keys: label_smoothing, min_area, name, ops, visibility"),
        ({"ops": [{"op": "mixup"}, {"op": "hflip"}]}, "list single-sample ops first"),
        ({"ops": [{"op": "cutout", "fill": "noise"}]}, "'random'"),
    ],
)
def test_bad_recipes_are_errors_that_teach(data, needle):
    with pytest.raises(ConfigError) as err:
        parse_recipe(data, "r.yaml")
    assert needle in str(err.value)
    assert str(err.value).startswith("r.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("ops: [ {op: rotate", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)


def test_hash_covers_resolved_parameters_not_the_name():
    a = parse_recipe({"name": "a", "ops": [{"op": "rotate"}]}, "a")
    b = parse_recipe({"name": "b", "ops": [{"op": "rotate", "degrees": 15.0, "fill": 0, "p": 1}]}, "b")
    c = parse_recipe({"ops": [{"op": "rotate", "degrees": 14}]}, "c")
    assert a.hash == b.hash  # defaults spelt out change nothing
    assert a.hash != c.hash


@pytest.mark.parametrize(
    ("op", "targets", "needle"),
    [
        ("hflip", {"label", "keypoints"}, "cannot handle keypoints"),  # mirroring swaps left/right keypoints
        ("sample_pairing", {"boxes"}, "cannot handle boxes"),  # the partner's objects would show unlabelled
        ("cutmix", {"polygons"}, "cannot handle polygons"),
        ("mosaic", {"masks"}, "cannot handle masks"),
        ("rotate", {"polylines"}, "cannot handle polylines"),
    ],
)
def test_refused_target_combinations(op, targets, needle):
    recipe = parse_recipe({"ops": [{"op": op}]}, "r.yaml")
    with pytest.raises(ConfigError) as err:
        recipe.check_targets(targets)
    assert needle in str(err.value) and "it supports" in str(err.value)


def test_every_op_declares_targets_and_documents_parameters():
    for spec in OPS.values():
        assert spec.targets, spec.name
        assert spec.kind in ("single", "multi")
        for param in spec.params.values():
            assert param.doc


def test_describe_ops_has_a_row_per_registered_op_with_its_defaults():
    from pipeline.augment.recipe import describe_ops

    rows = describe_ops()
    assert [r[0] for r in rows] == list(OPS)
    row = dict((r[0], r[1:]) for r in rows)["rotate"]
    assert row == ("single", "label, boxes, polygons, keypoints, masks", "degrees=15.0, fill=0")
