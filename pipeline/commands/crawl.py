"""`pipeline crawl`: collect images from web pages politely, with provenance, into a dataset."""

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

if TYPE_CHECKING:
    from pipeline.sources.crawl import CrawlReport


@click.command("crawl")
@click.argument("start_url", metavar="URL")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@overwrite_option
@click.option("--raw", type=click.Path(path_type=Path), help="Folder for the images and provenance [default: OUT-raw].")
@click.option("--depth", type=click.IntRange(0, 10), default=1, show_default=True,
              help="Links followed from the start page (0: the start page only).")
@click.option("--max-images", type=click.IntRange(1), default=100, show_default=True, help="Stop after this many images.")
@click.option("--same-host", is_flag=True, help="Only pages and images on the start URL's host.")
@click.option("--label", help="Class name for every image collected (otherwise unlabelled).")
@click.option("--deadline", type=float, default=30.0, show_default=True,
              help="Total seconds allowed per response (slow or endless servers are cut off).")
@network_options
@click.option("--no-import", is_flag=True, help="Only collect images and provenance; do not write a dataset.")
@max_pixels_option
@click.pass_context
def crawl(ctx, start_url, out, overwrite, raw, depth, max_images, same_host, label, deadline, allow_private, rate, timeout,
          retries, max_size, no_import) -> None:
    """Collect <img> images (srcset included) from URL and the pages it links to.

    Honours robots.txt (RFC 9309; an unreachable or failing robots.txt means disallow) and
    X-Robots-Tag / robots meta noai and noimageai. Hosts resolving to loopback, private or
    link-local addresses are refused on every redirect hop unless --allow-private. Each image
    records its URL, the page it was on and its alt text. Exit status 1 when anything failed.

    \b
    Examples:
      pipeline crawl https://example.org/gallery/ --out datasets/gallery --depth 1 --max-images 50 --same-host
      pipeline crawl https://example.org/cats.html --out datasets/cats --label cat --rate 2
    """
    from pipeline import fetch
    from pipeline.sources.crawl import CrawlOptions

    http = http_options(allow_private, rate, timeout, retries, max_size)
    options = CrawlOptions(depth=depth, max_images=max_images, same_host=same_host, deadline=deadline,
                           image_bytes=http.max_bytes or (50 << 20))
    rows: list[tuple[str, object]] = []
    try:
        done = fetch.crawl(start_url, out, overwrite=overwrite, options=options, http=http, raw=raw, label=label, do_import=not no_import,
                           on_download=lambda got: rows.extend(crawl_rows(got.report, got.raw)))
    except fetch.NothingCollected as exc:
        ui.summary(f"crawled {exc.download.report.pages} pages", rows)
        raise
    if done.imported is not None:
        report_import(done.imported, rows, out)
    ui.summary(f"crawled {done.download.report.pages} pages", rows)
    if done.download.report.failures:
        ctx.exit(1)


def crawl_rows(report: CrawlReport, raw: Path) -> list[tuple[str, object]]:
    """Summary lines of a crawl (its messages also printed as warnings, the first 20)."""
    rows: list[tuple[str, object]] = [("pages", report.pages), ("images", len(report.images))]
    for reason, n in sorted(report.skipped.items()):
        rows.append((f"skipped: {reason}", n))
    for reason, n in sorted(report.failures.items()):
        rows.append((f"failed: {reason}", n))
    for message in report.messages[:20]:
        ui.warn(message)
    rows.append(("raw", str(raw)))
    return rows
