"""`pipeline relabel DATASET --from REVIEWED --out NEW`: reviewed labels merged back as a new
version of the dataset (see pipeline/labeling/relabel.py)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import overwrite_option


@click.command("relabel")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--from", "reviewed", required=True, type=click.Path(path_type=Path), metavar="REVIEWED",
              help="The reviewed labels: a Label Studio JSON/JSON-MIN export, a labelme folder, a CVAT 1.1 XML "
                   "(or its folder), or an edits file (.jsonl).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="The new dataset's folder.")
@click.option("--format", "fmt", type=click.Choice(["auto", "labelstudio", "labelme", "cvat", "edits"]),
              default="auto", show_default=True, help="Format of REVIEWED; auto: .jsonl is an edits file, "
                                                      "anything else is detected as `pipeline import` does.")
@click.option("--images", type=click.Path(path_type=Path), default=None,
              help="Where the reviewed file's images are (default: beside it); e.g. the `pipeline prelabel` "
                   "folder when a Label Studio export was saved elsewhere.")
@click.option("--add-classes", is_flag=True, help="Accept classes the dataset does not have (added to its class "
                                                  "list) instead of refusing them.")
@overwrite_option
def relabel(dataset_path: Path, reviewed: Path, out: Path, fmt: str, images: Path | None, add_classes: bool,
            overwrite: bool) -> None:
    """Write a new version of DATASET with the reviewed labels of REVIEWED.

    Items are matched to samples by sample id: a Label Studio task by its `data.sample_id` (our
    exports and `pipeline prelabel` write it), a labelme file by its path without `.json`, a CVAT
    image by its name without the extension; an id that is not in DATASET is tried without a
    leading train/val/test folder, then by its file name where exactly one sample has it. An item
    matching no sample, an edit naming an unknown id, and a class DATASET does not have (unless
    --add-classes) are errors. A reviewed item holding no label (a task nobody annotated) leaves
    its sample as it is. DATASET itself is never modified: every changed label records its old
    value, new value, source and time in the sample (`meta.relabel`) and in the lineage.

    \b
    Examples:
      pipeline relabel datasets/mnist --from review/export.json --images review --out datasets/mnist-v2
      pipeline relabel datasets/photos --from photos-labelme/ --out datasets/photos-v2
      pipeline relabel datasets/mnist --from edits.jsonl --out datasets/mnist-v2
    """
    from pipeline.core import ui
    from pipeline.labeling.relabel import relabel as run

    report, review = run(dataset_path, reviewed, out, fmt=fmt, images=images, overwrite=overwrite,
                         add_classes=add_classes)
    rows: list[tuple[str, object]] = [
        ("reviewed", f"{review.items:,} items" + (f" ({review.by_name:,} matched by file name)" if review.by_name
                                                  else "")),
    ]
    if review.not_reviewed:
        rows.append(("not reviewed", f"{review.not_reviewed:,} (no label in the review: kept as they were)"))
    rows += [
        ("changed", f"{report.changed:,} samples"),
        ("removed", f"{report.removed:,} samples"),
        ("unchanged", f"{report.unchanged:,} samples (the review kept their labels)"),
        ("unmatched", "0"),
    ]
    if report.added_classes:
        rows.append(("classes added", ", ".join(report.added_classes)))
    rows.append(("output", f"{out} ({report.samples:,} samples)"))
    ui.summary(f"relabel {dataset_path}", rows)
