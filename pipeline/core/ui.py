"""Terminal output: progress bars that step aside when output is not a terminal, and summaries."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import click

from pipeline.core.errors import printable

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             leave: bool = False, **kw: Any):
    """A tqdm bar on stderr, disabled when --quiet or when stderr is not a terminal."""
    from tqdm.auto import tqdm

    disable = _state["quiet"] or not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable,
                dynamic_ncols=True, file=sys.stderr, **kw)


def info(message: str) -> None:
    """A progress note on stderr (suppressed by --quiet)."""
    if not _state["quiet"]:
        click.echo(message, err=True)


def warn(message: str) -> None:
    """One warning line on stderr (control characters and undecodable file-name bytes escaped)."""
    click.echo(f"warning: {printable(str(message))}", err=True)


def library_warning_text(w: warnings.WarningMessage) -> str:
    """A library's warning as our text: its message on one line, without the library's file and line."""
    return " ".join(str(w.message).split())


@contextlib.contextmanager
def library_warnings() -> Iterator[list[str]]:
    """Collect the warnings libraries raise inside the block (Pillow's "Corrupt EXIF data", ...) as
    one-line texts, instead of letting Python print them with a library path. The caller reports them
    with the file they concern."""
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        try:
            yield caught
        finally:
            for w in records:
                if not issubclass(w.category, DeprecationWarning):
                    caught.append(library_warning_text(w))


def route_library_warnings() -> None:
    """Print any library warning not collected by `library_warnings` as our own one-line warning."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001 - Python's signature
        if not issubclass(category, DeprecationWarning):
            warn(" ".join(str(message).split()))

    warnings.showwarning = show


def summary(title: str, rows: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
    """The short closing summary every command prints: what it did and where the output went."""
    items = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    click.echo(title)
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        click.echo(f"  {key.ljust(width)}  {value}")
