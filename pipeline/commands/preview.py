"""`pipeline preview DATASET --out FILE.png`: a contact sheet of samples with their labels drawn."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option


@click.command("preview")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
@click.option("--n", "n", default=16, show_default=True, type=click.IntRange(1, 400), help="Number of samples.")
@click.option("--class", "label", help="Only samples that contain this class.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), help="Only samples of this split.")
@click.option("--seed", default=0, show_default=True, type=int, help="Which samples are drawn (same seed, same sheet).")
@click.option("--tile", default=256, show_default=True, type=click.IntRange(32, 1024), help="Tile size in pixels.")
@click.option("--recipe", type=click.Path(path_type=Path),
              help="Show an augmentation recipe's output on the samples instead (see `pipeline augment`).")
@max_pixels_option
def preview(dataset_path: Path, out: Path, n: int, label: str | None, split: str | None, seed: int, tile: int,
            recipe: Path | None) -> None:
    """Write a contact sheet of DATASET's samples with boxes, polygons, masks, keypoints, lines and
    class names drawn, so a person can eyeball the labels.

    DATASET may also be an ImageFolder tree (<class>/<image>), imported once into the cache
    and re-imported only when its files change.

    \b
    Examples:
      pipeline preview datasets/raccoon --out raccoon.png --n 12
      pipeline preview datasets/labelme --out person.png --class person --seed 1
      pipeline preview datasets/mnist-embedded --out aug.png --recipe configs/augment/digits.yaml

    --out never writes inside a dataset folder, and replaces only a sheet `pipeline preview` wrote
    (recognised by the PNG's Software text); any other file there is left alone with an error.
    """
    from pipeline.core import ui
    from pipeline.core.dataset import load_dataset
    from pipeline.core.errors import UsageError
    from pipeline.core.outputs import claim_file, mark_png
    from pipeline.core.paths import atomic_write_bytes
    from pipeline.train import dataset_folder

    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: expected a .png file name", fix="e.g. --out preview.png")
    claim_file(out, "preview", reads=[dataset_path])
    dataset = load_dataset(dataset_folder(dataset_path))  # an ImageFolder tree: its cached import
    if recipe is not None:
        try:
            from pipeline.augment.preview import render_recipe_preview
        except ImportError:
            raise UsageError("augmentation previews are not available in this installation",
                             fix="run `pipeline preview` without --recipe") from None
        render_recipe_preview(dataset, recipe, out, n=n, seed=seed)
        ui.summary(f"recipe preview of {recipe}", [("samples", n), ("output", str(out))])
        return
    if label is not None and label not in dataset.classes:
        raise UsageError(f"--class {label!r}: not a class of {dataset_path}",
                         fix=f"use one of: {', '.join(dataset.classes[:30])}")
    from pipeline.core.images import encode_png
    from pipeline.viz import dataset_preview

    sheet, shown = dataset_preview(dataset, n=n, label=label, split=split, seed=seed, tile=tile)
    if not shown:
        raise UsageError(f"{dataset_path}: no samples match" + (f" --split {split}" if split else "")
                         + (f" --class {label}" if label else ""), fix="drop or change the filters")
    atomic_write_bytes(out, mark_png(encode_png(sheet), "preview"))
    objects = sum(len(s.objects or []) for s in shown)
    ui.summary(f"preview of {len(shown)} samples", [("samples", len(shown)), ("objects drawn", objects),
                                                     ("size", f"{sheet.size[0]}x{sheet.size[1]}"), ("output", str(out))])
