"""`pipeline fetch url`: download files from URLs and import them into a canonical dataset."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.core import ui
from pipeline.core.errors import UsageError


def default_raw(out: Path) -> Path:
    """Where raw downloads go when --raw is not given: beside the dataset, `OUT-raw`."""
    out = Path(out)
    return out.with_name(out.name + "-raw")


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


def http_options(allow_private: bool, rate: float, timeout: float, retries: int, max_size: str, **extra):
    from pipeline.sources.http import HttpOptions, parse_size

    return HttpOptions(connect_timeout=min(timeout, 30.0), read_timeout=timeout, retries=retries,
                       max_bytes=parse_size(max_size), rate=rate, allow_private=allow_private, **extra)


@click.command("url")
@click.argument("urls", nargs=-1)
@click.option("--list", "list_file", type=click.Path(path_type=Path),
              help="Text file with one URL per line, optionally followed by sha256:HEX or md5:HEX.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@click.option("--raw", type=click.Path(path_type=Path), help="Folder for the raw downloads [default: OUT-raw].")
@click.option("--sha256", help="Expected sha256 of the (single) URL given on the command line.")
@click.option("--md5", help="Expected md5 of the (single) URL given on the command line.")
@click.option("--label", help="Class name for every downloaded image (loose images only).")
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Downloads running at the same time (the per-host rate still applies).")
@network_options
@click.option("--no-import", is_flag=True, help="Only download (and verify); do not write a dataset.")
@click.option("--on-error", type=click.Choice(["skip", "error"]), default="skip", show_default=True,
              help="A bad file during import: report it and import the rest, or stop.")
@click.pass_context
def url(ctx, urls, list_file, out, raw, sha256, md5, label, concurrency, allow_private, rate, timeout, retries,
        max_size, no_import, on_error) -> None:
    """Download files from URLs (resumable, verified) and import them.

    Archives (zip, tar, tar.gz/bz2/xz, gz) are extracted safely and their content detected
    (ImageFolder, VOC, YOLO, CreateML, labelme, COCO, pixel CSV, parquet); loose images become
    an unlabelled dataset (or one class with --label). A re-run downloads only what is missing
    and resumes partial files. Exit status 1 when any URL failed (all are listed in the summary).

    \b
    Examples:
      pipeline fetch url https://example.org/digits.zip --sha256 9f86d0... --out datasets/digits
      pipeline fetch url --list urls.txt --out datasets/web --label cat --rate 1
      pipeline fetch url https://example.org/a.png https://example.org/b.png --out datasets/ab --no-import
    """
    from pipeline.formats.ingest import import_any, import_images
    from pipeline.sources import url as source

    specs = [source.UrlSpec(u) for u in urls]
    if list_file:
        specs += source.parse_list(list_file)
    if not specs:
        raise UsageError("no URLs given", fix="pass URLs as arguments or --list FILE")
    for s in specs[: len(urls)]:
        from urllib.parse import urlsplit

        if urlsplit(s.url).scheme.lower() not in ("http", "https"):
            raise UsageError(f"{s.url}: not an http(s) URL")
    if sha256 or md5:
        if len(urls) != 1:
            raise UsageError("--sha256/--md5 apply to exactly one URL on the command line",
                             fix="put checksums next to each URL in a --list file")
        if sha256:
            specs[0].sha256 = source.parse_checksum(f"sha256:{sha256}", "--sha256")[0]
        if md5:
            specs[0].md5 = source.parse_checksum(f"md5:{md5}", "--md5")[1]
    raw = Path(raw) if raw else default_raw(out)
    options = http_options(allow_private, rate, timeout, retries, max_size)
    report = source.fetch_urls(specs, raw, options=options, concurrency=concurrency)

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

    if not no_import and report.done:
        kind = source.import_kind(report)
        files = [r.path for r in report.done if r.url not in report.duplicates]
        params = {"source": "url", "urls": [s.url for s in specs], "raw": str(raw)}
        inputs = {r.url: r.sha256 for r in report.done}
        if kind == "images":
            items = [(r.path, {"url": r.url, **({"final_url": r.final_url} if r.final_url not in ("", r.url) else {})})
                     for r in report.done if r.url not in report.duplicates]
            outcome = import_images(items, out, stage="fetch", params=params, inputs=inputs, label=label)
        elif kind == "archive" and len(files) == 1:
            (_archive, folder), = source.unpack(files, raw)
            outcome = import_any(folder, out, stage="fetch", params=params, inputs=inputs, on_error=on_error)
        elif kind == "data" and len(files) == 1:
            outcome = import_any(files[0].parent, out, stage="fetch", params=params, inputs=inputs,
                                 on_error=on_error)
        else:
            raise UsageError(
                f"downloaded {len(files)} files of different kinds ({kind}); not sure how to import them together",
                fix=f"they are in {raw}; import the right folder with `pipeline import auto`, or use --no-import")
        _report_import(outcome, rows, out)
    ui.summary(f"fetched {len(report.done)} of {len(specs)} URLs", rows)
    if report.failures:
        ctx.exit(1)


def _report_import(outcome, rows: list, out: Path) -> None:
    for err in outcome.problems[:20]:
        ui.warn(str(err))
    if len(outcome.problems) > 20:
        ui.warn(f"... and {len(outcome.problems) - 20} more bad files")
    for note in outcome.notes:
        ui.info(note)
    rows.append(("imported", f"{outcome.imported} samples ({outcome.kind})"))
    if outcome.problems:
        rows.append(("left out (bad files)", len(outcome.problems)))
    rows.append(("output", str(out)))
