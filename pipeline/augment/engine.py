"""The engine of the offline `augment` stage: the `Augmenter` and how its copies are named and encoded.

`Augmenter.augment` turns (sample, copy) into an augmented item: the recipe's single-sample ops,
then each multi-sample op with partners from the same split, every draw from the generator seeded
with ``derive_seed(seed, "augment", sample id, copy)``, so a copy does not depend on the order of
work or on the number of processes. `Augmenter.to_sample` gives the copy's record (labels,
provenance and what was drawn); `encode` its bytes; `aug_id` and `aug_stem` its id and where it
is stored. The stage (`pipeline.augment.stage`), the worker processes (`pipeline.augment.runner`),
the preview and the tests all augment through this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment import multi
from pipeline.augment.recipe import Recipe
from pipeline.augment.single import Item, SingleOps, present_targets
from pipeline.core.dataset import IMAGES_DIR, Dataset, Obj, Sample
from pipeline.core.errors import DataError
from pipeline.core.images import decode_array, stored_png
from pipeline.core.paths import safe_stem
from pipeline.core.rng import SeededGenerator, derive_seed

AUG_SEP = "~aug"
PACK_MODES = ("auto", "always", "never")
PACK_AUTO_PIXELS = 1024 * 1024  # --pack auto: copies of images up to this area go into packs
ORIGINAL_PACK_MAX = 16 * 1024  # originals up to this size go into the pack with their copies, larger ones are linked
TINY_PNG_PIXELS = 32 * 32  # PNGs up to this area: stored, not deflated (see `encode`)
SMALL_PNG_PIXELS = 128 * 128  # PNGs up to this area: no row filters (faster and smaller on digits)


def aug_id(sample_id: str, copy: int) -> str:
    """The id of copy `copy` (1-based) of `sample_id`."""
    return f"{sample_id}{AUG_SEP}{copy}"


def encode(image: np.ndarray, ext: str) -> bytes:
    """PNG (lossless) or JPEG (quality 95) bytes; deterministic for the same pixels.

    PNGs of images up to 32x32 are stored without deflate compression (`stored_png`, ~5
    microseconds): compressing a 28x28 digit costs ~25 (zlib's set-up per stream), more than
    augmenting it, and saves ~470 of its 880 bytes. Up to 128x128: no row filters and run-length matching (faster and smaller on
    digit-like images than the defaults); larger: level 1.
    """
    import cv2

    if ext not in ("jpg", "jpeg") and image.shape[0] * image.shape[1] <= TINY_PNG_PIXELS:
        return stored_png(image)
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if ext in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        area = image.shape[0] * image.shape[1]
        if area <= SMALL_PNG_PIXELS:
            options = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE,
                       cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        else:
            options = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        ok, buf = cv2.imencode(".png", arr, options)
    if not ok:
        raise DataError("image", "could not be encoded", got=image.shape)
    return buf.tobytes()


def out_ext(sample: Sample) -> str:
    """JPEG copies of JPEG images, PNG for everything else."""
    name = sample.image.rpartition("/")[2]
    return "jpg" if name.rpartition(".")[2].lower() in ("jpg", "jpeg") and "." in name else "png"


def aug_stem(sample: Sample) -> str:
    """Where the copies of `sample` are stored (their member names when packed), up to the copy
    number: 256 shard folders by a hash of the id, so parallel workers rarely create files in the
    same folder (creations in one folder serialize)."""
    shard = hashlib.sha1(sample.id.encode("utf-8")).hexdigest()[:2]
    return f"{IMAGES_DIR}/augmented/{shard}/{safe_stem(sample.id)}{AUG_SEP}"


def packs_copies(sample: Sample, mode: str) -> bool:
    """Whether the copies of `sample` go into image packs under `--pack mode`."""
    return mode == "always" or (mode == "auto" and sample.width * sample.height <= PACK_AUTO_PIXELS)


def aug_images(sample: Sample, copies: int) -> list[tuple[str, str]]:
    """The id and the image path (the member name when packed) of each copy of `sample`."""
    stem, ext = aug_stem(sample), out_ext(sample)
    return [(aug_id(sample.id, c), f"{stem}{c}.{ext}") for c in range(1, copies + 1)]


@dataclass
class Result:
    """One augmented copy: the item, the ids it was made from (the sample first), its seed."""

    item: Item
    parents: list[str]
    seed: int


class Augmenter:
    """Augments samples of one dataset with one recipe, deterministically from (seed, id, copy)."""

    def __init__(self, dataset: Dataset, recipe: Recipe, seed: int = 0) -> None:
        self.dataset = dataset
        self.recipe = recipe
        self.seed = int(seed)
        self.classes = list(dataset.classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.by_id = {s.id: s for s in dataset.samples}
        has_label = any(s.label is not None or s.soft_label for s in dataset.samples)
        self.targets = present_targets([s.objects for s in dataset.samples], has_label)
        recipe.check_targets(self.targets, where=str(dataset.root))
        self.pools: dict[str | None, list[str]] = {}
        for s in dataset.samples:  # sorted by id already
            self.pools.setdefault(s.split, []).append(s.id)
        self._ops: dict[int, SingleOps] = {}
        self._rng = SeededGenerator()

    def single_ops(self, channels: int) -> SingleOps:
        """The recipe's single-sample ops for images of `channels` channels (built once)."""
        if channels not in self._ops:
            self._ops[channels] = SingleOps(self.recipe, channels, self.targets)
        return self._ops[channels]

    def load(self, sample: Sample, data: bytes | None = None) -> Item:
        """The sample's pixels and labels (`data`: its encoded image, when already read)."""
        where = _Where(self.dataset, sample)
        image = decode_array(self.dataset.read_image_bytes(sample) if data is None else data, where)
        if image.shape[0] != sample.height or image.shape[1] != sample.width:
            raise DataError(str(where), "image size differs from samples.jsonl",
                            expected=f"{sample.width}x{sample.height}", got=f"{image.shape[1]}x{image.shape[0]}",
                            fix="re-import the dataset")
        soft = None
        if sample.soft_label:
            soft = np.zeros(len(self.classes))
            for k, v in sample.soft_label.items():
                soft[self.index[k]] = v
            soft /= soft.sum()
        elif sample.label is not None:
            soft = np.zeros(len(self.classes))
            soft[self.index[sample.label]] = 1.0
        return Item(image, soft, [o.copy() for o in sample.objects] if sample.objects is not None else None)

    def apply_single(self, item: Item, rng: np.random.Generator) -> Item:
        """The recipe's single-sample ops applied to `item` with draws from `rng`."""
        return self.single_ops(K.channels_of(item.image))(item, rng)

    def augment(self, sample: Sample, copy: int, item: Item | None = None) -> Result:
        """Copy `copy` of `sample`: the single-sample ops, then each multi-sample op with its own
        probability and partners drawn from the sample's split by the same generator."""
        seed = derive_seed(self.seed, "augment", sample.id, copy)
        rng = self._rng.reset(seed)  # the same generator object, a fresh stream: valid until the next call
        base = item if item is not None else self.load(sample)
        out = self.apply_single(base, rng)
        parents = [sample.id]
        for op in self.recipe.multi:
            if float(rng.random()) >= op.p:
                continue
            need = multi.partners_needed(op)
            pool = self.pools.get(sample.split, [])
            others = [i for i in pool if i != sample.id] or pool
            ids = [others[int(j)] for j in rng.integers(0, len(others), size=need)] if need else []
            partners = [self.apply_single(self.load(self.by_id[i]), rng) for i in ids]
            out = multi.apply(op, out, partners, rng, self.recipe)
            parents += ids
        return Result(out, parents, seed)

    def to_sample(self, sample: Sample, copy: int, result: Result, image: str, sha256: str) -> Sample:
        """The canonical record of an augmented copy: labels, provenance and what was drawn."""
        item = result.item
        label, soft_label = sample.label, None
        if item.soft is not None:
            top = int(np.argmax(item.soft))
            label = self.classes[top]
            if item.soft.max() < 1.0 - 1e-9:
                soft_label = {self.classes[i]: round(float(v), 6) for i, v in enumerate(item.soft) if v > 0}
        return Sample(
            id=aug_id(sample.id, copy), image=image, width=item.width, height=item.height, sha256=sha256,
            split=sample.split, label=label, soft_label=soft_label,
            objects=_rounded(item.objects) if sample.objects is not None or item.objects else None,
            source={"stage": "augment", "parents": result.parents},
            meta={"augment": {"recipe": self.recipe.name, "recipe_sha256": self.recipe.hash, "seed": result.seed,
                              "copy": copy, "ops": item.params}},
        )


class _Where:
    """A sample's image location for messages, worked out only when a message needs it."""

    def __init__(self, dataset: Dataset, sample: Sample) -> None:
        self.dataset, self.sample = dataset, sample

    def __str__(self) -> str:
        return self.dataset.image_where(self.sample)

    __fspath__ = __str__


def _rounded(objects: list[Obj] | None) -> list[Obj] | None:
    """Coordinates to 1/1000 pixel: stable, short lines (clipping already kept them in the image)."""
    if objects is None:
        return None

    def pts(points: list[list[float]]) -> list[list[float]]:
        return [[round(float(v), 3) for v in p[:2]] + [int(v) for v in p[2:]] for p in points]

    out = []
    for o in objects:
        n = o.copy()
        if n.bbox is not None:
            n.bbox = [round(float(v), 3) for v in n.bbox]
        if n.polygon is not None:
            n.polygon = [pts(r) for r in n.polygon]
        if n.keypoints is not None:
            n.keypoints = pts(n.keypoints)
        if n.polyline is not None:
            n.polyline = pts(n.polyline)
        out.append(n)
    return out
