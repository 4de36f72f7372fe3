"""`pipeline augment DATASET --recipe R --copies N --out DIR`: a dataset version with augmented copies."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import engine_options, max_pixels_option, overwrite_option


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--recipe", "recipe", required=True, type=click.Path(path_type=Path),
              help="Recipe YAML (see configs/augment/).")
@click.option("--copies", default=1, show_default=True, type=int, help="Augmented copies per sample.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@overwrite_option
@click.option("--splits", default="train", show_default=True,
              help="Comma-separated splits to augment (train, val, test, or all); the others are copied as they are. "
                   "Without a train split, train means the samples without a split (as `pipeline train`).")
@click.option("--seed", default=0, show_default=True, type=int, help="Run seed; the same seed gives the same bytes.")
@click.option("--workers", type=int,
              help="Processes augmenting (the one writing the output counts as one; default 1); with --engine ray, "
                   "Ray workers (default: one per CPU Ray has). The output does not depend on it.")
@click.option("--pack", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Store augmented copies (and their originals up to 16 KiB) in image packs (images/packs/*.zip) "
                   "instead of one file each; auto packs images up to 1024x1024 pixels, where creating a file costs "
                   "a large share of augmenting.")
@engine_options
@max_pixels_option
def augment(dataset: Path, recipe: Path, copies: int, out: Path, overwrite: bool, splits: str, seed: int,
            workers: int | None, pack: str, engine: str, address: str | None) -> None:
    """Write DATASET plus N augmented copies of each sample in the chosen splits to --out.

    Every copy records the recipe name and hash, the parameters each op drew, its seed and its
    parent ids. An interrupted run resumes where it stopped when started again with the same
    arguments. Every stage reads packed images; `pipeline export` writes them out as files.

    DATASET may also be an ImageFolder tree (<class>/<image>), imported once into the cache
    and re-imported only when its files change.

    With --engine ray the copies are made by Ray workers (a local Ray, or the cluster at --address;
    see docs/ray.md) and written here: the same bytes as without it.

    \b
    Examples:
      pipeline augment datasets/mnist-embedded --recipe configs/augment/digits.yaml --copies 2 \\
          --out datasets/mnist-aug --workers 2
      pipeline augment datasets/voc --recipe configs/augment/detection.yaml --out datasets/voc-aug \\
          --engine ray --address 10.0.0.5:6379
    """
    from pipeline.engines import make_engine

    runner = make_engine(engine, address, workers if engine == "ray" else None)
    workers = 1 if workers is None or engine == "ray" else workers
    if workers > 1:  # the workers' fork server imports its modules while this process imports its own
        from pipeline.augment.server import start_early

        start_early()
    from pipeline.augment.stage import run_augment
    from pipeline.core import ui
    from pipeline.train import dataset_folder

    figures = run_augment(dataset_folder(dataset), recipe, out, overwrite=overwrite, copies=copies,
                          splits=[s.strip() for s in splits.split(",") if s.strip()], seed=seed, workers=workers,
                          pack=pack, engine=runner)
    if figures["unsplit"]:
        ui.info(f"no `train` split: augmenting the {figures['unsplit']} samples without a split, as `pipeline train` "
                "trains on them (run `pipeline split` first to hold some out)")
    rows = [
        ("recipe", f"{figures['recipe']} ({figures['recipe_sha256'][:12]})"),
        ("originals", figures["samples"]),
        ("augmented", figures["augmented"]),
    ]
    if figures["augmented"]:
        where = []
        if figures["packed"]:
            beside = f" (with {figures['originals_packed']} of their originals)" if figures["originals_packed"] else ""
            where.append(f"{figures['packed']} in {figures['packs']} pack(s) under images/packs/{beside}")
        if figures["files"]:
            where.append(f"{figures['files']} as files under images/augmented/")
        rows.append(("stored", "; ".join(where)))
    if figures["resumed"]:
        rows.append(("resumed", f"{figures['resumed']} samples already done by an earlier run"))
    if not runner.is_local:
        rows.append(("engine", runner.describe()))
    rows.append(("output", str(out)))
    ui.summary("augment: done", rows)
