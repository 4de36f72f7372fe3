"""Pictures people would rather look at: samples with their labels drawn, and contact sheets.

`draw_sample` draws boxes, polygons, polylines, keypoints and class names on an image;
`contact_sheet` lays captioned tiles out on a grid; `reconstruction_sheet` puts an autoencoder's outputs
under their originals; `confusion_image` draws a confusion matrix quickly. All are pure PIL and never
modify inputs.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.core.dataset import Obj, Sample


def class_color(index: int) -> tuple[int, int, int]:
    """A distinct, saturated colour per class index (golden-ratio hue steps)."""
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _label_text(sample: Sample) -> str | None:
    if sample.soft_label:
        top = sorted(sample.soft_label.items(), key=lambda kv: -kv[1])[:2]
        return " ".join(f"{k}:{v:.2f}" for k, v in top)
    return sample.label


def draw_sample(
    image: Image.Image,
    sample: Sample | None = None,
    classes: Sequence[str] = (),
    *,
    objects: Sequence[Obj] | None = None,
    size: int | None = 256,
    caption: str | None = None,
) -> Image.Image:
    """A copy of `image` scaled to fit `size` (longest side), with the sample's labels drawn
    (16-bit grey scaled to 8 bits by its range, not clipped)."""
    from pipeline.core.images import to_8bit

    img = to_8bit(image).convert("RGB")
    w, h = img.size
    scale = 1.0
    if size:
        scale = size / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                         Image.NEAREST if scale >= 2 else Image.BILINEAR)
    index = {c: i for i, c in enumerate(classes)}
    objs = list(objects if objects is not None else ((sample.objects or []) if sample else []))
    img = _draw_masks(img, objs, index, (h, w))
    draw = ImageDraw.Draw(img, "RGBA")
    font = _font(max(10, min(14, img.size[1] // 12)))
    width = max(2, round(min(img.size) / 128))
    for obj in objs:
        color = class_color(index.get(obj.label, len(index)))
        alpha = int(255 * (obj.weight if obj.weight is not None else 1.0))
        for ring in obj.polygon or []:
            pts = [(x * scale, y * scale) for x, y in ring]
            if len(pts) >= 3:
                draw.polygon(pts, fill=color + (60,), outline=color + (alpha,))
            elif len(pts) == 2:
                draw.line(pts, fill=color + (alpha,), width=width)
        if obj.polyline:
            pts = [(x * scale, y * scale) for x, y in obj.polyline]
            if len(pts) >= 2:
                draw.line(pts, fill=color + (alpha,), width=width + 1)
        for kp in obj.keypoints or []:
            if len(kp) > 2 and kp[2] == 0:
                continue
            x, y = kp[0] * scale, kp[1] * scale
            r = width + 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color + (alpha,), outline=(0, 0, 0, 255))
        anchor = None
        if obj.bbox is not None:
            x1, y1, x2, y2 = (v * scale for v in obj.bbox)
            if not (obj.polygon or obj.mask is not None):  # an outline or mask already shows the extent
                draw.rectangle((x1, y1, x2, y2), outline=color + (alpha,), width=width)
            anchor = (x1, y1)
        elif obj.polygon and obj.polygon[0]:
            anchor = (min(p[0] for p in obj.polygon[0]) * scale, min(p[1] for p in obj.polygon[0]) * scale)
        elif obj.keypoints:
            anchor = (obj.keypoints[0][0] * scale, obj.keypoints[0][1] * scale)
        elif obj.polyline:
            anchor = (obj.polyline[0][0] * scale, obj.polyline[0][1] * scale)
        if anchor is not None:
            text = obj.label + (f" {obj.weight:.2f}" if obj.weight is not None and obj.weight < 1 else "")
            tx, ty = anchor[0], max(0.0, anchor[1] - font.size - 2 if hasattr(font, "size") else anchor[1] - 12)
            box = draw.textbbox((tx, ty), text, font=font)
            draw.rectangle(box, fill=color + (200,))
            draw.text((tx, ty), text, fill=(0, 0, 0, 255), font=font)
    text = caption if caption is not None else (_label_text(sample) if sample else None)
    if text:
        box = draw.textbbox((2, 2), text, font=font)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0, 170))
        draw.text((2, 2), text, fill=(255, 255, 255, 255), font=font)
    return img


def _draw_masks(img: Image.Image, objs: Sequence[Obj], index: dict[str, int], size_hw: tuple[int, int]) -> Image.Image:
    """`img` with each object's mask blended in its class colour (masks whose size is wrong are skipped)."""
    masked = [o for o in objs if o.mask is not None and list(o.mask.get("size") or []) == list(size_hw)]
    if not masked:
        return img
    import numpy as np

    from pipeline.core.geometry import rle_decode

    base = img.convert("RGBA")
    for obj in masked:
        try:
            mask = rle_decode(obj.mask)
        except (ValueError, KeyError, TypeError):
            continue
        alpha = Image.fromarray(np.where(mask, 110, 0).astype(np.uint8), "L").resize(base.size, Image.NEAREST)
        layer = Image.new("RGBA", base.size, class_color(index.get(obj.label, len(index))) + (0,))
        layer.putalpha(alpha)
        base = Image.alpha_composite(base, layer)
    return base.convert("RGB")


def contact_sheet(
    tiles: Sequence[Image.Image],
    captions: Sequence[str | None] | None = None,
    *,
    cols: int | None = None,
    tile: int = 256,
    pad: int = 4,
    title: str | None = None,
    background: tuple[int, int, int] = (32, 32, 32),
) -> Image.Image:
    """Tiles (each scaled to fit `tile`) on a grid with optional captions under each and a title.

    Columns are `tile` wide; each row is as high as its tallest image, so landscape photos do not
    leave square gaps. Captions sit right under their image, cut to the tile width.
    """
    n = max(1, len(tiles))
    cols = cols or min(n, max(1, int(round(n ** 0.5 + 0.49))))
    font = _font(12)
    cap_h = 16 if captions and any(captions) else 0
    title_h = 22 if title else 0
    scaled: list[Image.Image] = []
    from pipeline.core.images import to_8bit

    for t in tiles:
        im = to_8bit(t).convert("RGB")
        s = tile / max(im.size)
        if s != 1:
            im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))),
                           Image.NEAREST if s >= 2 else Image.BILINEAR)
        scaled.append(im)
    row_h = [max(im.size[1] for im in scaled[r:r + cols]) for r in range(0, len(scaled), cols)] or [tile]
    width = cols * (tile + pad) + pad
    if title:
        width = max(width, int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=font)) + 2 * pad)
    sheet = Image.new("RGB", (width, title_h + sum(h + cap_h + pad for h in row_h) + pad), background)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 4), title, fill=(255, 255, 255), font=font)
    y0 = title_h + pad
    for r, h in enumerate(row_h):
        for c, im in enumerate(scaled[r * cols:(r + 1) * cols]):
            i = r * cols + c
            x0 = pad + c * (tile + pad)
            sheet.paste(im, (x0 + (tile - im.size[0]) // 2, y0 + (h - im.size[1]) // 2))
            if cap_h and captions and i < len(captions) and captions[i]:
                draw.text((x0, y0 + h + 2), _fit_text(draw, str(captions[i]), font, tile),
                          fill=(230, 230, 230), font=font)
        y0 += h + cap_h + pad
    return sheet


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """`text`, shortened from the left with an ellipsis so it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while len(text) > 1 and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


def choose_samples(
    samples: Sequence[Sample], *, n: int, label: str | None = None, split: str | None = None, seed: int = 0
) -> list[Sample]:
    """Up to `n` samples (of `split`, showing class `label`) drawn with a generator seeded by `seed`, in id order."""
    from pipeline.core.rng import rng_for

    pool = [s for s in samples if (split is None or s.split == split) and (label is None or label in s.labels())]
    if len(pool) <= n:
        return list(pool)
    picks = rng_for(seed, "preview", split, label).choice(len(pool), size=n, replace=False)
    return [pool[i] for i in sorted(int(i) for i in picks)]


def dataset_preview(
    dataset,
    *,
    n: int = 16,
    label: str | None = None,
    split: str | None = None,
    seed: int = 0,
    tile: int = 256,
) -> tuple[Image.Image, list[Sample]]:
    """A contact sheet of up to `n` samples of `dataset` with their labels drawn, and the samples shown."""
    from pipeline.core.errors import DataError

    chosen = choose_samples(dataset.samples, n=n, label=label, split=split, seed=seed)
    tiles: list[Image.Image] = []
    captions: list[str | None] = []
    for s in chosen:
        try:
            image = dataset.open_image(s)
        except (DataError, OSError) as err:
            from pipeline.core import ui

            ui.warn(str(err))  # e.g. an image over the pixel limit: the one-line reason, not only a red tile
            image = Image.new("RGB", (tile, tile), (90, 20, 20))
            ImageDraw.Draw(image).text((4, 4), f"unreadable:\\n{s.image}", fill=(255, 255, 255), font=_font(12))
            tiles.append(image)
            captions.append(f"{s.id} ({type(err).__name__})")
            continue
        tiles.append(draw_sample(image, s, dataset.classes, size=tile))
        captions.append(s.id + (f" [{s.split}]" if s.split and split is None else ""))
    name = Path(str(dataset.root)).name
    pool = len([s for s in dataset.samples if (split is None or s.split == split)
                and (label is None or label in s.labels())])
    title = f"{name}: {len(chosen)} of {pool} samples" + (f", split {split}" if split else "") + (
        f", class {label}" if label else "")
    return contact_sheet(tiles, captions, tile=tile, title=title), chosen


def array_tiles(images: np.ndarray) -> list[Image.Image]:
    """uint8 images (N, C, H, W) with 1 or 3 channels as PIL images."""
    tiles = []
    for arr in np.asarray(images, dtype=np.uint8):
        tiles.append(Image.fromarray(arr[0], mode="L") if arr.shape[0] == 1
                     else Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)), mode="RGB"))
    return tiles


def reconstruction_sheet(originals: np.ndarray, reconstructions: np.ndarray, *, title: str | None = None,
                         tile: int = 64) -> Image.Image:
    """Originals on the first row, each one's reconstruction under it (uint8 (N, C, H, W) arrays)."""
    n = len(originals)
    if len(reconstructions) != n:
        raise ValueError(f"{n} originals but {len(reconstructions)} reconstructions")
    tiles = array_tiles(originals) + array_tiles(reconstructions)
    return contact_sheet(tiles, cols=max(1, n), tile=tile, title=title)


def confusion_image(cm: np.ndarray, classes: Sequence[str], *, cell: int = 28) -> Image.Image:
    """A confusion matrix (rows true, columns predicted) as a small picture: each cell shaded by its
    share of the row, with its count; class names along the top and left. Pure PIL, a few milliseconds
    (it is drawn every epoch for TensorBoard; `pipeline validate` draws the full matplotlib figure)."""
    cm = np.asarray(cm, dtype=np.int64)
    k = len(classes)
    font = _font(10)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = int(max([probe.textlength(str(c)[:12], font=font) for c in classes] + [10])) + 8
    side = margin + k * cell + 2
    img = Image.new("RGB", (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    for i in range(k):
        draw.text((2, margin + i * cell + cell // 3), str(classes[i])[:12], fill=(0, 0, 0), font=font)
        draw.text((margin + i * cell + 2, 2), str(classes[i])[:4], fill=(0, 0, 0), font=font)
        for j in range(k):
            level = int(round(255 * (1.0 - share[i, j])))
            x0, y0 = margin + j * cell, margin + i * cell
            draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=(level, level, 255),
                           outline=(220, 220, 220))
            if cm[i, j] and cell >= 16:
                text = str(cm[i, j]) if cm[i, j] < 1000 else f"{cm[i, j] / 1000:.0f}k"
                draw.text((x0 + 3, y0 + cell // 3), text, fill=(255, 255, 255) if share[i, j] > 0.5 else (0, 0, 0),
                          font=font)
    return img
