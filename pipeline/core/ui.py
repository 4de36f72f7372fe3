"""Terminal output: progress bars that step aside when output is not a terminal, and summaries."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

import click

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
    click.echo(f"warning: {message}", err=True)


def summary(title: str, rows: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
    """The short closing summary every command prints: what it did and where the output went."""
    items = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    click.echo(title)
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        click.echo(f"  {key.ljust(width)}  {value}")
