"""`pipeline fetch kaggle`: a Kaggle dataset or competition into a canonical dataset."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option, overwrite_option, report_import
from pipeline.core import ui
from pipeline.formats.base import ON_ERROR


@click.command("kaggle")
@click.argument("dataset", required=False, metavar="OWNER/DATASET")
@click.option("--competition", help="A competition's data instead of a dataset (accept its rules on the website first).")
@click.option("--version", type=click.IntRange(1), help="Dataset version [default: the current one, recorded].")
@click.option("--file", "file", help="Only this file of the dataset or competition.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@overwrite_option
@click.option("--raw", type=click.Path(path_type=Path), help="Folder for the raw download [default: OUT-raw].")
@click.option("--no-import", is_flag=True, help="Only download (and verify); do not write a dataset.")
@click.option("--on-error", type=click.Choice(ON_ERROR), default="skip", show_default=True,
              help="A bad image or row: report it and import the rest, or stop.")
@max_pixels_option
def kaggle(dataset, competition, version, file, out, overwrite, raw, no_import, on_error) -> None:
    """Download a Kaggle dataset (or --competition) and import it.

    Credentials: KAGGLE_API_TOKEN, ~/.kaggle/access_token, or kaggle.json (see docs/sources.md).
    Zip archives are extracted safely; pixel tables (label,pixel0..pixel783), image folders and
    the labelling formats are imported.

    \b
    Examples:
      pipeline fetch kaggle oddrationale/mnist-in-csv --out datasets/mnist-csv
      pipeline fetch kaggle --competition digit-recognizer --file train.csv --out datasets/digits
      pipeline fetch kaggle owner/photos --version 3 --out datasets/photos --no-import
    """
    from pipeline import fetch

    done = fetch.fetch_kaggle(out, overwrite=overwrite, dataset=dataset, competition=competition, version=version, file=file, raw=raw,
                              on_error=on_error, do_import=not no_import)
    got = done.download.report
    ref = dataset or f"competition {competition}"
    rows: list[tuple[str, object]] = [("source", ref)]
    if got.version is not None:
        rows.append(("version", got.version))
    rows += [("downloaded", f"{len(got.files) - got.present} files, {got.transferred} bytes"),
             ("already present", got.present), ("raw", str(done.download.raw))]
    if done.imported is not None:
        report_import(done.imported, rows, out)
    ui.summary(f"fetched {ref}", rows)
