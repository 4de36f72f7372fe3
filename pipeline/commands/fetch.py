"""`pipeline fetch SOURCE ...`: one subcommand per place data comes from (see pipeline/sources/)."""

from __future__ import annotations

import click

from pipeline.cli import LazyGroup

SOURCES = {
    "mnist": ("pipeline.commands.fetch_mnist:mnist", "The real MNIST (torchvision download) or the embedded 5k subset."),
    "kaggle": ("pipeline.commands.fetch_kaggle:kaggle", "A Kaggle dataset or competition, through the official client."),
    "hf": ("pipeline.commands.fetch_hf:hf", "A Hugging Face dataset repository (parquet or imagefolder)."),
    "url": ("pipeline.commands.fetch_url:url", "Files from URLs: resumable, verified, rate-limited."),
}


@click.group(cls=LazyGroup, lazy=SOURCES)
def fetch() -> None:
    """Download a dataset and write it as a canonical dataset.

    \b
    Example:
      pipeline fetch mnist --embedded --out datasets/mnist-embedded
    """
