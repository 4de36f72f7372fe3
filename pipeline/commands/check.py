"""`pipeline check DATASET`: label and image checks, as a terminal table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option


@click.command("check")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Exit with status 1 when any error-level finding exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout instead of the table.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Also write the JSON report to this file.")
@click.option("--labels-only", is_flag=True, help="Skip reading image files (no missing/unreadable/duplicate checks "
              "beyond the recorded hashes).")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(1), help="Findings shown per check.")
@max_pixels_option
def check(dataset_path: Path, strict: bool, as_json: bool, out_file: Path | None, labels_only: bool,
          examples: int) -> None:
    """Check DATASET: missing or unreadable images, boxes outside the image or without area,
    degenerate polygons, duplicate images and duplicates across splits (leakage), rare and
    unused classes, images without labels, EXIF-rotated images, size mismatches.

    Each finding has a level: error, warning or info. With --strict the command exits with
    status 1 when any error-level finding exists (for CI).

    DATASET may also be an ImageFolder tree (<class>/<image>), imported once into the cache
    and re-imported only when its files change. samples.jsonl is streamed and each image file
    is read once, however many samples share it: memory grows with the findings, not the samples.

    \b
    Examples:
      pipeline check datasets/raccoon
      pipeline check datasets/raccoon --strict --json > check.json
      pipeline check datasets/raccoon --out reports/raccoon-check.json

    --out never writes inside a dataset folder, and replaces only a report `pipeline check` wrote
    (its "written_by" key); any other file there is left alone with an error.
    """
    from pipeline.check import ERROR, INFO, WARNING, check_dataset, render_table
    from pipeline.core import ui
    from pipeline.core.dataset import open_dataset
    from pipeline.core.outputs import claim_file
    from pipeline.core.paths import atomic_write_text
    from pipeline.train import dataset_folder

    if out_file is not None:
        claim_file(out_file, "check", reads=[dataset_path])
    dataset = open_dataset(dataset_folder(dataset_path))  # streamed; an ImageFolder tree: its cached import
    report = check_dataset(
        dataset, images=not labels_only,
        progress=lambda items: ui.progress(items, total=len(dataset.samples), desc="check", unit="img"),
    )
    if out_file is not None:
        written = {"written_by": "pipeline check", **report.to_json()}  # how a later --out knows its own file
        atomic_write_text(out_file, json.dumps(written, ensure_ascii=False, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_table(report, examples=examples))
        click.echo()
        rows = [("samples", report.samples), ("errors", report.count(ERROR)), ("warnings", report.count(WARNING)),
                ("notes", report.count(INFO))]
        if out_file is not None:
            rows.append(("report", str(out_file)))
        ui.summary(f"checked {dataset_path}", rows)
    if strict and report.has_errors:
        raise click.exceptions.Exit(1)
