"""The op registry, walked: every op declares every part, and each declaration holds.

For every op: its parameters validate their defaults and refuse bad values; the targets it declares
are the targets its offline kernel moves (or leaves alone, for pixel-only ops) and the others are
refused; its offline and online kernels exist where declared and run on a tiny sample and batch;
its drop-in, if declared, is what its transform is built from; it has a row in the README's op
table and in docs/augment.md. An op added without one of these parts fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.augment import albu, multi
from pipeline.augment import ops as registry
from pipeline.augment.kernels import rle_decode, rle_encode
from pipeline.augment.online import OnlineAugmenter
from pipeline.augment.ops.base import ALL_TARGETS, TARGETS
from pipeline.augment.recipe import parse_recipe
from pipeline.augment.single import Item, SingleOps, build_transform
from pipeline.core.dataset import Obj
from pipeline.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
OPS = registry.OPS
SINGLE = sorted(n for n, op in OPS.items() if op.kind == "single")
MULTI = sorted(n for n, op in OPS.items() if op.kind == "multi")
GEOMETRY = ("boxes", "polygons", "keypoints", "masks", "polylines")

# a value each parameter kind must refuse (the comment says why)
BAD = {
    "number": -1.0,  # below 0
    "int": 1.5,  # not an integer
    "range": [2.0, 1.0],  # lo > hi
    "size": [0, 4],  # not positive
    "fill": 256,  # above 255
    "choice": "none of them",
}


# parameters under which the op visibly moves a label on a small image (the defaults of `affine`
# draw the identity; those of `elastic` move points by less than the pixel they are rounded to)
MOVING = {"affine": {"degrees": 20, "translate": 0.1}, "elastic": {"alpha": 100, "sigma": 4}}


def recipe(name: str, **params: object):
    return parse_recipe({"ops": [{"op": name, "p": 1.0, **params}], "visibility": 0.0, "min_area": 0}, "t")


# --------------------------------------------------------------------------------------------
# The registry itself
# --------------------------------------------------------------------------------------------


def test_every_op_module_is_registered_once_under_its_own_name() -> None:
    files = sorted(p.stem for p in (ROOT / "pipeline" / "augment" / "ops").glob("*.py"))
    assert sorted(m.__name__.rsplit(".", 1)[1] for m in registry.MODULES) == [f for f in files
                                                                              if f not in ("__init__", "base")]
    declared = [op.name for module in registry.MODULES for op in module.OPS]
    assert len(declared) == len(set(declared)) == len(OPS)  # no name declared twice
    assert list(OPS) == sorted(OPS)
    for name, op in OPS.items():
        assert op.name == name
        assert op.kind in ("single", "multi") and op.doc
        assert op.targets and op.targets <= ALL_TARGETS and "label" in op.targets
        assert (op.partners is not None) == (op.kind == "multi"), name


def test_an_unknown_op_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        registry.get("rotat", "r.yaml: ops[0]")
    assert "unknown op 'rotat'" in str(err.value) and ", ".join(OPS) in str(err.value)
    assert registry.get("rotate") is OPS["rotate"]


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPS))
def test_declared_parameters_validate_defaults_and_refuse_bad_values(name: str) -> None:
    op = OPS[name]
    resolved = recipe(name).ops[0]
    assert sorted(resolved.params) == sorted(op.params)
    for key, param in op.params.items():
        assert param.kind in BAD and param.doc, (name, key)
        assert resolved.params[key] == param.validate("t", key, param.default)
        with pytest.raises(ConfigError, match=f"{key}: expected"):
            recipe(name, **{key: BAD[param.kind]})
    with pytest.raises(ConfigError, match="unknown parameter 'nonsense'"):
        recipe(name, nonsense=1)


# --------------------------------------------------------------------------------------------
# Targets: what is declared is what the offline kernel moves
# --------------------------------------------------------------------------------------------

W, H = 64, 48
SQUARE = (12, 10, 30, 26)  # off-centre, so that a flip moves it


def scene() -> np.ndarray:
    img = np.zeros((H, W, 3), dtype=np.uint8)
    x1, y1, x2, y2 = SQUARE
    img[y1:y2, x1:x2] = 255
    return img


def labelled(target: str) -> Obj:
    """One object on the bright square, carrying only `target`."""
    x1, y1, x2, y2 = SQUARE
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y1:y2, x1:x2] = 1
    value = {"boxes": ("bbox", [float(x1), float(y1), float(x2), float(y2)]),
             "polygons": ("polygon", [[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]]),
             "keypoints": ("keypoints", [[21.0, 18.0, 2]]),
             "masks": ("mask", rle_encode(mask)),
             "polylines": ("polyline", [[x1, y1], [x2, y2]])}[target]
    return Obj("0", **{value[0]: value[1]})


def geometry(obj: Obj) -> object:
    return (obj.bbox, obj.polygon, obj.keypoints, obj.polyline, None if obj.mask is None else obj.mask["counts"])


def on_the_square(out: Item, obj: Obj, target: str) -> bool:
    """The moved label still lies on the (moved) bright square."""
    bright = out.image.max(axis=2) > 127 if out.image.ndim == 3 else out.image > 127
    if target == "keypoints":
        x, y, v = obj.keypoints[0]
        return v == 0 or bright[int(round(y)), int(round(x))]
    if target == "masks":
        mask = rle_decode(obj.mask).astype(bool)
        return not mask.any() or bright[mask].mean() > 0.7
    box = obj.bbox if target == "boxes" else [min(p[0] for r in obj.polygon for p in r),
                                              min(p[1] for r in obj.polygon for p in r),
                                              max(p[0] for r in obj.polygon for p in r),
                                              max(p[1] for r in obj.polygon for p in r)]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    inside = 0 <= x1 <= x2 <= out.width and 0 <= y1 <= y2 <= out.height
    region = bright[y1:y2, x1:x2]
    return inside and (region.size == 0 or region.mean() > 0.4)


@pytest.mark.parametrize("name", SINGLE)
def test_single_op_moves_what_it_declares_and_refuses_the_rest(name: str) -> None:
    op = OPS[name]
    r = recipe(name, **MOVING.get(name, {}))
    for target in GEOMETRY:
        if target not in op.targets:
            with pytest.raises(ConfigError, match=f"cannot handle {target}"):
                r.check_targets({"label", target})
            continue
        r.check_targets({"label", target})
        ops = SingleOps(r, 3, {"label", target})
        before = labelled(target)
        moved = False
        for seed in range(6):
            out = ops(Item(scene(), None, [before.copy()]), np.random.default_rng(seed))
            if op.geometric:
                assert all(on_the_square(out, o, target) for o in out.objects), (target, seed, out.objects)
                moved = moved or [geometry(o) for o in out.objects] != [geometry(before)]
            else:  # pixels only: the labels stay exactly where they were
                assert [geometry(o) for o in out.objects] == [geometry(before)], (target, seed)
        assert moved or not op.geometric, f"{name} declares {target} but never moves it"


@pytest.mark.parametrize("name", SINGLE)
def test_geometric_is_what_the_transform_does(name: str) -> None:
    """A transform that changes pixels only is declared pixel-only and may take every target; one
    that moves pixels is declared geometric and refuses polylines (they are not moved)."""
    op = OPS[name]
    transform = build_transform(recipe(name).ops[0], 3)
    assert albu.is_image_only(transform) is not op.geometric
    assert (op.targets == ALL_TARGETS) is not op.geometric


@pytest.mark.parametrize("name", MULTI)
def test_multi_op_carries_what_it_declares_and_refuses_the_rest(name: str) -> None:
    r = recipe(name)
    op = r.ops[0]
    for target in GEOMETRY:
        if target not in OPS[name].targets:
            with pytest.raises(ConfigError, match=f"cannot handle {target}"):
                r.check_targets({"label", target})
            continue
        field_ = geometry(labelled(target))
        kept = False
        for seed in range(6):
            partners = [Item(scene(), None, [labelled(target)]) for _ in range(multi.partners_needed(op))]
            out = multi.apply(op, Item(scene(), None, [labelled(target)]), partners, np.random.default_rng(seed), r)
            assert out.image.shape == (H, W, 3)
            index = [i for i, v in enumerate(field_) if v is not None][0]
            kept = kept or any(geometry(o)[index] is not None for o in out.objects)
        assert kept, f"{name} declares {target} but drops it every time"


@pytest.mark.parametrize("name", MULTI)
def test_label_smoothing_applies_where_declared(name: str) -> None:
    r = parse_recipe({"ops": [{"op": name, "p": 1.0}], "label_smoothing": 0.2}, "t")
    op = r.ops[0]
    partners = [Item(scene(), np.eye(4)[1]) for _ in range(multi.partners_needed(op))]
    out = multi.apply(op, Item(scene(), np.eye(4)[0]), partners, np.random.default_rng(0), r)
    assert bool(out.soft.min() >= 0.05 - 1e-9) is OPS[name].smooths_labels  # eps / K = 0.2 / 4 on every class


# --------------------------------------------------------------------------------------------
# Kernels: offline everywhere, online where declared, the drop-in where declared
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SINGLE)
def test_offline_kernel_builds_and_runs_for_grey_and_colour(name: str) -> None:
    r = recipe(name)
    for channels in (1, 3):
        shape = (12, 16) if channels == 1 else (12, 16, 3)
        img = np.random.default_rng(channels).integers(0, 256, shape, dtype=np.uint8)
        out = SingleOps(r, channels, {"label"})(Item(img, np.eye(2)[0]), np.random.default_rng(0))
        assert out.image.dtype == np.uint8 and out.image.ndim == img.ndim
        assert (out.image.shape == img.shape) or OPS[name].resizes(r.ops[0].params)


@pytest.mark.parametrize("name", SINGLE)
def test_declared_drop_in_is_what_the_transform_is_built_from(name: str) -> None:
    op, config = OPS[name], recipe(name).ops[0]
    if name == "random_crop":
        assert not isinstance(build_transform(recipe(name, size=[8, 8]).ops[0], 3), tuple(albu.DROP_INS.values()))
    fast, stock = build_transform(config, 3), build_transform(config, 3, stock=True)
    if op.fast is None:
        assert not isinstance(fast, tuple(albu.DROP_INS.values()))
    else:
        assert isinstance(fast, albu.DROP_INS[op.fast]) and not isinstance(stock, albu.DROP_INS[op.fast])
        assert type(stock).__mro__[1] is type(fast).__mro__[2]  # named after the op, over the stock class


@pytest.mark.parametrize("name", sorted(OPS))
def test_online_kernel_runs_on_a_batch_or_the_op_is_refused(name: str) -> None:
    op = OPS[name]
    config = recipe(name).ops[0]
    if op.online is None or op.resizes(config.params):
        assert op.resizes(config.params), f"{name} has no online kernel and no reason to be refused"
        with pytest.raises(ConfigError, match="changes the image size"):
            OnlineAugmenter(recipe(name), ["a", "b"])
        return
    for channels in (1, 3):
        x = torch.randint(0, 256, (4, channels, 12, 16), generator=torch.Generator().manual_seed(0)).float()
        y = torch.eye(2)[torch.tensor([0, 1, 1, 0])]
        x0, y0 = x.clone(), y.clone()
        gen, rng = torch.Generator().manual_seed(1), np.random.default_rng(1)
        if op.kind == "single":
            out = op.online(config, x, gen, rng)
        else:
            out, target = op.online(config, x, y, gen, rng)
            assert target.shape == y.shape and torch.isfinite(target).all()
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert torch.equal(x, x0) and torch.equal(y, y0)  # inputs untouched


# --------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------


def _first_column_names(text: str) -> set[str]:
    return {name for line in text.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])}


@pytest.mark.parametrize("doc", ["README.md", "docs/augment.md"])
def test_every_op_has_a_row_in_the_op_tables(doc: str) -> None:
    named = _first_column_names((ROOT / doc).read_text(encoding="utf-8"))
    assert set(OPS) <= named, sorted(set(OPS) - named)


def test_targets_are_the_documented_ones() -> None:
    assert TARGETS == ("label", "boxes", "polygons", "keypoints", "masks", "polylines")
