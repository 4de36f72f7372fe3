"""The fetch stages: download from one source, then import what arrived, one call each.

`fetch_url`, `fetch_kaggle`, `fetch_hf` and `crawl` download through their source module
(`pipeline.sources.*.fetch`, which returns a `Download` with the lineage keys) and import the
result with the ingest API (`pipeline.formats.ingest`); `fetch_mnist` reads the MNIST files into a
dataset directly. The commands in `pipeline/commands/` parse options, call one of these and
print the summary.

`on_download` is called with the `Download` before anything is imported, so a command can show
what was downloaded (and what failed) even when the import then stops with an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeline.core import outputs
from pipeline.core.errors import UsageError
from pipeline.formats.ingest import import_any, import_images
from pipeline.sources.download import Download, default_raw

if TYPE_CHECKING:
    from pipeline.core.dataset import Dataset
    from pipeline.formats.tables import ImportOutcome
    from pipeline.sources.crawl import CrawlOptions, CrawlReport
    from pipeline.sources.hf import HfDownload
    from pipeline.sources.http import HttpOptions
    from pipeline.sources.kaggle import KaggleDownload
    from pipeline.sources.mnist import FetchReport as MnistReport
    from pipeline.sources.url import FetchReport, UrlSpec

R = TypeVar("R")
OnDownload = Callable[[Download[Any]], None]


@dataclass
class Fetched(Generic[R]):
    """A fetch stage's outcome: what was downloaded and, unless only downloading, what was imported."""

    download: Download[R]
    imported: ImportOutcome | None = None  # None with do_import=False or when nothing arrived


class NothingCollected(UsageError):
    """A crawl that collected no image, so there is nothing to import; `download` says what happened."""

    def __init__(self, download: Download[CrawlReport], start: str) -> None:
        super().__init__(f"{start}: no image could be collected", fix="see the failures above")
        self.download = download


def import_download(got: Download[Any], out: Path, *, on_error: str = "skip",
                    label: str | None = None, overwrite: bool = False) -> ImportOutcome:
    """Import what a download brought into a canonical dataset at `out`, with its lineage keys.

    Loose images become an image dataset (all labelled `label` when given); anything else is
    unpacked to a folder and imported by `ingest.import_any` (`on_error` for bad files). An
    earlier dataset at `out` is replaced only with `overwrite`.
    """
    keys = {"stage": got.stage, "params": got.params, "inputs": got.inputs, "overwrite": overwrite}
    if got.kind == "images":
        return import_images(got.images, out, label=label, **keys)
    return import_any(got.unpacked(), out, on_error=on_error, **keys)


def _finish(got: Download[R], out: Path, *, do_import: bool, on_download: OnDownload | None,
            on_error: str = "skip", label: str | None = None, overwrite: bool = False) -> Fetched[R]:
    if on_download is not None:
        on_download(got)
    if not do_import or got.kind == "none":
        return Fetched(got)
    return Fetched(got, import_download(got, out, on_error=on_error, label=label, overwrite=overwrite))


def _claim(out: Path, raw: Path, do_import: bool, overwrite: bool) -> None:
    """Refuse an --out the import could not write, and a --raw inside a dataset, before anything
    is downloaded."""
    outputs.check_download_dir(raw)
    if do_import:
        outputs.claim_dir(out, "dataset", overwrite=overwrite)


def fetch_url(specs: list[UrlSpec], out: Path, *, raw: Path | None = None, options: HttpOptions | None = None,
              concurrency: int = 4, label: str | None = None, on_error: str = "skip", do_import: bool = True,
              on_download: OnDownload | None = None, overwrite: bool = False) -> Fetched[FetchReport]:
    """Download URLs into `raw` (default `OUT-raw`) and import them: images, one archive or one data file."""
    from pipeline.sources import url

    _claim(out, Path(raw) if raw else default_raw(out), do_import, overwrite)
    got = url.fetch(specs, Path(raw) if raw else default_raw(out), options=options, concurrency=concurrency)
    return _finish(got, out, do_import=do_import, on_download=on_download, on_error=on_error, label=label,
                   overwrite=overwrite)


def fetch_kaggle(out: Path, *, dataset: str | None = None, competition: str | None = None,
                 version: int | None = None, file: str | None = None, raw: Path | None = None,
                 on_error: str = "skip", do_import: bool = True,
                 on_download: OnDownload | None = None, overwrite: bool = False) -> Fetched[KaggleDownload]:
    """Download a Kaggle dataset (or a competition's files) into `raw` and import it."""
    from pipeline.sources import kaggle

    _claim(out, Path(raw) if raw else default_raw(out), do_import, overwrite)
    got = kaggle.fetch(Path(raw) if raw else default_raw(out), dataset=dataset, competition=competition,
                       version=version, file=file)
    return _finish(got, out, do_import=do_import, on_download=on_download, on_error=on_error, overwrite=overwrite)


def fetch_hf(repo: str, out: Path, *, revision: str | None = None, include: Sequence[str] = (),
             raw: Path | None = None, on_error: str = "skip", do_import: bool = True,
             on_download: OnDownload | None = None, overwrite: bool = False) -> Fetched[HfDownload]:
    """Download Hugging Face dataset `repo` at `revision` into `raw` and import it."""
    from pipeline.sources import hf

    _claim(out, Path(raw) if raw else default_raw(out), do_import, overwrite)
    got = hf.fetch(repo, Path(raw) if raw else default_raw(out), revision=revision, include=list(include))
    return _finish(got, out, do_import=do_import, on_download=on_download, on_error=on_error, overwrite=overwrite)


def crawl(start: str, out: Path, *, options: CrawlOptions, http: HttpOptions, raw: Path | None = None,
          label: str | None = None, do_import: bool = True,
          on_download: OnDownload | None = None, overwrite: bool = False) -> Fetched[CrawlReport]:
    """Crawl from `start` into `raw` and import the images collected; `NothingCollected` when none was."""
    from pipeline.sources import crawl as source

    _claim(out, Path(raw) if raw else default_raw(out), do_import, overwrite)
    got = source.fetch(start, Path(raw) if raw else default_raw(out), options=options, http=http)
    if do_import and not got.images:
        if on_download is not None:
            on_download(got)
        raise NothingCollected(got, start)
    return _finish(got, out, do_import=do_import, on_download=on_download, label=label, overwrite=overwrite)


def fetch_mnist(out: Path, *, embedded: bool = False, mirrors: Sequence[str] = (),
                raw_dir: Path | None = None, overwrite: bool = False) -> tuple[Dataset, MnistReport]:
    """The embedded 5,000-image subset (offline), or the real MNIST downloaded by torchvision."""
    from pipeline.sources import mnist

    if embedded and (mirrors or raw_dir):
        raise UsageError("--embedded reads the bundled files; --mirror and --raw do not apply",
                         fix="drop --mirror/--raw, or drop --embedded to download the real MNIST")
    if embedded:
        return mnist.fetch_embedded(out, overwrite=overwrite)
    outputs.check_download_dir(raw_dir if raw_dir is not None else mnist.default_raw_dir(out))
    outputs.claim_dir(out, "dataset", overwrite=overwrite)
    return mnist.fetch_real(out, raw_dir=raw_dir, mirrors=mirrors, overwrite=overwrite)
