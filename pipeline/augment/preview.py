"""Recipe previews: originals beside their augmented versions, labels drawn.

One group of tiles per sample: the original, then (for multi-sample ops) each partner as stored
in the dataset, then the result. The result is exactly what `pipeline augment` writes for
copy 1 with the same seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.augment.engine import Augmenter
from pipeline.augment.recipe import load_recipe
from pipeline.core.dataset import Dataset, Sample
from pipeline.core.errors import UsageError
from pipeline.core.outputs import mark_png
from pipeline.core.paths import atomic_write_bytes
from pipeline.core.rng import rng_for


def _pick(dataset: Dataset, n: int, seed: int) -> list[Sample]:
    pool = dataset.split("train") or dataset.samples
    if not pool:
        raise UsageError(f"{dataset.root}: the dataset has no samples to preview")
    rng = rng_for(seed, "preview", dataset.root.name)
    idx = sorted(int(i) for i in rng.choice(len(pool), size=min(n, len(pool)), replace=False))
    return [pool[i] for i in idx]


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image, mode="L" if image.ndim == 2 else "RGB")


def render_recipe_preview(dataset: Dataset, recipe_path: Path, out: Path, n: int = 8, seed: int = 0) -> Path:
    """Write a PNG contact sheet of `n` samples: original, partners (multi-sample ops), result."""
    from pipeline.viz import contact_sheet, draw_sample

    recipe = load_recipe(recipe_path)
    aug = Augmenter(dataset, recipe, seed)
    classes = dataset.classes
    rows: list[list[tuple[Image.Image, str]]] = []
    for sample in _pick(dataset, n, seed):
        base = aug.load(sample)
        result = aug.augment(sample, 1, base)
        row = [(draw_sample(dataset_image(dataset, sample), sample, classes, size=192), f"{sample.id}")]
        for pid in result.parents[1:]:
            parent = dataset_image(dataset, aug.by_id[pid])
            row.append((draw_sample(parent, aug.by_id[pid], classes, size=192), f"partner {pid}"))
        fake = aug.to_sample(sample, 1, result, image="preview.png", sha256="0" * 64)
        ops = "+".join(p["op"].split(".")[0] for p in result.item.params) or "(no op drawn)"
        row.append((draw_sample(_pil(result.item.image), fake, classes, size=192), ops))
        rows.append(row)
    width = max(len(r) for r in rows)
    per_line = max(1, int(round((len(rows) / width) ** 0.5)))  # several samples per line: a squarish sheet
    cols = width * per_line
    tiles, captions = [], []
    blank = Image.new("RGB", (8, 8), (32, 32, 32))
    for r in rows:
        for tile, caption in r[:-1]:
            tiles.append(tile)
            captions.append(caption)
        for _ in range(width - len(r)):
            tiles.append(blank)
            captions.append(None)
        tiles.append(r[-1][0])
        captions.append(r[-1][1])
    title = f"recipe {recipe.name} ({recipe.hash[:12]}), seed {seed}: original | partners | augmented"
    sheet = contact_sheet(tiles, captions, cols=cols, tile=192, title=title)
    out = Path(out)
    import io

    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(out, mark_png(buf.getvalue(), "preview"))
    return out


def dataset_image(dataset: Dataset, sample: Sample) -> Image.Image:
    return dataset.open_image(sample)
