"""`pipeline fetch kaggle`: a Kaggle dataset or competition into a canonical dataset."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.core import ui


@click.command("kaggle")
@click.argument("dataset", required=False, metavar="OWNER/DATASET")
@click.option("--competition", help="A competition's data instead of a dataset (accept its rules on the website first).")
@click.option("--version", type=click.IntRange(1), help="Dataset version [default: the current one, recorded].")
@click.option("--file", "file", help="Only this file of the dataset or competition.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@click.option("--raw", type=click.Path(path_type=Path), help="Folder for the raw download [default: OUT-raw].")
@click.option("--no-import", is_flag=True, help="Only download (and verify); do not write a dataset.")
@click.option("--on-error", type=click.Choice(["skip", "error"]), default="skip", show_default=True,
              help="A bad image or row: report it and import the rest, or stop.")
def kaggle(dataset, competition, version, file, out, raw, no_import, on_error) -> None:
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
    from pipeline.commands.fetch_url import _report_import, default_raw
    from pipeline.formats.ingest import import_any
    from pipeline.sources import kaggle as source
    from pipeline.sources.archive import is_archive_name
    from pipeline.sources.url import unpack

    raw = Path(raw) if raw else default_raw(out)
    got = source.download(raw, dataset=dataset, competition=competition, version=version, file=file)
    ref = dataset or f"competition {competition}"
    rows: list[tuple[str, object]] = [("source", ref)]
    if got.version is not None:
        rows.append(("version", got.version))
    rows += [("downloaded", f"{len(got.files) - got.present} files, {got.transferred} bytes"),
             ("already present", got.present), ("raw", str(raw))]
    if not no_import:
        files = [raw / name for name in sorted(got.files)]
        params = {"source": "kaggle", "kind": got.kind, "ref": got.ref, "version": got.version, "file": file}
        inputs = {f"kaggle:{got.ref}" + (f"@{got.version}" if got.version else "") + f"/{name}": digest
                  for name, digest in sorted(got.files.items())}
        archives = [f for f in files if is_archive_name(f.name)]
        if archives:
            (_a, folder), = unpack(archives[:1], raw)
        else:
            folder = raw / ".import"
            folder.mkdir(exist_ok=True)
            for f in files:
                link = folder / f.name
                link.unlink(missing_ok=True)
                link.hardlink_to(f)
        outcome = import_any(folder, out, stage="fetch", params=params, inputs=inputs, on_error=on_error)
        _report_import(outcome, rows, out)
    ui.summary(f"fetched {ref}", rows)
