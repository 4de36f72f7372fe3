"""Drop-in subclasses of albumentations' `Affine`, `Rotate` and `ElasticTransform` that cost less per call.

On small images (a 28x28 digit) these two transforms spend most of their time outside OpenCV:
each call multiplies six numpy 3x3 matrices, twice (image centre and box centre), and
`warp_affine` runs `np.allclose` against the identity before every warp. The subclasses here
draw exactly the same parameters from the same generators in the same order (albumentations'
own helpers do the drawing), build the same matrices with scalar arithmetic (equal to
albumentations' to 1e-12), test for the identity with the same tolerances on nine floats, and call
`cv2.warpAffine` with the arguments albumentations would pass. The drawn angle, shift and shear
are returned beside the matrix, so an augmented sample's record names them instead of the matrix. Boxes, keypoints and masks keep
albumentations' code paths (they read the matrices from the parameters). Anything outside the
fast path (more than 4 channels, `fit_output`, `crop_border`) goes to the stock method.
`ElasticTransform` keeps albumentations' displacement fields and builds its coordinate grid once
per image size.

tests/augment/test_fastgeom.py holds both to the stock transforms: same parameters, same pixels.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from pipeline.augment.albu import load

A = load()
from albumentations.augmentations.geometric import functional as fgeometric  # noqa: E402

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
