"""Run every benchmark and write the results: `python -m benchmarks.run` (what `make bench` calls).

Discovers `benchmarks/bench_*.py` (sorted), calls each module's `run(quick: bool) -> list[dict]`
and collects the rows::

    {"name": str, "ours": float, "reference": float | None, "ratio": float | None,
     "unit": str, "target": str, "note": str}

`ratio` is ours / reference, both measured in the same run. Writes
`benchmarks/results/results.json` and `benchmarks/results/results.md` and prints the table.

Environment: `BENCH=quick` (default, minutes) or `BENCH=full`; `BENCH_ONLY=train,augment` runs only
the named modules. A benchmark that fails is reported as a failed row; the others still run.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KEYS = ("name", "ours", "reference", "ratio", "unit", "target", "note")


def discover(only: set[str] | None = None) -> list[str]:
    """Module names `benchmarks.bench_<area>`, sorted; `only` filters by area."""
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if only:
        names = [n for n in names if n.removeprefix("bench_") in only]
    return [f"benchmarks.{n}" for n in names]


def cuda_device() -> str | None:
    """The CUDA device the benchmarks can use, named with its memory (None without one): the
    training and augmentation benchmarks add rows on it when present."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return f"{props.name}, {props.total_memory / 2**30:.0f} GiB ({torch.cuda.device_count()} device(s))"


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:,.3g}" if abs(value) < 10 else f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.1f}"
        return f"{value:.3g}"
    return str(value)


def markdown(results: dict) -> str:
    lines = [
        f"# Benchmark results ({results['mode']})",
        "",
        f"{results['time']} · {results['machine']['cpus']} CPUs · Python {results['machine']['python']} · "
        f"torch {results['machine']['torch']} · "
        + (f"CUDA: {results['machine']['cuda']}" if results["machine"].get("cuda") else "no CUDA device (CPU only)"),
        "",
        "| benchmark | measure | ours | reference | ratio | unit | target | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bench in results["benchmarks"]:
        for row in bench["rows"]:
            ratio = f"{row['ratio']:.2f}x" if isinstance(row.get("ratio"), (int, float)) else "—"
            note = str(row.get("note", "")).replace("|", "\\|")
            lines.append(f"| {bench['module'].removeprefix('benchmarks.bench_')} | {row['name']} | {_fmt(row['ours'])} | "
                         f"{_fmt(row['reference'])} | {ratio} | {row['unit']} | {row['target']} | {note} |")
    lines.append("")
    return "\n".join(lines)


def _check(row: dict, module: str) -> dict:
    missing = [k for k in KEYS if k not in row]
    if missing:
        raise ValueError(f"{module}: a result row lacks {missing}")
    return {k: row[k] for k in KEYS}


def main() -> int:
    mode = os.environ.get("BENCH", "quick").strip().lower()
    if mode not in ("quick", "full"):
        print(f"error: BENCH={mode!r}: expected quick or full", file=sys.stderr)
        return 2
    only = {x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()} or None
    import torch

    results = {
        "mode": mode,
        "time": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "platform": platform.platform(), "cuda": cuda_device()},
        "benchmarks": [],
    }
    cuda = results["machine"]["cuda"]
    print(f"CUDA: {cuda}" if cuda else "no CUDA device: CPU only", file=sys.stderr, flush=True)
    failed = 0
    for module_name in discover(only):
        print(f"running {module_name} ({mode}) ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
            rows = [_check(r, module_name) for r in module.run(mode == "quick")]
            error = None
        except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
            traceback.print_exc()
            rows, error = [], f"{type(exc).__name__}: {exc}"
            failed += 1
        entry = {"module": module_name, "seconds": time.perf_counter() - start, "rows": rows, "error": error}
        if error:
            entry["rows"] = [{"name": "FAILED", "ours": None, "reference": None, "ratio": None, "unit": "",
                              "target": "", "note": error}]
        results["benchmarks"].append(entry)
        print(f"  done in {entry['seconds']:.0f} s", file=sys.stderr, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    previous = RESULTS / "results.json"
    if only and previous.is_file():
        # A partial run (BENCH_ONLY) keeps the other modules' last results of the same mode.
        try:
            old = json.loads(previous.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if old.get("mode") == mode:
            ran = {b["module"] for b in results["benchmarks"]}
            kept = [b for b in old.get("benchmarks", []) if b["module"] not in ran]
            results["benchmarks"] = sorted(kept + results["benchmarks"], key=lambda b: b["module"])
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = markdown(results)
    (RESULTS / "results.md").write_text(text, encoding="utf-8")
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
