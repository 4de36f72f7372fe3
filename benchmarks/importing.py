"""Shared measuring helpers for the import benchmarks (VOC, labelme, ImageFolder)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path


def import_files(fmt: str, src: Path, out: Path) -> int:
    """`pipeline import FMT SRC --out OUT` in-process, quiet; the number of samples (no bad files allowed)."""
    from pipeline.core import ui
    from pipeline.formats.ingest import import_dataset

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


def import_rows(what: str, n: int, target: float, wall: float, cpu: float, ref_wall: float | None,
                ref_cpu: float | None, ref_note: str, mem: tuple[int, float, int, float]) -> list[dict]:
    """The three rows every import benchmark reports: files/s (wall), files/s (CPU time only), and
    peak traced memory per file at two sizes. `mem` is (small n, bytes/file, large n, bytes/file)."""

    def rate(seconds: float | None) -> float | None:
        return n / seconds if seconds else None

    def row(name: str, ours: float, ref: float | None, note: str) -> dict:
        return {"name": name, "ours": round(ours, 1), "reference": round(ref, 1) if ref else None,
                "ratio": round(ours / ref, 3) if ref else None, "unit": "files/s",
                "target": f">= {target:.0f} files/s", "note": note}

    small, mem_small, large, mem_large = mem
    return [
        row(f"import {what}", rate(wall), rate(ref_wall), f"reference: {ref_note}"),
        row(f"import {what}, CPU time only", rate(cpu), rate(ref_cpu),
            "process CPU time: the same work without waits for other processes or the disk"),
        {"name": f"import {what.split(',')[0]}, peak traced memory per file ({small} vs {large} files)",
         "ours": round(mem_large / 1024, 2), "reference": round(mem_small / 1024, 2),
         "ratio": round(mem_large / mem_small, 3), "unit": "KiB/file",
         "target": "flat: ratio <= 1.2", "note": "ours at the larger size, reference at the smaller"},
    ]
