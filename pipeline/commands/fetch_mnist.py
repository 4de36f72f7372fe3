"""`pipeline fetch mnist`: the real MNIST (torchvision's download) or the embedded 5,000-image subset."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import overwrite_option


@click.command("mnist")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@overwrite_option
@click.option("--embedded", is_flag=True,
              help="Use the 5,000-image subset shipped in datasets/embedded (offline; train 4,000 / test 1,000).")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL",
              help="Base URL to download the MNIST files from (repeatable, tried in order). "
                   "Default: $PIPELINE_MNIST_MIRRORS (comma-separated), else torchvision's mirrors.")
@click.option("--raw", "raw_dir", type=click.Path(path_type=Path),
              help="Folder for the downloaded .gz files (kept, verified, reused). Default: .downloads/mnist beside --out.")
def mnist(out: Path, embedded: bool, mirrors: tuple[str, ...], raw_dir: Path | None, overwrite: bool) -> None:
    """Fetch MNIST as a canonical dataset: 28x28 PNGs, labels 0..9, the official split.

    Without --embedded the four IDX files (train 60,000 + test 10,000) are downloaded by
    torchvision and checked against its md5 checksums; files already downloaded and verified are
    not downloaded again. With --embedded nothing is downloaded.

    \b
    Examples:
      pipeline fetch mnist --embedded --out datasets/mnist-embedded
      pipeline fetch mnist --out datasets/mnist
      pipeline fetch mnist --out datasets/mnist --mirror https://ossci-datasets.s3.amazonaws.com/mnist/
    """
    from pipeline import fetch
    from pipeline.core import ui

    dataset, report = fetch.fetch_mnist(out, embedded=embedded, mirrors=mirrors, raw_dir=raw_dir, overwrite=overwrite)
    rows: list[tuple[str, object]] = [("source", report.source)]
    rows.append(("samples", f"{len(dataset.samples)} ("
                 + ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items(), key=lambda kv: kv[0] != "train"))
                 + ")"))
    rows.append(("classes", ", ".join(dataset.classes)))
    if report.raw_dir is not None:
        rows.append(("downloaded", ", ".join(report.downloaded) or "nothing (all files already verified)"))
        rows.append(("raw files", str(report.raw_dir)))
    rows.append(("output", str(out)))
    ui.summary(f"fetched MNIST: {len(dataset.samples)} samples", rows)
