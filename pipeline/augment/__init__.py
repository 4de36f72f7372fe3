"""Augmentation: YAML recipes, single-sample ops on albumentations, our multi-sample ops
(SamplePairing, Mixup, CutMix, Cutout, Mosaic), the offline `augment` stage, the online hook used
by `pipeline train --augment`, and recipe previews.

Heavy imports (albumentations, cv2, torch) happen in the submodules that need them.
"""
