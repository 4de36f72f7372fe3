"""`pipeline split DATASET`: assign train/val/test in place, stratified and leak-free (see pipeline/split.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("split")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--val", type=float, default=0.1, show_default=True,
              help="Fraction for validation (of the whole dataset; of train when carving, see above).")
@click.option("--test", type=float, default=0.0, show_default=True,
              help="Fraction for test (kept as is when the dataset already has a test split).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the assignment.")
@click.option("--redo", is_flag=True, help="Reassign every sample, ignoring existing splits.")
def split(dataset_path: Path, val: float, test: float, seed: int, redo: bool) -> None:
    """Assign train/val/test splits to DATASET, in place.

    DATASET may be an ImageFolder tree (<class>/<image>): it is imported once into the cache
    (re-imported when its files change) and the splits are kept in that import, where `train`,
    `augment` and the other stages given the same tree find them. The tree itself is not touched.

    Stratified by class (a detection image counts as its most frequent object class); images
    with identical content always land in the same split, so nothing leaks between train and
    test. Existing splits are kept unless --redo: unsplit samples are assigned, and when every
    sample has a split but a requested split has none (MNIST's train/test with --val 0.1), that
    fraction of train is carved out for it, leaving test untouched.

    samples.jsonl is streamed and rewritten line by line (a temporary file renamed into place):
    ten million samples take under 1 GB of memory.

    \b
    Examples:
      pipeline split datasets/mnist-embedded --val 0.1 --seed 0
      pipeline split datasets/photos --val 0.1 --test 0.1 --seed 1
      pipeline split datasets/photos --val 0.2 --test 0.2 --redo
    """
    from pipeline.core import ui
    from pipeline.core.dataset import read_info
    from pipeline.split import split_folder
    from pipeline.train import dataset_folder

    folder = dataset_folder(dataset_path)  # an ImageFolder tree: its cached import, which keeps the splits
    report = split_folder(folder, val=val, test=test, seed=seed, redo=redo)  # streamed: any size in bounded memory
    classes = read_info(folder).classes
    rows: list[tuple[str, object]] = []
    order = ["train", "val", "test", "unsplit"]
    width = len(str(max(sum(c.values()) for c in report.counts.values())))
    for name in sorted(report.counts, key=lambda n: order.index(n) if n in order else len(order)):
        per_class = report.counts[name]
        total = sum(per_class.values())
        shown = sorted(per_class.items(), key=lambda kv: _class_pos(kv[0], classes))
        detail = ", ".join(f"{c}: {n}" for c, n in shown[:12])
        if len(shown) > 12:
            detail += f", ... ({len(shown)} classes)"
        rows.append((name, f"{total:>{width}}  ({detail})"))
    rows.append(("changed", f"{report.changed} samples ({report.mode})" if report.changed
                 else "nothing (splits kept; --redo reassigns)"))
    if report.groups_with_duplicates:
        rows.append(("identical images", f"{report.groups_with_duplicates} groups, each kept in one split"))
    if report.leaks:
        ui.warn(f"{report.leaks} groups of identical images sit in different kept splits; "
                "re-run with --redo to put each group in one split")
    where = str(dataset_path) if folder == dataset_path else f"{folder} (the cached import of the tree {dataset_path})"
    rows.append(("output", f"{where} (updated in place)" if report.changed else where))
    ui.summary(f"split {sum(sum(c.values()) for c in report.counts.values())} samples", rows)


def _class_pos(name: str, classes: list[str]) -> tuple[int, str]:
    return (classes.index(name) if name in classes else len(classes), name)
