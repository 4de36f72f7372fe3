"""`--engine ray` against the local engine: `crop` on kangaroo-sized photos with 2 Ray workers.

The dataset is `bench_crop`'s (textured 900x650 JPEG photos, 1-2 large boxes each): decoding a
photo is most of the work, the part Ray workers take over. Ours: `crop_dataset` on a local Ray of
2 workers (started once, before the rounds: its start is a row of its own); the reference, timed
in the same run, the local engine (this process alone). Rounds interleaved, the best of each kept.
Both write the same bytes (checked here too). Skipped, as a row saying so, without Ray.

No target: the figure to watch. Each command pays a fixed start (a local Ray's, when it starts
one, and each worker's: a process importing the stage), which dominates small jobs; the ratio
drops below 1 only where the per-sample work outweighs that, on more cores than this machine's
two (measured here, at a load average of 18-20 on 2 shared cores: 4.49 s against 0.56 s for
60 photos, quick; 7.79 s against 3.14 s for 180, full).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from pathlib import Path


def _crop(src: Path, out: Path, engine) -> float:
    from pipeline.core.dataset import load_dataset
    from pipeline.crop import crop_dataset

    shutil.rmtree(out, ignore_errors=True)
    dataset = load_dataset(src)
    start = time.perf_counter()
    crop_dataset(dataset, out, engine=engine)
    return time.perf_counter() - start


def _same(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "dataset.json")
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "dataset.json") \
        and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def run(quick: bool) -> list[dict]:
    if importlib.util.find_spec("ray") is None:
        return [{"name": "engines: crop on Ray", "ours": None, "reference": None, "ratio": None, "unit": "s",
                 "target": "", "note": "skipped: ray is not installed (pip install 'pipeline[ray]')"}]
    import ray

    from benchmarks.bench_crop import make_dataset
    from pipeline.engines import make_engine

    n = 60 if quick else 180
    rounds = 2 if quick else 3
    root = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    try:
        src, boxes = make_dataset(root / "photos", n)
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - start
        try:
            _crop(src, root / "warm", make_engine("ray", workers=2))  # the workers' imports warm
            local, remote = [], []
            for _ in range(rounds):
                local.append(_crop(src, root / "local", make_engine("local")))
                remote.append(_crop(src, root / "ray", make_engine("ray", workers=2)))
            same = _same(root / "local", root / "ray")
        finally:
            ray.shutdown()
        ours, ref = min(remote), min(local)
        return [
            {"name": "engines: crop on Ray, 2 workers", "ours": ours, "reference": ref, "ratio": ours / ref,
             "unit": "s", "target": "",
             "note": f"{n} photos 900x650, {boxes} crops; reference: --engine local; best of {rounds}; "
                     f"same bytes: {'yes' if same else 'NO'}"},
            {"name": "engines: a local Ray's start", "ours": started, "reference": None, "ratio": None, "unit": "s",
             "target": "", "note": "ray.init(num_cpus=2), once per command that starts its own Ray"},
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
