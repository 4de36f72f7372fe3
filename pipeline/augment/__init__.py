"""Augmentation: the ops (`ops/`, one module per op declaring its registry entry), YAML recipes,
single-sample ops on albumentations (everything leaning on its internals in `albu`), our
multi-sample ops (SamplePairing, Mixup, CutMix, Cutout, Mosaic), the offline `augment` stage, the
online hook used by `pipeline train --augment`, and recipe previews.

Heavy imports (albumentations, cv2, torch) happen in the submodules that need them.
"""
