"""Scaling: `stats`, `check`, `split`, `export` and the tensor-cache build on 100k, 1M and 10M samples.

Synthetic classification datasets (MNIST-like lines: id, a 28x28 PNG, its sha256, a digit label,
the provenance) whose samples share a small pool of 256 image files, so the images take no room
and the work measured is the metadata's. samples.jsonl and dataset.json are written directly
(about 1.5 s of CPU a million lines); the 10M one (2.2 GB) is kept under the cache folder
(``$PIPELINE_CACHE_DIR/bench-scale``, see `tensor_cache.cache_root`) and reused, each run working on
hard links of it (split replaces files by renaming, so the kept copy never changes).

Each stage runs as its own process, as a user runs it (``pipeline stats DATASET`` …; the cache
build, which has no command of its own, as ``python -c`` calling `load_or_build` on
`open_dataset`), and is measured from outside: wall seconds, and peak resident memory from the
kernel's accounting of that one child, started from a small launcher (see `measure`). The order is a user's: stats, check, split
(``--val 0.1 --test 0.1``, assigning every sample), export, cache build.

The reference, timed in the same run at 100k samples only (the in-memory path takes minutes at
1M), is the same stage on `load_dataset`'s in-memory dataset, called from ``python -c`` (stats,
check, split and the cache build; export always streams). Below about 50k samples the in-memory
path is the faster one (DuckDB and the file check cost a fixed second or so).
Export is ``--format webdataset`` (tar shards of 10,000 samples through the same streamed
`export_dataset`: about 3.5 kB of disk a sample, three tar members of at least 1 kB each). A stage
that writes (export, cache build) runs at a size only if the disk has room for what it took a
sample at the size before, times the samples, with 2 GB to spare; else its row says "not run:
needs N GB, M GB free" (10M samples of shards take about 35 GB). What a stage wrote is removed
once measured, and each size's folder after its last stage.

Targets (issue 17) at 1M samples: stats <= 2 s, check <= 15 s, split <= 5 s; at 10M every stage
under 1 GB peak memory. `BENCH=quick`: 100k and 1M; `BENCH=full`: 100k, 1M and 10M. The table,
with the load average before each size, is also written to ``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POOL = 256  # distinct image files under all the samples
CLASSES = [str(d) for d in range(10)]
TARGET_SECONDS = {("stats", 1_000_000): 2.0, ("check", 1_000_000): 15.0, ("split", 1_000_000): 5.0}
MEMORY_LIMIT_MB = 1024.0
SIZES = {"quick": [100_000, 1_000_000], "full": [100_000, 1_000_000, 10_000_000]}
HERE = Path(__file__).resolve().parent


def make_dataset(root: Path, n: int, pool: int = POOL, seed: int = 0) -> Path:
    """A synthetic classification dataset of `n` samples over `pool` random 28x28 PNGs: lines
    written as `dumps_sample` renders them, in id order, and a dataset.json recording their hash."""
    import numpy as np
    from PIL import Image

    from pipeline.core.dataset import DATASET_JSON, SAMPLES_JSONL, DatasetInfo
    from pipeline.core.dataset.writer import _info_bytes, lineage_entry

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shas = []
    for k in range(pool):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(28, 28), dtype=np.uint8)).save(buf, format="PNG")
        (root / "images" / f"pool-{k:05d}.png").write_bytes(buf.getvalue())
        shas.append(hashlib.sha256(buf.getvalue()).hexdigest())
    digest = hashlib.sha256()
    tmp = root / f".{SAMPLES_JSONL}.tmp"
    middles = [f'","image":"images/pool-{k:05d}.png","width":28,"height":28,"sha256":"{shas[k]}","split":null,'
               f'"label":"{k % 10}","source":{{"file":"synthetic","index":' for k in range(pool)]
    with open(tmp, "wb") as fh:
        for start in range(0, n, 65536):
            # the pool's files spread over the ids: sample i shows file (i * 7919) % pool
            data = "".join([f'{{"id":"s{i:08d}{middles[(i * 7919) % pool]}{i}}}}}\n'
                            for i in range(start, min(n, start + 65536))]).encode()
            digest.update(data)
            fh.write(data)
    os.replace(tmp, root / SAMPLES_JSONL)
    info = DatasetInfo(task="classification", classes=CLASSES, samples_sha256=digest.hexdigest(),
                       lineage=[lineage_entry("bench", {"samples": n, "pool": pool, "seed": seed})])
    (root / DATASET_JSON).write_bytes(_info_bytes(info))
    return root


def kept_dataset(n: int) -> Path:
    """The generated dataset of `n` samples under the cache folder, made once."""
    from pipeline.tensor_cache import cache_root

    root = cache_root() / "bench-scale" / f"{n}"
    if not (root / "dataset.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        make_dataset(root.with_name(f".{n}.tmp"), n)
        os.rename(root.with_name(f".{n}.tmp"), root)
    return root


def linked_copy(src: Path, dest: Path) -> Path:
    """`src` as hard links at `dest` (the stages replace files by renaming: `src` stays as it is)."""
    shutil.copytree(src, dest, copy_function=os.link)
    return dest


# A child's peak memory is measured from a small launcher process: Linux keeps a process's peak
# across exec, so a child forked straight from this (large) benchmark process would report at
# least this process's size. The launcher is small when it forks, so its children's peak is theirs.
_LAUNCHER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[2:]).returncode; "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(code)")


def measure(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run `argv` as a child: its wall seconds, its peak resident memory in MB, and its output."""
    out = tempfile.TemporaryFile()
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as peak:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, peak.name, *argv], stdout=out,
                              stderr=subprocess.STDOUT, env=env)
        seconds = time.perf_counter() - start
        kib = peak.read().strip()
    out.seek(0)
    text = out.read().decode("utf-8", "replace")
    if proc.returncode != 0 or not kib:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({proc.returncode}): {text[-2000:]}")
    return seconds, int(kib) / 1024.0, text


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *args]


_CACHE_BUILD = ("import sys; from pathlib import Path; from pipeline.core.dataset import {reader}; "
                "from pipeline.tensor_cache import load_or_build; "
                "load_or_build({reader}(sys.argv[1]), root=Path(sys.argv[2]))")
_IN_MEMORY = {
    "stats": "from pipeline.stats import compute_stats; compute_stats(load_dataset(sys.argv[1]))",
    "check": "from pipeline.check import check_dataset; check_dataset(load_dataset(sys.argv[1]))",
    "split": ("from pipeline.split import split_in_place; "
              "split_in_place(load_dataset(sys.argv[1]), val=0.1, test=0.1, redo=True)"),
}


def stages(root: Path, work: Path) -> list[tuple[str, list[str], Path | None]]:
    """(stage, argv, the folder it writes or None) in a user's order."""
    return [
        ("stats", _cli("stats", str(root)), None),
        ("check", _cli("check", str(root)), None),
        ("split", _cli("split", str(root), "--val", "0.1", "--test", "0.1"), None),
        ("export webdataset", _cli("export", str(root), "--format", "webdataset", "--out", str(work / "export")),
         work / "export"),
        ("cache build", [sys.executable, "-c", _CACHE_BUILD.format(reader="open_dataset"), str(root),
                         str(work / "cache")], work / "cache"),
    ]


def disk_use(path: Path) -> int:
    """Bytes the files under `path` take on the disk."""
    return sum(os.lstat(os.path.join(top, name)).st_blocks * 512
               for top, _, names in os.walk(path) for name in names)


def room_for(need: int, where: Path) -> str | None:
    """None when the disk at `where` has room for `need` more bytes with some to spare (2 GB, or a
    tenth of `need` if more), else why the stage is not run."""
    free = shutil.disk_usage(where).free
    if need + max(2 << 30, need // 10) <= free:
        return None
    return f"not run: needs {need / 1e9:.1f} GB, {free / 1e9:.1f} GB free"


def reference(root: Path, work: Path) -> dict[str, tuple[float, float]]:
    """The in-memory path (`load_dataset`) of each stage on a copy of `root`: seconds and MB."""
    out = {}
    copy = linked_copy(root, work / "reference")
    for stage, code in _IN_MEMORY.items():
        out[stage] = measure([sys.executable, "-c", "import sys; from pipeline.core.dataset import load_dataset; "
                              + code, str(copy)])[:2]
    out["cache build"] = measure([sys.executable, "-c", _CACHE_BUILD.format(reader="load_dataset"), str(copy),
                                  str(work / "reference-cache")])[:2]
    return out


def table(rows: list[dict], load: str = "") -> str:
    """The scaling table, markdown: one line per stage, seconds and MB per size (a stage not run
    for want of disk space says so below the table)."""
    sizes = sorted({r["samples"] for r in rows})
    names = list(dict.fromkeys(r["stage"] for r in rows))
    head = "| stage | " + " | ".join(f"{_size(n)} s | {_size(n)} MB" for n in sizes) + " |"
    lines = ["# Scaling (bench_scale)", "", head, "|---|" + "---|---|" * len(sizes)]
    notes = []
    for name in names:
        cells = []
        for n in sizes:
            hit = [r for r in rows if r["stage"] == name and r["samples"] == n]
            if hit and hit[0].get("skipped"):
                cells += ["not run", "—"]
                notes.append(f"- {name} at {_size(n)}: {hit[0]['skipped']}")
            else:
                cells += [f"{hit[0]['seconds']:.2f}", f"{hit[0]['mb']:.0f}"] if hit else ["—", "—"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *notes]
    if load:
        lines += ["", f"Load average (1 min) before each size: {load}."]
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def run(quick: bool) -> list[dict]:
    sizes = SIZES["quick" if quick else "full"]
    measured: list[dict] = []
    rows: list[dict] = []
    per_sample: dict[str, float] = {}  # disk bytes a sample of the last size took, by stage
    loads = []
    base = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        for n in sizes:
            loads.append(f"{_size(n)} {os.getloadavg()[0]:.2f}")
            work = base / f"{n}"
            work.mkdir()
            if n >= 10_000_000:  # (generated once, kept)
                root = linked_copy(kept_dataset(n), work / "dataset")
            else:
                root = make_dataset(work / "dataset", n)
            ref = reference(root, work) if n == sizes[0] else {}
            for stage, argv, output in stages(root, work):
                skipped = room_for(int(per_sample[stage] * n), work) if stage in per_sample else None
                if skipped:
                    measured.append({"stage": stage, "samples": n, "skipped": skipped})
                    rows.append({"name": f"{stage} {_size(n)} wall", "ours": None, "reference": None, "ratio": None,
                                 "unit": "s", "target": "", "note": skipped})
                    continue
                seconds, mb, _ = measure(argv)
                if output is not None:
                    per_sample[stage] = disk_use(output) / n
                    shutil.rmtree(output, ignore_errors=True)  # (room for the next stage)
                measured.append({"stage": stage, "samples": n, "seconds": seconds, "mb": mb})
                base_s, base_mb = ref.get(stage, (None, None))
                target = TARGET_SECONDS.get((stage.split()[0], n))
                rows.append({"name": f"{stage} {_size(n)} wall", "ours": seconds, "reference": base_s,
                             "ratio": seconds / base_s if base_s else None, "unit": "s",
                             "target": f"<= {target:g} s" if target else "",
                             "note": "subprocess; reference: the in-memory path (load_dataset)" if base_s else
                             "subprocess"})
                rows.append({"name": f"{stage} {_size(n)} peak memory", "ours": mb, "reference": base_mb,
                             "ratio": mb / base_mb if base_mb else None, "unit": "MB",
                             "target": f"< {MEMORY_LIMIT_MB:g} MB" if n >= 10_000_000 else "",
                             "note": "peak RSS of the child (ru_maxrss, measured from a small launcher)"})
            shutil.rmtree(work, ignore_errors=True)  # (a 10M run leaves 2 GB of samples.jsonl copies)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = table(measured, ", ".join(loads))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "scale.md").write_text(text, encoding="utf-8")
    print(text)
    return rows


if __name__ == "__main__":
    print(json.dumps(run(quick=os.environ.get("BENCH", "quick") != "full"), indent=2))
