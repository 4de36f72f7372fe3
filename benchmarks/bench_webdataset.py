"""WebDataset shards: writing them, and reading them back as training batches.

Generates its own dataset in a temporary folder: the embedded MNIST images (5,000; 2,000 in quick
mode) as a pipeline dataset, exported to shards of 1,000 samples.

- **export**: CPU seconds of `pipeline export --format webdataset` (ours) against the ImageFolder
  export of the same dataset (reference: hard links, the cheapest export there is). Target: at
  most 3x the reference's CPU time (a shard copies every image's bytes into a tar; ImageFolder
  only links them).
- **stream**: CPU seconds to read every training shard and decode each image to the model's
  input (`streaming.stream_batches`: our tar reader, the tensor cache's `to_array`, a shuffle buffer)
  against the `webdataset` library's own pipeline on the same shards
  (``WebDataset(urls).shuffle(4096).decode("pil")`` then the same `to_array`). Target: no slower
  than the library (ratio <= 1.2 on this noisy machine).

CPU time (`time.process_time`), rounds interleaved, the best of each kept.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

ROUNDS = 3


def _dataset(root: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    from pipeline.core.dataset import DatasetWriter, Sample
    from pipeline.core.images import encode_png
    from pipeline.sources.idx import read_idx

    here = Path(__file__).resolve().parents[1] / "datasets" / "embedded"
    images = read_idx(here / "mnist5k-images-idx3-ubyte.gz")
    labels = read_idx(here / "mnist5k-labels-idx1-ubyte.gz")
    rows = np.concatenate([np.flatnonzero(labels == d)[: n // 10] for d in range(10)])
    with DatasetWriter(root, task="classification", stage="bench", classes=[str(d) for d in range(10)]) as w:
        for k, row in enumerate(rows):
            w.add(Sample(id=f"{k:05d}", label=str(int(labels[row])), split="train", width=28, height=28),
                  data=encode_png(Image.fromarray(images[row], mode="L")), ext="png")
    return root


def _cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def run(quick: bool = True) -> list[dict]:
    from pipeline.config import load_config
    from pipeline.distributed import World
    from pipeline.formats.ingest import export_dataset
    from pipeline.streaming import stream_batches
    from pipeline.tensor_cache import to_array

    n = 2000 if quick else 5000
    tmp = Path(tempfile.mkdtemp(prefix="bench-wds-"))
    try:
        data = _dataset(tmp / "ds", n)
        config = load_config(options={"threads": 1})
        ours_export, ref_export = [], []
        for r in range(ROUNDS):
            ours_export.append(_cpu(lambda r=r: export_dataset(data, "webdataset", tmp / f"wds-{r}",
                                                               options={"shard_size": 1000})))
            ref_export.append(_cpu(lambda r=r: export_dataset(data, "imagefolder", tmp / f"if-{r}")))
        shards = sorted((tmp / "wds-0").glob("train-*.tar"))

        def ours_stream() -> int:
            return sum(len(y) for _x, y in stream_batches(shards, None, config, 96, 10**9, 0, 1, World()))

        def library_stream() -> int:
            import webdataset as wds

            count = 0
            pipeline = wds.WebDataset([str(p) for p in shards], shardshuffle=False).shuffle(4096).decode("pil")
            for sample in pipeline:
                to_array(sample["png"], config.image_size, config.grayscale)
                count += 1
            return count

        assert ours_stream() == library_stream() == n
        ours_read, ref_read = [], []
        for _ in range(ROUNDS):
            ours_read.append(_cpu(ours_stream))
            ref_read.append(_cpu(library_stream))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    export_ratio = min(ours_export) / min(ref_export)
    read_ratio = min(ours_read) / min(ref_read)
    return [
        {"name": f"export --format webdataset, {n} MNIST PNGs (CPU s)", "ours": min(ours_export),
         "reference": min(ref_export), "ratio": export_ratio, "unit": "s", "target": "<= 3x imagefolder",
         "note": f"shards of 1,000; reference: export --format imagefolder (hard links); best of {ROUNDS}"},
        {"name": f"stream {n} samples from shards to 32x32 arrays (CPU s)", "ours": min(ours_read),
         "reference": min(ref_read), "ratio": read_ratio, "unit": "s", "target": "<= 1.2x webdataset",
         "note": f"reference: webdataset {_version()} .shuffle(4096).decode('pil') + the same resize; best of {ROUNDS}"},
    ]


def _version() -> str:
    try:
        import webdataset

        return webdataset.__version__
    except (ImportError, AttributeError):
        return "?"
