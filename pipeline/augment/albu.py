"""Everything that depends on albumentations 2.0.8 beyond its public transforms, in one place.

- `load()`: the `albumentations` module, imported without torch where torch is not loaded yet.
  `import albumentations` ends with `from .pytorch import *` (`ToTensorV2`), which imports torch:
  3-4 s of a `pipeline augment` command on this machine (and again in the fork server its workers
  come from), for a class this project never uses. albumentations skips that import when it raises
  `ImportError`; importing this module makes it do so, then removes the block, so a later
  `import albumentations.pytorch` imports torch and works as usual. Where torch is loaded already
  (training, the benchmarks) nothing is blocked: that import is cheap there.
- Drop-in subclasses that cost less per call with the same draws and the same pixels: `Affine`,
  `Rotate`, `ElasticTransform` (geometry) and `GaussNoise`, `ColorJitter` (pixels), listed in
  `DROP_INS`; `transforms()` hands the op builders albumentations' classes with these in place.
- `Compose`: `A.Compose` that re-filters boxes and points only after a transform that ran.
- `plan()` / `run_direct()`: a list of transforms driven on an image alone with the draws and calls
  `A.Compose` would make, without its per-call validation.

Importing this module imports albumentations (1-2 s): the modules that use it import it when they
first build transforms. tests/augment/test_albu.py holds every drop-in, the Compose and the direct
driver to albumentations' own code: same parameters, same pixels, same boxes.

Geometry (`Affine`, `Rotate`): on small images (a 28x28 digit) these transforms spend most of their
time outside OpenCV: each call multiplies six numpy 3x3 matrices, twice (image centre and box
centre), and `warp_affine` runs `np.allclose` against the identity before every warp. The
subclasses draw exactly the same parameters from the same generators in the same order
(albumentations' own helpers do the drawing), build the same matrices with scalar arithmetic
(equal to albumentations' to 1e-12), test for the identity with the same tolerances on nine
floats, and call `cv2.warpAffine` with the arguments albumentations would pass. The drawn angle,
shift and shear are returned beside the matrix, so an augmented sample's record names them instead
of the matrix. Boxes, keypoints and masks keep albumentations' code paths (they read the matrices
from the parameters). Anything outside the fast path (more than 4 channels, `fit_output`,
`crop_border`) goes to the stock method. `ElasticTransform` keeps albumentations' displacement
fields and builds its coordinate grid once per image size.

Pixels (`GaussNoise`, `ColorJitter`): `GaussNoise` fills a float64 noise map with OpenCV's normal
generator, converts it to float32, scales it, converts the image to float32, adds, clips and
converts back: five full-size passes besides the draw. OpenCV computes each normal value in double
precision before storing it in the destination's type, so drawing straight into float32 stores the
same numbers; the noise is truncated as albucore truncates it, and added with OpenCV's saturating
addition (exact on whole numbers), one pass instead of four. `ColorJitter`'s contrast step takes
the mean of the grey image with numpy (a float64 pass over a full-size copy); the sum of a uint8
image is an integer, exact in OpenCV's `sumElems` as in numpy's pairwise float64 sum, so dividing
it by the pixel count gives numpy's mean to the last bit. Anything else (float images, noise
shared across channels or generated at reduced resolution) goes to the stock methods.
"""

from __future__ import annotations

import math
import os
import sys
from types import ModuleType
from typing import Any

import cv2
import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # it calls home on import otherwise

_TORCH_PART = "albumentations.pytorch"


def _import_without_torch() -> ModuleType:
    module = sys.modules.get("albumentations")
    if module is not None:
        return module
    block = "torch" not in sys.modules and _TORCH_PART not in sys.modules
    if block:
        sys.modules[_TORCH_PART] = None  # type: ignore[assignment]  # `import` of it raises ImportError
    try:
        import albumentations
    finally:
        if block and _TORCH_PART in sys.modules and sys.modules[_TORCH_PART] is None:
            del sys.modules[_TORCH_PART]
    return albumentations


A = _import_without_torch()

from albucore import multiply_add  # noqa: E402
from albumentations.augmentations.geometric import functional as fgeometric  # noqa: E402
from albumentations.augmentations.pixel import functional as fpixel  # noqa: E402
from albumentations.core.bbox_utils import check_bboxes  # noqa: E402
from albumentations.core.composition import BaseCompose  # noqa: E402
from albumentations.core.transforms_interface import BasicTransform  # noqa: E402


def load() -> ModuleType:
    """The `albumentations` module."""
    return A


# --------------------------------------------------------------------------------------------
# Geometry drop-ins: Affine, Rotate, ElasticTransform
# --------------------------------------------------------------------------------------------


_EYE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def affine_matrix(translate: dict, shear: dict, scale: dict, rotate: float, shift: tuple[float, float]) -> np.ndarray:
    """`shift_back @ translate @ shear @ rotate @ scale @ shift_to_origin`, as albumentations'
    `create_affine_transformation_matrix` composes it, multiplied out by hand."""
    r = math.radians(rotate % 360)
    c, s = math.cos(r), math.sin(r)
    shx, shy = math.tan(math.radians(shear["x"])), math.tan(math.radians(shear["y"]))
    sx, sy = scale["x"], scale["y"]
    a, b, d, e = c * sx, s * sy, -s * sx, c * sy  # rotate @ scale
    m00, m01 = a + shx * d, b + shx * e  # shear @ (rotate @ scale)
    m10, m11 = shy * a + d, shy * b + e
    cx, cy = shift
    return np.array([[m00, m01, translate["x"] + cx - m00 * cx - m01 * cy],
                     [m10, m11, translate["y"] + cy - m10 * cx - m11 * cy],
                     [0.0, 0.0, 1.0]])


def is_identity(matrix: np.ndarray) -> bool:
    """`np.allclose(matrix, eye(3))` (rtol 1e-5, atol 1e-8) on nine Python floats."""
    return all(abs(v - w) <= 1e-8 + 1e-5 * abs(w) for v, w in zip(matrix.ravel().tolist(), _EYE, strict=True))


def warp_affine(img: np.ndarray, matrix: np.ndarray, interpolation: int, fill: Any, border_mode: int,
                output_shape: tuple[int, ...]) -> np.ndarray:
    """albumentations' `warp_affine` for images of up to 4 channels."""
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels > 4:
        return fgeometric.warp_affine(img, matrix, interpolation, fill, border_mode, output_shape)
    if is_identity(matrix):
        return img
    size = (int(round(output_shape[1])), int(round(output_shape[0])))  # half to even, as np.round
    out = cv2.warpAffine(img, matrix[:2, :], size, flags=interpolation, borderMode=border_mode,
                         borderValue=fgeometric.extend_value(fill, channels))
    if img.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
        out = out[:, :, None]
    return out


class Affine(A.Affine):
    box_matrix = True  # False where no boxes travel with the image (the matrix for box corners is not needed)
    unrecorded = frozenset({"matrix"})  # the drawn translate, shear, scale and rotate say the same, shorter

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if self.fit_output:
            return super().get_params_dependent_on_data(params, data)
        shape = params["shape"][:2]
        translate = self._get_translate_params(shape)
        shear = self._get_shear_params()
        scale = self._get_scale(self.scale, self.keep_ratio, self.balanced_scale, self.py_random)
        rotate = self.py_random.uniform(*self.rotate)
        return {"rotate": rotate, "scale": scale, "translate": translate, "shear": shear,
                "matrix": affine_matrix(translate, shear, scale, rotate, fgeometric.center(shape)),
                "bbox_matrix": affine_matrix(translate, shear, scale, rotate, fgeometric.center_bbox(shape))
                if self.box_matrix else None,
                "output_shape": shape}

    def apply(self, img: np.ndarray, matrix: np.ndarray, output_shape: tuple[int, int], **params: Any) -> np.ndarray:
        return warp_affine(img, matrix, self.interpolation, self.fill, self.border_mode, output_shape)


_ZERO = {"x": 0, "y": 0}
_ONE = {"x": 1, "y": 1}


class Rotate(A.Rotate):
    box_matrix = True
    unrecorded = frozenset({"matrix", "x_min", "x_max", "y_min", "y_max"})  # the angle says it; no crop

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        if self.crop_border:
            return super().get_params_dependent_on_data(params, data)
        angle = self.py_random.uniform(*self.limit)
        shape = params["shape"][:2]
        return {"angle": angle, "x_min": -1, "x_max": -1, "y_min": -1, "y_max": -1,
                "matrix": affine_matrix(_ZERO, _ZERO, _ONE, angle, fgeometric.center(shape)),
                "bbox_matrix": affine_matrix(_ZERO, _ZERO, _ONE, angle, fgeometric.center_bbox(shape))
                if self.box_matrix else None}

    def apply(self, img: np.ndarray, matrix: np.ndarray, x_min: int, x_max: int, y_min: int, y_max: int,
              **params: Any) -> np.ndarray:
        if self.crop_border:
            return super().apply(img, matrix, x_min, x_max, y_min, y_max, **params)
        return warp_affine(img, matrix, self.interpolation, self.fill, self.border_mode, params["shape"][:2])


_GRIDS: dict[tuple[int, int], np.ndarray] = {}


def _grid(height: int, width: int) -> np.ndarray:
    """albumentations' `np.stack(np.meshgrid(np.arange(width), np.arange(height)))`, kept per size."""
    key = (height, width)
    if key not in _GRIDS:
        if len(_GRIDS) > 64:
            _GRIDS.clear()
        grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)))
        grid.flags.writeable = False
        _GRIDS[key] = grid
    return _GRIDS[key]


class ElasticTransform(A.ElasticTransform):
    """The coordinate grid is built once per image size; the image is remapped with one OpenCV
    call on the map albumentations' `remap` would build."""

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        dx, dy = fgeometric.generate_displacement_fields(
            (height, width), self.alpha, self.sigma, same_dxdy=self.same_dxdy,
            kernel_size=(17, 17) if self.approximate else (0, 0), random_generator=self.random_generator,
            noise_distribution=self.noise_distribution)
        maps = _grid(height, width) + np.stack([dx, dy])
        map_x, map_y = maps[0].astype(np.float32), maps[1].astype(np.float32)
        return {"map_x": map_x, "map_y": map_y, "map_xy": np.stack([map_x, map_y], axis=-1)}

    def apply(self, img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, **params: Any) -> np.ndarray:
        map_xy = params.get("map_xy")
        if map_xy is None or (img.ndim == 3 and img.shape[2] > 4):
            return super().apply(img, map_x, map_y, **params)
        out = cv2.remap(img, map_xy, None, interpolation=self.interpolation, borderMode=self.border_mode,
                        borderValue=self.fill)
        if img.ndim == 3 and out.ndim == 2:
            out = out[:, :, None]
        return out


# --------------------------------------------------------------------------------------------
# Pixel drop-ins: GaussNoise, ColorJitter
# --------------------------------------------------------------------------------------------


class GaussNoise(A.GaussNoise):
    unrecorded = frozenset({"noise_map"})

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"] if "image" in data else data["images"][0]
        if image.dtype != np.uint8 or not self.per_channel or self.noise_scale_factor != 1:
            return super().get_params_dependent_on_data(params, data)
        sigma = self.py_random.uniform(*self.std_range)
        mean = self.py_random.uniform(*self.mean_range)
        cv2.setRNGSeed(int(self.random_generator.integers(0, 2**16)))  # as albumentations' generate_noise
        channels = image.shape[2] if image.ndim == 3 else 1
        noise = np.empty(image.shape, dtype=np.float32)
        cv2.randn(noise, mean * np.ones(channels, dtype=np.float32), sigma * np.ones(channels, dtype=np.float32))
        noise *= 255  # float32 times an integer: the stock map's `.astype(np.float32) * max_value`
        return {"noise_map": noise, "std": sigma}  # the drawn std recorded (the stock map is too big to)

    def apply(self, img: np.ndarray, noise_map: np.ndarray, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or noise_map.dtype != np.float32 or noise_map.shape != img.shape:
            return super().apply(img, noise_map, **params)
        # albucore's add truncates the noise towards zero for uint8 images, adds in float32, clips
        # and truncates: on whole numbers OpenCV's saturating conversion gives the same bytes
        # in place when the map is an array of its own (drawn for this call, not recorded; truncating
        # twice changes nothing, should a second image of the same call come), not a broadcast view
        own = noise_map.flags.writeable and noise_map.base is None
        noise = np.trunc(noise_map, out=noise_map if own else None)
        return cv2.add(img, noise, dtype=cv2.CV_8U).reshape(img.shape)


def _contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """`adjust_contrast_torchvision` for uint8 images."""
    if factor == 1:
        return img
    grey = img if img.ndim == 2 or img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    mean = cv2.sumElems(grey)[0] / grey.size
    if factor == 0:
        return np.full_like(img, int(mean + 0.5), dtype=img.dtype)
    return multiply_add(img, factor, mean * (1 - factor), inplace=False).reshape(img.shape)


class ColorJitter(A.ColorJitter):
    def apply(self, img: np.ndarray, brightness: float, contrast: float, saturation: float, hue: float,
              order: list[int], **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or not (img.ndim == 2 or img.shape[2] in (1, 3)):
            return super().apply(img, brightness, contrast, saturation, hue, order, **params)
        steps = (fpixel.adjust_brightness_torchvision, _contrast, fpixel.adjust_saturation_torchvision,
                 fpixel.adjust_hue_torchvision)
        factors = (brightness, contrast, saturation, hue)
        for i in order:
            img = steps[i](img, factors[i])
        return img


# --------------------------------------------------------------------------------------------
# The classes the op builders get
# --------------------------------------------------------------------------------------------

DROP_INS: dict[str, type] = {"Affine": Affine, "ColorJitter": ColorJitter, "ElasticTransform": ElasticTransform,
                             "GaussNoise": GaussNoise, "Rotate": Rotate}


class _WithDropIns:
    """albumentations' namespace with the drop-ins in place of their stock classes."""

    def __getattr__(self, name: str) -> Any:
        return DROP_INS.get(name) or getattr(A, name)


_FAST = _WithDropIns()


def transforms(stock: bool = False) -> Any:
    """Where op builders take their transform classes from: albumentations with the drop-ins of
    this module in place of the stock classes, or albumentations' own when `stock` (the
    benchmark's reference loop and the equality tests)."""
    return A if stock else _FAST


# --------------------------------------------------------------------------------------------
# Compose, and the direct driver for transforms on an image alone
# --------------------------------------------------------------------------------------------


def _check_boxes(data: np.ndarray, shape: Any) -> None:
    if data.size and not (data[:, :4].min() >= 0 and data[:, :4].max() <= 1
                          and (data[:, 2] > data[:, 0]).all() and (data[:, 3] > data[:, 1]).all()):
        check_bboxes(data)  # (a NaN fails every comparison above: checked there too)


class Compose(A.Compose):
    """`A.Compose` that re-filters boxes and points only after a transform that was applied, and
    validates boxes with a quick test first.

    albumentations clips and filters boxes (and points) after every transform of a Compose,
    applied or not; after one that did not run the data is unchanged and the filter (clip to the
    image, drop below area/visibility) changes nothing a second time, so skipping it gives the
    same output for less. Its box check (before and after the transforms) runs six numpy
    `isclose`-based passes even when every coordinate lies in [0, 1] and every box has x_max > x_min
    and y_max > y_min, which the clipping makes the rule: that case is tested first with four
    cheap reductions, anything else goes to albumentations' own check (same errors). Every other
    step is albumentations' own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "bboxes" in self.processors:
            self.processors["bboxes"].check = _check_boxes

    def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> dict[str, Any]:
        if args or not self.main_compose or self.strict or not isinstance(force_apply, bool):
            return super().__call__(*args, force_apply=force_apply, **data)
        if self.save_applied_params:
            data["applied_transforms"] = []
        if not (force_apply or self.py_random.random() < self.p):
            return data
        self.preprocess(data)
        for t in self.transforms:
            data = t(**data)
            self._track_transform_params(t, data)
            if not isinstance(t, BasicTransform) or t.params:  # ran (a nested compose: assume so)
                data = self.check_data_post_transform(data)
        return self.postprocess(data)


Plan = list[tuple[Any, str, "Plan | None"]]


def plan(transforms: list) -> Plan:
    """(transform, its class name, the plan of its children if it is a sequence, else None)."""
    return [(t, type(t).__name__, plan(t.transforms) if isinstance(t, BaseCompose) else None) for t in transforms]


def leaves(steps: Plan) -> list:
    """The transforms of a plan, the children of a sequence in its place."""
    return [leaf for t, _, children in steps for leaf in (leaves(children) if children is not None else [t])]


def is_image_only(transform: Any) -> bool:
    """True for a transform that changes pixels only (it cannot move a box)."""
    return isinstance(transform, A.ImageOnlyTransform)


def run_direct(steps: Plan, data: dict[str, Any], applied: list[tuple[str, dict]]) -> None:
    """Run transforms on `data["image"]` as `A.Compose` / `A.Sequential` would: the same draws
    from the same generators, in the same order, and the same `apply` calls; what each applied
    transform drew is appended to `applied` as (class name, parameters)."""
    for t, name, children in steps:
        if children is not None:  # A.Sequential (a crop of a given size): one draw, then every child
            if t.py_random.random() < t.p:
                run_direct(children, data, applied)
            continue
        p = t.p  # BasicTransform.should_apply, inlined
        if p <= 0.0 or (p < 1.0 and t.py_random.random() >= p):
            continue
        params = t.update_transform_params(t.get_params(), data)
        params.update(t.get_params_dependent_on_data(params=params, data=data))
        data["image"] = np.ascontiguousarray(t.apply(data["image"], **params))
        applied.append((name, params))
