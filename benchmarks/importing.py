"""Shared measuring helpers for the import benchmarks (VOC, labelme, ImageFolder)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path


def import_files(fmt: str, src: Path, out: Path) -> int:
    """`pipeline import FMT SRC --out OUT` in-process, quiet; the number of samples (no bad files allowed)."""
    from pipeline.commands.convert import import_dataset
    from pipeline.core import ui

    ui.set_quiet(True)
    dataset, report = import_dataset(fmt, src, out)
    assert not report.problems, report.problems[:3]
    return len(dataset.samples)


def timed(fn: Callable, *args) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, result


def peak_traced(fn: Callable, *args) -> int:
    """Peak bytes allocated by Python (tracemalloc) while `fn(*args)` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
