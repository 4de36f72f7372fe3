"""`pipeline fetch url`: download files from URLs and import them into a canonical dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.commands.common import (
    http_options,
    max_pixels_option,
    network_options,
    overwrite_option,
    report_import,
)
from pipeline.core import ui
from pipeline.core.errors import NetworkError
from pipeline.formats.base import ON_ERROR

if TYPE_CHECKING:
    from pipeline.sources.url import FetchReport


@click.command("url")
@click.argument("urls", nargs=-1)
@click.option("--list", "list_file", type=click.Path(path_type=Path),
              help="Text file with one URL per line, optionally followed by sha256:HEX or md5:HEX.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@overwrite_option
@click.option("--raw", type=click.Path(path_type=Path), help="Folder for the raw downloads [default: OUT-raw].")
@click.option("--sha256", help="Expected sha256 of the (single) URL given on the command line.")
@click.option("--md5", help="Expected md5 of the (single) URL given on the command line.")
@click.option("--label", help="Class name for every downloaded image (loose images only).")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Downloads running at the same time (the per-host rate still applies).")
@network_options
@click.option("--no-import", is_flag=True, help="Only download (and verify); do not write a dataset.")
@click.option("--on-error", type=click.Choice(ON_ERROR), default="skip", show_default=True,
              help="A bad file during import: report it and import the rest, or stop.")
@max_pixels_option
@click.pass_context
def url(ctx, urls, list_file, out, overwrite, raw, sha256, md5, label, concurrency, allow_private, rate, timeout, retries,
        max_size, no_import, on_error) -> None:
    """Download files from URLs (resumable, verified) and import them.

    Archives (zip, tar, tar.gz/bz2/xz, gz) are extracted safely and their content detected
    (ImageFolder, VOC, YOLO, CreateML, labelme, COCO, CVAT XML, pixel CSV, parquet); loose images become
    an unlabelled dataset (or one class with --label). A re-run downloads only what is missing
    and resumes partial files. When a host could not be reached (refused, reset, timed out: a
    network error) the summary is followed by one error line and exit status 2; any other failed
    URL (an HTTP error, a checksum, refused by policy) gives exit status 1. All are listed in the
    summary.

    \b
    Examples:
      pipeline fetch url https://example.org/digits.zip --sha256 9f86d0... --out datasets/digits
      pipeline fetch url --list urls.txt --out datasets/web --label cat --rate 1
      pipeline fetch url https://example.org/a.png https://example.org/b.png --out datasets/ab --no-import
    """
    from pipeline import fetch
    from pipeline.sources import url as source

    specs = source.build_specs(urls, list_file, sha256=sha256, md5=md5)
    rows: list[tuple[str, object]] = []
    done = fetch.fetch_url(specs, out, overwrite=overwrite, raw=raw, options=http_options(allow_private, rate, timeout, retries, max_size),
                           concurrency=concurrency, label=label, on_error=on_error, do_import=not no_import,
                           on_download=lambda got: rows.extend(download_rows(got.report, got.raw)))
    if done.imported is not None:
        report_import(done.imported, rows, out)
    ui.summary(f"fetched {len(done.download.report.done)} of {len(specs)} URLs", rows)
    unreachable = done.download.report.unreachable()
    if unreachable:
        raise NetworkError(f"{len(unreachable)} of {len(specs)} URLs could not be reached (connection refused, reset or "
                           f"timed out; each is listed above); first: {unreachable[0][0]}",
                           fix="check your connection, then run the same command again to continue where it stopped")
    if done.download.report.failures:
        ctx.exit(1)


def download_rows(report: FetchReport, raw: Path) -> list[tuple[str, object]]:
    """Summary lines of a URL download (failures also printed as warnings, one per URL)."""
    from pipeline.sources import url as source

    rows: list[tuple[str, object]] = [
        ("downloaded", report.downloaded),
        ("already present", report.present),
        ("bytes transferred", report.transferred),
    ]
    resumed = sum(1 for r in report.done if r.resumed)
    restarted = sum(1 for r in report.done if r.restarted)
    if resumed:
        rows.append(("resumed", resumed))
    if restarted:
        rows.append(("restarted (Range ignored)", restarted))
    if report.duplicates:
        rows.append(("duplicates (same bytes)", len(report.duplicates)))
    rows += source.describe_failures(report)
    for u, _reason, message in report.failures[:20]:
        ui.warn(message if u in message else f"{u}: {message}")
    rows.append(("raw", str(raw)))
    return rows
