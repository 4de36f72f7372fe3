"""`pipeline stats DATASET`: counts per class and split, box sizes; optionally a PNG of them."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("stats")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--out", "out_png", type=click.Path(path_type=Path),
              help="Write a PNG: counts per class and split, box size histogram, box width vs height.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON on stdout instead of the table.")
def stats(dataset_path: Path, out_png: Path | None, as_json: bool) -> None:
    """Counts per class and split, objects per image and box sizes of DATASET.

    DATASET may also be an ImageFolder tree (<class>/<image>), imported once into the cache
    and re-imported only when its files change. samples.jsonl is streamed (plain files through
    DuckDB): ten million samples take under 1 GB of memory.

    \b
    Examples:
      pipeline stats datasets/raccoon
      pipeline stats datasets/raccoon --out raccoon-stats.png
      pipeline stats datasets/raccoon --json > stats.json

    --out never writes inside a dataset folder, and replaces only a plot `pipeline stats` wrote
    (recognised by the PNG's Software text); any other file there is left alone with an error.
    """
    from pipeline.core import ui
    from pipeline.core.errors import UsageError
    from pipeline.core.outputs import claim_file
    from pipeline.stats import plot_stats, public, render_table, stats_of
    from pipeline.train import dataset_folder

    if out_png is not None and out_png.suffix.lower() != ".png":
        raise UsageError(f"--out {out_png}: expected a .png file name", fix="e.g. --out stats.png")
    if out_png is not None:
        claim_file(out_png, "stats", reads=[dataset_path])
    result = stats_of(dataset_folder(dataset_path))  # streamed; an ImageFolder tree: its cached import
    if out_png is not None:
        plot_stats(result, out_png)
    if as_json:
        click.echo(json.dumps(public(result), ensure_ascii=False, indent=2))
        return
    click.echo(render_table(result))
    click.echo()
    rows = [("samples", result["samples"]), ("classes", len(result["classes"])), ("objects", result["objects"])]
    if out_png is not None:
        rows.append(("plot", str(out_png)))
    ui.summary(f"statistics of {dataset_path}", rows)
