"""Drop-in subclasses of albumentations' `GaussNoise` and `ColorJitter` that cost less per call on
8-bit images, with the same draws and the same pixels.

`GaussNoise` fills a float64 noise map with OpenCV's normal generator, converts it to float32,
scales it, converts the image to float32, adds, clips and converts back: five full-size passes
besides the draw. OpenCV computes each normal value in double precision before storing it in the
destination's type, so drawing straight into float32 stores the same numbers; the noise is
truncated as albucore truncates it, and added with OpenCV's saturating addition (exact on whole
numbers), one pass instead of four.

`ColorJitter`'s contrast step takes the mean of the grey image with numpy (a float64 pass over a
full-size copy); the sum of a uint8 image is an integer, exact in OpenCV's `sumElems` as in numpy's
pairwise float64 sum, so dividing it by the pixel count gives numpy's mean to the last bit.

Anything else (float images, noise shared across channels or generated at reduced resolution)
goes to the stock methods. tests/augment/test_fastpixel.py holds both to the stock transforms.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pipeline.augment.albu import load

A = load()
from albucore import multiply_add  # noqa: E402
from albumentations.augmentations.pixel import functional as fpixel  # noqa: E402


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
