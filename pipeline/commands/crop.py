"""`pipeline crop DATASET --out DIR`: every labelled object as a classification sample."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import engine_options, max_pixels_option, overwrite_option


@click.command("crop")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new classification dataset.")
@overwrite_option
@click.option("--pad", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Grow each box by this fraction of its width/height on every side.")
@click.option("--square", is_flag=True, help="Make crops square around the box centre (edges repeated past the image).")
@click.option("--min-size", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Skip objects whose box is narrower or lower than this many pixels.")
@click.option("--encode", type=click.Choice(["auto", "png"]), default="auto", show_default=True,
              help="auto: JPEG crops (quality 95) of JPEG photos, PNG of lossless images; png: PNG always.")
@engine_options
@max_pixels_option
def crop(dataset_path: Path, out: Path, overwrite: bool, pad: float, square: bool, min_size: float,
         encode: str, engine: str, address: str | None) -> None:
    """Turn every labelled object of DATASET into a classification sample.

    Each object with an area (its box, or the bounds of its polygon or mask) becomes one image
    labelled with the object's class, in the split of its source image. The new samples record
    where they came from (parent id, object index, box, crop). Train on them as on any
    classification dataset. Crops of JPEG photos are written as JPEG (quality 95), crops of
    lossless images as PNG (--encode png: PNG always). With --engine ray, Ray workers decode,
    crop and encode (docs/ray.md); the dataset is the same bytes.

    DATASET may also be an ImageFolder tree (<class>/<image>), imported once into the cache
    and re-imported only when its files change.

    \b
    Examples:
      pipeline crop datasets/digits-boxed --out datasets/digits-crops --pad 0.1 --square --min-size 8
      pipeline train datasets/digits-crops --out runs/digits-crops
    """
    from pipeline.core import ui
    from pipeline.core.dataset import load_dataset
    from pipeline.crop import crop_dataset
    from pipeline.engines import make_engine
    from pipeline.train import dataset_folder

    runner = make_engine(engine, address)
    dataset = load_dataset(dataset_folder(dataset_path))  # an ImageFolder tree: its cached import
    result, report = crop_dataset(
        dataset, out, overwrite=overwrite, pad=pad, square=square, min_size=min_size, encode=encode,
        progress=lambda items: ui.progress(items, total=len(items), desc="crop", unit="img"), engine=runner,
    )
    for problem in report.problems[:20]:
        ui.warn(problem)
    rows: list[tuple[str, object]] = [
        ("crops", f"{report.written} ("
         + ", ".join(f"{k} {v}" for k, v in sorted(report.per_split.items())) + ")"),
        ("classes", len(result.classes)),
    ]
    for reason, n in sorted(report.skipped.items()):
        rows.append((f"skipped: {reason}", n))
    if not runner.is_local:
        rows.append(("engine", runner.describe()))
    rows.append(("output", str(out)))
    ui.summary(f"cropped {report.written} objects from {dataset_path}", rows)
