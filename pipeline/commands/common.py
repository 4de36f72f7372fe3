"""What commands share: the network options of fetch and crawl, the import part of their summary,
`--max-pixels` on every command that decodes images, and `--engine`/`--address` on the commands
whose per-sample work may run on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.core import ui

if TYPE_CHECKING:
    from pipeline.formats.tables import ImportOutcome
    from pipeline.sources.http import HttpOptions


def network_options(f):
    """Options shared by `fetch url` and `crawl`."""
    for opt in reversed([
        click.option("--allow-private", is_flag=True,
                     help="Allow loopback, private and link-local addresses (refused by default)."),
        click.option("--rate", type=float, default=0.5, show_default=True,
                     help="Minimum seconds between two requests to the same host."),
        click.option("--timeout", type=float, default=30.0, show_default=True,
                     help="Connect and read timeout in seconds (no byte for this long fails the attempt)."),
        click.option("--retries", type=click.IntRange(0, 20), default=5, show_default=True,
                     help="Retries on connection errors, 429 and 5xx (backoff doubles; Retry-After honoured)."),
        click.option("--max-size", default="4G", show_default=True,
                     help="Refuse any single response larger than this (K, M, G suffixes)."),
    ]):
        f = opt(f)
    return f


def overwrite_option(f):
    """`--overwrite`: replace an earlier output of the same kind at --out (see pipeline.core.outputs)."""
    return click.option("--overwrite", is_flag=True,
                        help="Replace the dataset an earlier run wrote at --out (never a folder of other files, "
                             "and never an input).")(f)


def engine_options(f):
    """`--engine local|ray` and `--address ADDR`: where the per-sample work runs (`pipeline.engines`);
    the command gets them as `engine` and `address`."""
    for opt in reversed([
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where the per-sample work runs: this machine, or Ray workers (pip install "
                          "'pipeline[ray]'; a local Ray, or the cluster at --address). The output is the same "
                          "bytes either way."),
        click.option("--address", metavar="ADDR",
                     help="With --engine ray: the Ray cluster to join (host:port of `ray start --head`, or "
                          "ray://host:10001); default: start a local Ray."),
    ]):
        f = opt(f)
    return f


def _apply_max_pixels(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from pipeline.core.errors import UsageError
    from pipeline.core.images import parse_max_pixels, set_max_pixels

    try:
        set_max_pixels(parse_max_pixels(value))
    except UsageError as err:
        raise click.BadParameter(err.message.split(": ", 1)[-1], ctx=ctx, param=param) from None
    return value


def max_pixels_option(f):
    """`--max-pixels N|none`: the one limit on an image's decoded size (`pipeline.core.images`), set
    for this command and its worker processes."""
    return click.option(
        "--max-pixels", default="89478485", show_default=True, metavar="N|none", expose_value=False,
        callback=_apply_max_pixels,
        help="Refuse images of more pixels (width x height) than this before decoding them (decompression "
             "bombs), as a bad file; 0 or none: no limit. The default is Pillow's.")(f)


def http_options(allow_private: bool, rate: float, timeout: float, retries: int, max_size: str,
                 **extra) -> HttpOptions:
    """The `network_options` values as the downloader's options (the connect timeout at most 30 s)."""
    from pipeline.sources.http import HttpOptions, parse_size

    return HttpOptions(connect_timeout=min(timeout, 30.0), read_timeout=timeout, retries=retries,
                       max_bytes=parse_size(max_size), rate=rate, allow_private=allow_private, **extra)


def report_import(outcome: ImportOutcome, rows: list[tuple[str, object]], out: Path) -> None:
    """Print an import's bad files and notes, and add its lines to the summary `rows`."""
    for err in outcome.problems[:20]:
        ui.warn(str(err))
    if len(outcome.problems) > 20:
        ui.warn(f"... and {len(outcome.problems) - 20} more bad files")
    for note in outcome.notes:
        ui.info(note)
    rows.append(("imported", f"{outcome.imported} samples ({outcome.kind})"))
    from pipeline.core.paths import REFUSALS

    for reason, n in sorted(outcome.skipped.items()):
        if reason in REFUSALS:  # links out of the download, FIFOs: never opened
            rows.append((f"skipped: {reason}", n))
    if outcome.problems:
        rows.append(("left out (bad files)", len(outcome.problems)))
    rows.append(("output", str(out)))
