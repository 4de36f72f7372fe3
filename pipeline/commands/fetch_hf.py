"""`pipeline fetch hf`: a Hugging Face dataset repository into a canonical dataset."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import max_pixels_option, overwrite_option, report_import
from pipeline.core import ui
from pipeline.formats.base import ON_ERROR


@click.command("hf")
@click.argument("repo")
@click.option("--revision", help="Branch, tag or commit [default: main]; recorded as the resolved commit hash.")
@click.option("--include", "include", multiple=True, metavar="GLOB",
              help="Only files matching this glob, e.g. 'data/train-*.parquet' (repeatable).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@overwrite_option
@click.option("--raw", type=click.Path(path_type=Path), help="Folder for the raw download [default: OUT-raw].")
@click.option("--no-import", is_flag=True, help="Only download (and verify); do not write a dataset.")
@click.option("--on-error", type=click.Choice(ON_ERROR), default="skip", show_default=True,
              help="A bad image or row: report it and import the rest, or stop.")
@max_pixels_option
def hf(repo, revision, include, out, overwrite, raw, no_import, on_error) -> None:
    """Download dataset REPO from the Hugging Face Hub and import it.

    Reads parquet files with an image column and a ClassLabel (names from the parquet metadata
    or the README's dataset_info), imagefolder repos (class folders, or metadata.jsonl/csv with
    file_name) and the labelling formats. The endpoint is HF_ENDPOINT; private and gated repos
    use the token huggingface_hub finds (HF_TOKEN or `hf auth login`).

    \b
    Examples:
      pipeline fetch hf ylecun/mnist --out datasets/mnist-hf
      pipeline fetch hf user/digits --revision v1.0 --include 'data/train-*' --out datasets/digits
    """
    from pipeline import fetch

    done = fetch.fetch_hf(repo, out, overwrite=overwrite, revision=revision, include=include, raw=raw, on_error=on_error,
                          do_import=not no_import)
    got = done.download.report
    rows: list[tuple[str, object]] = [("repository", repo), ("commit", got.commit), ("files", len(got.files)),
                                      ("raw", str(done.download.raw))]
    if done.imported is not None:
        report_import(done.imported, rows, out)
    ui.summary(f"fetched {repo}@{got.commit[:12]}", rows)
