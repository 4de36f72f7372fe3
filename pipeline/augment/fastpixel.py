"""The pixel drop-ins under their former module name: they live in `pipeline.augment.albu`.

Importing this module imports albumentations, as importing `pipeline.augment.albu` does; the
worker start-up of the offline stage imports it for that.
"""

from __future__ import annotations

from pipeline.augment.albu import ColorJitter, GaussNoise

__all__ = ["ColorJitter", "GaussNoise"]
