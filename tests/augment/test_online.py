"""The online hook used by `pipeline train --augment`, and the tensor helpers the batched kernels share."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.augment import online as O
from pipeline.augment.online import OnlineAugmenter, warp
from pipeline.augment.recipe import parse_recipe
from pipeline.core.errors import ConfigError

CLASSES = [str(i) for i in range(10)]
EVERY = ["hflip", "vflip", "rotate", "affine", "shift", "scale", "random_crop", "perspective", "elastic",
         "gaussian_blur", "color_jitter", "grayscale", "noise", "sharpen", "invert",
         "sample_pairing", "mixup", "cutmix", "cutout", "mosaic"]


def batch(n: int = 16, c: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.nn.functional.one_hot(torch.randint(0, 10, (n,), generator=g), 10).float()
    return x, y


@pytest.mark.parametrize("channels", [1, 3])
def test_every_op_online_keeps_the_contract(channels):
    recipe = parse_recipe({"ops": [{"op": n, "p": 0.6} for n in EVERY], "label_smoothing": 0.1}, "t")
    aug = OnlineAugmenter(recipe, classes=CLASSES, seed=3)
    x, y = batch(12, channels)
    x0, y0 = x.clone(), y.clone()
    out, target = aug(x, y, step=5)
    assert torch.equal(x, x0) and torch.equal(y, y0)  # inputs untouched
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert target.dtype == torch.float32 and target.shape == y.shape
    assert torch.allclose(target.sum(dim=1), torch.ones(12), atol=1e-5)
    again, target2 = aug(x, y, step=5)
    assert torch.equal(out, again) and torch.equal(target, target2)  # deterministic from (seed, step)
    other, _ = aug(x, y, step=6)
    assert not torch.equal(out, other)


def test_sizes_changing_ops_are_refused_online():
    with pytest.raises(ConfigError, match="changes the image size"):
        OnlineAugmenter(parse_recipe({"ops": [{"op": "resize", "width": 28, "height": 28}]}, "t"), CLASSES)


def test_warp_with_identity_and_flip_matrices():
    x, _ = batch(4)
    x = x.float()
    eye = torch.eye(3, dtype=torch.float64).repeat(4, 1, 1)
    assert torch.allclose(warp(x, eye), x, atol=1e-3)
    flip = eye.clone()
    flip[:, 0, 0], flip[:, 0, 2] = -1.0, 31.0
    assert torch.allclose(warp(x, flip), x.flip(-1), atol=1e-3)


def test_ranges_read_symmetrically_or_as_given() -> None:
    assert O.as_range(3, symmetric=True) == (-3.0, 3.0) and O.as_range(3, symmetric=False) == (3.0, 3.0)
    assert O.as_range([1, 2], symmetric=True) == (1.0, 2.0)


def test_uniform_draws_stay_in_range_and_follow_the_generator() -> None:
    a = O.uniform(torch.Generator().manual_seed(4), 100, -2.0, 3.0)
    b = O.uniform(torch.Generator().manual_seed(4), 100, -2.0, 3.0)
    assert a.dtype == torch.float64 and torch.equal(a, b)
    assert float(a.min()) >= -2.0 and float(a.max()) <= 3.0


def test_affine_matrices_without_ranges_are_the_identity_and_draw_alike() -> None:
    """Every op of the affine family draws six values per sample in one order, whichever it varies:
    the generator is left in the same state."""
    eye = torch.eye(3, dtype=torch.float64).repeat(5, 1, 1)
    gen = torch.Generator().manual_seed(1)
    assert torch.allclose(O.affine_matrices(5, 10, 12, gen), eye)
    other = torch.Generator().manual_seed(1)
    O.affine_matrices(5, 10, 12, other, degrees=(-30.0, 30.0), shear=(-5.0, 5.0))
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=other))


def test_a_pure_rotation_keeps_the_centre_in_place() -> None:
    m = O.affine_matrices(3, 9, 13, torch.Generator().manual_seed(2), degrees=(-90.0, 90.0))
    centre = torch.tensor([6.0, 4.0, 1.0], dtype=torch.float64)  # ((w - 1) / 2, (h - 1) / 2)
    assert torch.allclose(m @ centre, centre.expand(3, 3))


def test_luma_and_a_zero_hue_turn() -> None:
    x = torch.rand(2, 3, 4, 4) * 255
    assert torch.allclose(O.grey(x), (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]), atol=1e-4)
    assert torch.equal(O.grey(x[:, :1]), x[:, :1])
    assert torch.allclose(O.hue_rotate(x, torch.zeros(2)), x, atol=1e-3)


def test_an_op_without_an_online_kernel_is_refused(monkeypatch) -> None:
    from pipeline.augment.ops import OPS

    recipe = parse_recipe({"ops": [{"op": "invert"}]}, "t")
    monkeypatch.setitem(OPS, "invert", dataclasses.replace(OPS["invert"], online=None))
    with pytest.raises(ConfigError, match="'invert' is not available online"):
        OnlineAugmenter(recipe, CLASSES)


# --------------------------------------------------------------------------------------------
# Parity with the per-sample (offline) path: the same parameter distributions, the same pixels
# for the same parameters within interpolation tolerance, and one composed warp for several
# --------------------------------------------------------------------------------------------

DIGITS = {"rotate": {"degrees": 10}, "random_crop": {"padding": 2}, "scale": {"scale": [0.9, 1.1]},
          "elastic": {"alpha": 8, "sigma": 3}, "gaussian_blur": {"sigma": [0.1, 0.8]}, "noise": {"std": [0.01, 0.05]}}
DRAWS = 1500


def _op(name: str):
    return parse_recipe({"ops": [{"op": name, "p": 1.0, **DIGITS[name]}]}, "t").single[0]


def _offline_params(name: str, count: int) -> list[dict]:
    """`count` parameter draws of the offline (albumentations) transform of the digits recipe's op."""
    import numpy as np

    from pipeline.augment.single import build_transform

    t = build_transform(_op(name), 1)
    t.set_random_seed(7)
    image = np.zeros((28, 28), np.uint8)
    return [t.get_params_dependent_on_data({"shape": (28, 28)}, {"image": image}) for _ in range(count)]


def _online_warp(name: str, count: int) -> O.Warp:
    op = _op(name)
    return op.spec.warp(op, count, 28, 28, torch.Generator().manual_seed(7), None)


def _quantiles(values) -> torch.Tensor:
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    return torch.quantile(v, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64))


# op, what is compared, online value from the drawn warp, offline value from albumentations' draw, tolerance
PARAMS = [
    ("rotate", "angle (degrees)", lambda w: torch.rad2deg(torch.atan2(w.matrix[:, 1, 0], w.matrix[:, 0, 0])),
     lambda ps: [p["angle"] for p in ps], 0.6),
    ("scale", "x zoom", lambda w: w.matrix[:, 0, 0], lambda ps: [p["scale"]["x"] for p in ps], 0.01),
    ("scale", "y zoom", lambda w: w.matrix[:, 1, 1], lambda ps: [p["scale"]["y"] for p in ps], 0.01),
    ("random_crop", "x shift (whole pixels)", lambda w: w.matrix[:, 0, 2], lambda ps: [p["translate"]["x"] for p in ps],
     0.0),
    ("random_crop", "y shift (whole pixels)", lambda w: w.matrix[:, 1, 2], lambda ps: [p["translate"]["y"] for p in ps],
     0.0),
    # the displacement in pixels at each position: drawn noise, normalised, blurred, scaled
    ("elastic", "x displacement", lambda w: w.field[..., 0],
     lambda ps: [p["map_x"] - __import__("numpy").arange(28)[None, :] for p in ps[:200]], 0.05),
    ("elastic", "y displacement", lambda w: w.field[..., 1],
     lambda ps: [p["map_y"] - __import__("numpy").arange(28)[:, None] for p in ps[:200]], 0.05),
]


@pytest.mark.parametrize(("name", "what", "online", "offline", "tol"), PARAMS, ids=[f"{p[0]}: {p[1]}" for p in PARAMS])
def test_online_draws_follow_the_offline_distributions(name, what, online, offline, tol) -> None:
    import numpy as np

    count = 200 if name == "elastic" else DRAWS
    ours = _quantiles(online(_online_warp(name, count)))
    theirs = _quantiles(np.stack(offline(_offline_params(name, count))))
    spread = float(theirs[-1] - theirs[0])
    assert torch.allclose(ours, theirs, atol=tol + 0.05 * spread), f"{name} {what}: {ours} vs {theirs}"


def _smooth(n: int = 4, seed: int = 0):
    """Images with structure but no single-pixel edges, so interpolation differences stay small."""
    import numpy as np

    g = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.zeros((28, 28), np.float32)
        yy, xx = np.mgrid[:28, :28]
        for _ in range(3):
            cy, cx, r = g.uniform(6, 22), g.uniform(6, 22), g.uniform(3, 6)
            img += 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.mark.parametrize("name", ["rotate", "random_crop", "scale", "elastic", "gaussian_blur"])
def test_online_kernels_match_the_offline_pixels_for_the_same_parameters(name) -> None:
    """Each geometric op and the blur, given albumentations' drawn parameters, gives the offline
    pixels within interpolation tolerance (OpenCV's 5-bit bilinear weights and uint8 rounding)."""
    import numpy as np

    from pipeline.augment.single import build_transform

    t = build_transform(_op(name), 1)
    t.set_random_seed(3)
    images = _smooth()
    x = torch.from_numpy(images).float().unsqueeze(1)
    for i, img in enumerate(images):
        params = t.get_params_dependent_on_data({"shape": (28, 28)}, {"image": img})
        want = np.asarray(t.apply(img, **params, shape=(28, 28)), dtype=np.float32).reshape(28, 28)
        one = x[i:i + 1]
        if name == "elastic":
            grid = np.stack(np.meshgrid(np.arange(28), np.arange(28)), axis=-1)
            field = np.stack([params["map_x"], params["map_y"]], axis=-1) - grid
            got = O.resample(one, None, torch.from_numpy(field).unsqueeze(0))
        elif name == "gaussian_blur":
            k = params["kernel"]
            r = len(k) // 2
            sigma = torch.tensor([float(np.sqrt(-(r ** 2) / (2 * np.log(k[0] / k[r]))) if r else 0.1)])
            got = O.blur(one, sigma, torch.tensor([r]))
        else:
            got = O.warp(one, torch.from_numpy(params["matrix"]).unsqueeze(0))
        diff = (got[0, 0] - torch.from_numpy(want)).abs()
        assert float(diff.mean()) < 0.6 and float(diff.max()) < 4.0, f"{name} sample {i}: {diff.mean()}, {diff.max()}"


def test_a_chain_of_warps_is_one_resampling_of_the_composed_matrix() -> None:
    """Rotate then shift then an elastic field, resampled once, matches the three applied in turn."""
    x = torch.from_numpy(_smooth(3, seed=1)).float().unsqueeze(1)
    gen = torch.Generator().manual_seed(0)
    rot = O.affine_matrices(3, 28, 28, gen, degrees=(30.0, 40.0))  # large enough that the order shows
    shift = O.affine_matrices(3, 28, 28, gen, translate=(0.1, 0.2))
    field = _online_warp("elastic", 3).field
    steps = O.resample(O.resample(O.warp(x, rot), shift), None, field)
    once = O.resample(x, shift @ rot, field)
    inner = (..., slice(8, 20), slice(8, 20))  # away from content the first warps pushed out of the frame
    diff = float((steps - once)[inner].abs().mean())  # three bilinear passes blur more than one
    wrong = float((steps - O.resample(x, rot @ shift, field))[inner].abs().mean())  # the other order
    assert diff < 2.0 and wrong > 3 * diff, (diff, wrong)

@pytest.mark.parametrize("with_matrix", [False, True])
def test_a_field_on_some_rows_moves_those_rows_alone(with_matrix: bool) -> None:
    """A field given for some samples (`rows`) is the same warp as a full field that is zero elsewhere."""
    x = torch.from_numpy(_smooth(5, seed=2)).float().unsqueeze(1)
    gen = torch.Generator().manual_seed(4)
    matrix = O.affine_matrices(5, 28, 28, gen, degrees=(-20.0, 20.0), translate=(-0.1, 0.1)) if with_matrix else None
    rows = torch.tensor([1, 3])
    field = _online_warp("elastic", 2).field
    full = torch.zeros(5, 28, 28, 2, dtype=field.dtype)
    full[rows] = field
    sparse = O.resample(x, matrix, field, rows=rows)
    dense = O.resample(x, matrix, full)
    assert torch.allclose(sparse, dense, atol=1e-3)
    plain = O.resample(x, matrix)
    assert torch.equal(sparse[[0, 2, 4]], plain[[0, 2, 4]])
    assert float((sparse[rows] - plain[rows]).abs().mean()) > 0.5  # the field did move those two


@pytest.mark.parametrize(("h", "w"), [(28, 28), (32, 20), (7, 13)])
def test_the_sampling_matrices_are_the_inverse_of_the_forward_ones_in_normalised_units(h: int, w: int) -> None:
    """The closed-form inverse equals N F^-1 N^-1 worked out with general matrix inverses."""
    import numpy as np

    gen = torch.Generator().manual_seed(h * w)
    forward = O.affine_matrices(64, h, w, gen, degrees=(-40.0, 40.0), translate=(-0.3, 0.3), scale=(0.5, 1.6),
                                shear=(-20.0, 20.0))
    norm = O._pixels_to_normalised(h, w)
    expected = (norm @ np.linalg.inv(forward.numpy()) @ np.linalg.inv(norm))[:, :2]
    assert np.allclose(O._normalised_thetas(forward, 64, h, w), expected, rtol=0, atol=1e-12)
    projective = forward.clone()
    projective[0, 2, 0] = 1e-3
    assert O._normalised_thetas(projective, 64, h, w) is None


def test_the_digits_recipe_runs_on_the_batch_device_and_keeps_uint8_range() -> None:
    """On whatever device the batch lives (CUDA when present) the output stays there."""
    recipe = parse_recipe({"ops": [{"op": k, "p": 0.5, **v} for k, v in DIGITS.items()]}, "digits")
    aug = OnlineAugmenter(recipe, classes=CLASSES, seed=0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = batch(32)
    out, target = aug(x.to(device), y.to(device), step=1)
    assert out.device.type == device and target.device.type == device
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    cpu_out, _ = aug(x, y, step=1)
    assert torch.allclose(out.cpu(), cpu_out, atol=0.05)  # float32 rounding differs between devices


@pytest.mark.parametrize("name", sorted(n for n, op in __import__("pipeline.augment.ops", fromlist=["OPS"]).OPS.items()
                                        if op.warp is not None))
def test_a_declared_warp_is_what_the_online_kernel_applies(name) -> None:
    """The registry's `warp` and `online` of an op agree: same draws, same pixels; only geometric
    single-sample ops declare one."""
    from pipeline.augment.ops import OPS

    spec = OPS[name]
    assert spec.kind == "single" and spec.geometric
    op = parse_recipe({"ops": [{"op": name, "p": 1.0}]}, "t").single[0]
    x, _ = batch(6)
    x = x.float()
    direct = spec.online(op, x, torch.Generator().manual_seed(4), None)
    drawn = spec.warp(op, 6, 32, 32, torch.Generator().manual_seed(4), None)
    assert torch.equal(direct, O.apply_warp(x, drawn, op.params.get("fill", 0.0)))
