"""`pipeline view` on a 1,000,000-sample dataset (100,000 in quick mode), through HTTP against a
real server process.

The dataset is synthetic: `samples.jsonl` written directly (one line per sample, sorted by id, each
naming one of 100 small PNGs in a shared pool, ten classes, three splits, one sample in ten an
augmented copy with a parent), so it builds in seconds. Each record carries a distinct `sha256`
(the viewer does not hash images; `pipeline check` would report the pool's sharing).

Measured, each from the start of `pipeline view DATASET --no-browser --port 0` in a new process:

- ready (cold): until `/api/info` answers, the index built from scratch (the first start);
- ready (warm): the same with the index cached (every later start);
- first page, a filter change (class + its counts), a jump to offset 500,000: one request each,
  best of three rounds interleaved; peak resident memory of the server (VmHWM) after all of it.

The reference, timed in the same run, is the least any Python start can do with the file:
`json.loads` of every line of `samples.jsonl` (ready), and for the requests the same request
against the same server's `/api/info` (a round trip that queries nothing).

Targets (issue 16): ready within 60 s and under 1 GB; each request within 1 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

POOL = 100
CLASSES = [str(c) for c in range(10)]
SPLITS = ("train", "train", "train", "val", "test")


def make_dataset(root: Path, n: int) -> Path:
    """A dataset of `n` samples over a pool of `POOL` digit PNGs, samples.jsonl written directly."""
    from pipeline.core.dataset.writer import lineage_entry
    from pipeline.core.images import encode_png
    from tests.helpers import digit_like

    (root / "images" / "pool").mkdir(parents=True)
    for k in range(POOL):
        (root / "images" / "pool" / f"{k:03d}.png").write_bytes(encode_png(digit_like(k % 10, k)))
    h = hashlib.sha256()
    width = len(str(n))
    with open(root / "samples.jsonl", "wb") as fh:
        lines = []
        for i in range(n):
            k = i % POOL
            sid = f"s{i:0{width}d}"
            digest = hashlib.sha256(sid.encode()).hexdigest()
            if i % 10 == 9:
                source = f'{{"stage":"augment","parents":["s{i - 1:0{width}d}"]}}'
            else:
                source = f'{{"file":"pool","index":{k}}}'
            lines.append(f'{{"id":"{sid}","image":"images/pool/{k:03d}.png","width":28,"height":28,'
                         f'"sha256":"{digest}","split":"{SPLITS[i % 5]}","label":"{k % 10}","source":{source}}}\n')
            if len(lines) == 10_000:
                data = "".join(lines).encode()
                fh.write(data)
                h.update(data)
                lines.clear()
        data = "".join(lines).encode()
        fh.write(data)
        h.update(data)
    info = {"format": "pipeline-dataset", "version": 1, "task": "classification", "classes": CLASSES,
            "samples_sha256": h.hexdigest(), "lineage": [lineage_entry("bench", {"n": n})]}
    (root / "dataset.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return root


def _get(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = json.loads(response.read())
    return time.perf_counter() - start, body


class Server:
    """`pipeline view` in its own process; `ready` seconds from the spawn to a first answer."""

    def __init__(self, dataset: Path, cache: Path) -> None:
        env = {**os.environ, "PIPELINE_CACHE_DIR": str(cache), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        start = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--quiet", "view", str(dataset),
                                      "--no-browser", "--port", "0", "--edits", str(cache / "edits.jsonl")],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"(http://\S+)", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {line}{self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.url = found.group(1).rstrip("/")
        _get(self.url + "/api/info")
        self.ready = time.perf_counter() - start

    def cpu_seconds(self) -> float:
        """CPU time of the server and of its finished worker processes (utime, stime, cutime, cstime)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _parse_all(path: Path) -> float:
    start = time.perf_counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            json.loads(line)
    return time.perf_counter() - start


def run(quick: bool) -> list[dict]:
    n = 100_000 if quick else 1_000_000
    tmp = Path(tempfile.mkdtemp(prefix="bench-view-"))
    try:
        dataset = make_dataset(tmp / "big", n)
        cache = tmp / "cache"
        cache.mkdir()
        cpu = time.process_time()
        reference_ready = _parse_all(dataset / "samples.jsonl")
        reference_cpu = time.process_time() - cpu
        cold = Server(dataset, cache)
        cold_rss, cold_cpu = cold.peak_rss_mb(), cold.cpu_seconds()
        (meta,) = [json.loads(p.read_text()) for p in (cache / "view").glob("*/meta.json")]
        workers = meta.get("worker_peak_mb", [])
        cold.stop()
        server = Server(dataset, cache)
        try:
            jump = n // 2
            requests = {
                "first page": "/api/samples?offset=0&limit=100",
                "filter change": "/api/samples?label=3&offset=0&limit=100",
                "filter counts": "/api/stats?label=3",
                f"jump to offset {jump:,}": f"/api/samples?offset={jump}&limit=100",
            }
            best = {name: float("inf") for name in requests}
            best_ref = float("inf")
            for _ in range(3):  # interleaved rounds; the best of each
                for name, path in requests.items():
                    seconds, body = _get(server.url + path)
                    best[name] = min(best[name], seconds)
                    assert "error" not in body, body
                best_ref = min(best_ref, _get(server.url + "/api/info")[0])
            _, page = _get(server.url + f"/api/samples?offset={jump}&limit=1")
            assert page["samples"][0]["row"] == jump
            rss = server.peak_rss_mb()
        finally:
            server.stop()
        label = f"{n:,} samples"
        rows = [
            {"name": f"ready, index built ({label})", "ours": cold.ready, "reference": reference_ready,
             "ratio": cold.ready / reference_ready, "unit": "s", "target": "<= 60 s",
             "note": "reference: json.loads of every line"},
            {"name": f"CPU time to ready, index built ({label})", "ours": cold_cpu, "reference": reference_cpu,
             "ratio": cold_cpu / reference_cpu, "unit": "s", "target": "", "note": "server and its index workers"},
            {"name": f"ready, index cached ({label})", "ours": server.ready, "reference": reference_ready,
             "ratio": server.ready / reference_ready, "unit": "s", "target": "<= 60 s", "note": ""},
            {"name": f"peak memory while building the index ({label})", "ours": cold_rss, "reference": None,
             "ratio": None, "unit": "MB", "target": "< 1024 MB", "note": "VmHWM once ready"},
            {"name": f"peak memory of the index workers, summed ({label})", "ours": sum(workers), "reference": None,
             "ratio": None, "unit": "MB", "target": "< 1024 MB with the server's",
             "note": f"{len(workers)} worker(s), each its own peak; they exit before the server is ready"},
            {"name": f"peak memory of the server ({label})", "ours": rss, "reference": None, "ratio": None,
             "unit": "MB", "target": "< 1024 MB", "note": "VmHWM after every request below"},
        ]
        for name, seconds in best.items():
            rows.append({"name": f"{name} ({label})", "ours": seconds, "reference": best_ref,
                         "ratio": seconds / best_ref, "unit": "s", "target": "<= 1 s",
                         "note": "reference: GET /api/info on the same server"})
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for row in run(quick=os.environ.get("BENCH", "quick") == "quick"):
        print(row)
