"""Training speed of `pipeline train` against the seed's loop, on the real MNIST, same run, same model.

Data: ``../shared/data/mnist/mnist-train-png.tar.gz`` (60,000 real PNGs) extracted once to
``<cache>/bench/mnist-png`` (outside the repository) and imported once with ``pipeline import
imagefolder``. A fixed 10,000 images (chosen by a hash of their ids) are held out as validation;
the other 50,000 train. ``BENCH=quick`` uses a fixed 10,000/2,000 subset of those.

The reference is a faithful re-implementation of the seed's loop: torchvision's ``ImageFolder`` on
the PNG tree (PIL decode per sample, every epoch) with ``Grayscale → Resize(32) → ToTensor →
Normalize((0.1307,), (0.3081,))``, a ``DataLoader`` with batch 32 and shuffling, Adam at 1e-3,
cross-entropy, NumberModel `standard`. Ours is `pipeline.train.train` with the default recipe:
the uint8 tensor cache, batched normalization, the default recipe's batch size. Both use the same thread count.

Lines:
- training samples/s (targets: ours >= 4x the seed loop);
- time to 99.0% validation accuracy on 50k/10k, seed recipe (the seed loop) vs the default recipe
  (``BENCH=full``; target: at most 1/12 of the seed loop's), in wall seconds and in CPU seconds per
  thread (the wall time on idle cores: the machine is shared); quick mode: 97% on the subset;
- time to 99.5% on the same 10k held out with ``configs/train/fast.yaml`` (``BENCH=full``; target
  <= 60 s of training on 2 cores), wall and CPU seconds per thread; quick mode: 98% on the subset
  in 2 epochs;
- the default recipe's final validation accuracy (full: on the 10k held out);
- peak resident memory of training and of the cache build, each measured in a subprocess;
- the one-time cache build time, reported separately.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "mnist-train-png.tar.gz"
FAST = Path(__file__).resolve().parents[1] / "configs" / "train" / "fast.yaml"
VAL_HELD_OUT = 10_000
QUICK_TRAIN, QUICK_VAL = 10_000, 2_000


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def bench_root() -> Path:
    from pipeline.tensor_cache import cache_root

    return cache_root() / "bench"


def mnist_tree() -> Path:
    """The extracted PNG tree (`training/<digit>/<index>.png`), extracted once."""
    dest = bench_root() / "mnist-png"
    if not (dest / ".complete").is_file():
        if not ARCHIVE.is_file():
            raise FileNotFoundError(f"{ARCHIVE} is absent: this benchmark needs the real MNIST PNGs")
        bench_root().mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".mnist-png-", dir=bench_root()))
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(tmp, filter="data")
        if dest.exists():
            import shutil

            shutil.rmtree(dest)
        os.rename(tmp, dest)
        (dest / ".complete").write_text("ok\n")
    return dest / "training"


def mnist_dataset(quick: bool) -> Path:
    """The canonical dataset: 50k train / 10k val (full) or 10k / 2k (quick), fixed by id hashes."""
    from pipeline.core.dataset import derive, is_dataset, load_dataset, rewrite_samples
    from pipeline.core.rng import derive_seed
    from pipeline.formats.ingest import import_dataset

    full = bench_root() / "mnist60k"
    if not is_dataset(full):
        import_dataset("imagefolder", mnist_tree(), full)
    dataset = load_dataset(full)
    order = sorted(dataset.samples, key=lambda s: derive_seed("bench-val", s.id))
    val_ids = {s.id for s in order[:VAL_HELD_OUT]}
    if any(s.split != ("val" if s.id in val_ids else "train") for s in dataset.samples):
        for s in dataset.samples:
            s.split = "val" if s.id in val_ids else "train"
        dataset = rewrite_samples(dataset, dataset.samples, stage="split", params={"bench": "fixed 10k val"})
    if not quick:
        return full
    small = bench_root() / "mnist12k"
    if not is_dataset(small):
        train = order[VAL_HELD_OUT:][:QUICK_TRAIN]
        val = order[:QUICK_VAL]
        derive(dataset, small, train + val, stage="bench-subset", params={"train": QUICK_TRAIN, "val": QUICK_VAL})
    return small


# --------------------------------------------------------------------------------------------
# The seed's loop
# --------------------------------------------------------------------------------------------


def seed_loaders(dataset_path: Path, batch_size: int = 32, seed: int = 0):
    """torchvision ImageFolder over the PNG tree, restricted to the dataset's train and val samples."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from pipeline.core.dataset import load_dataset

    transform = transforms.Compose([
        transforms.Grayscale(num_output_channels=1),
        transforms.Resize(32),
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,)),
    ])
    tree = mnist_tree()
    folder = datasets.ImageFolder(str(tree), transform=transform)
    position = {os.path.relpath(p, tree): i for i, (p, _) in enumerate(folder.samples)}
    dataset = load_dataset(dataset_path)
    rows = {"train": [], "val": []}
    for s in dataset.samples:
        rows[s.split].append(position[s.source["file"]])
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(Subset(folder, sorted(rows["train"])), batch_size=batch_size, shuffle=True, generator=g)
    val = DataLoader(Subset(folder, sorted(rows["val"])), batch_size=1000)
    return train, val


def seed_train(dataset_path: Path, epochs: int, *, max_batches: int | None = None, evaluate: bool = True) -> dict:
    """The seed's loop; per-epoch training seconds (data loading included) and validation accuracy."""
    import torch
    import torch.nn.functional as F

    from pipeline.model import build_model

    train, val = seed_loaders(dataset_path)
    torch.manual_seed(0)
    model = build_model("standard", 1, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history, elapsed, elapsed_cpu, seen = [], 0.0, 0.0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        start, start_cpu = time.perf_counter(), time.process_time()
        n = 0
        for i, (x, y) in enumerate(train):
            if max_batches is not None and i >= max_batches:
                break
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n += len(y)
        seconds = time.perf_counter() - start
        elapsed += seconds
        elapsed_cpu += time.process_time() - start_cpu
        seen += n
        acc = None
        if evaluate:
            model.eval()
            correct = total = 0
            with torch.no_grad():
                for x, y in val:
                    correct += int((model(x).argmax(1) == y).sum())
                    total += len(y)
            acc = correct / total
        history.append({"epoch": epoch, "elapsed_train_seconds": elapsed, "elapsed_train_cpu_seconds": elapsed_cpu,
                        "val_accuracy": acc, "samples_per_second": n / seconds})
    return {"history": history, "samples_per_second": seen / elapsed}


def first_reaching(history: list[dict], threshold: float) -> float | None:
    hit = next((h for h in history if h["val_accuracy"] is not None and h["val_accuracy"] >= threshold), None)
    return hit["elapsed_train_seconds"] if hit else None


# --------------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------------


def ours_train(dataset_path: Path, threads: int, config_file: Path | None = None, **overrides) -> dict:
    """`pipeline.train.train` with the default recipe, or `config_file`, plus overrides, into a
    temporary run folder."""
    from pipeline.config import load_config
    from pipeline.core import ui
    from pipeline.train import train

    ui.set_quiet(True)
    config = load_config(config_file=config_file, options={"threads": threads, "log_images": 0, **overrides})
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        result = train(dataset_path, Path(tmp) / "run", config)
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    return {"history": result.history, "samples_per_second": metrics["samples_per_second"],
            "threads": threads, "config": config}


def first_reaching_cpu(history: list[dict], threshold: float, threads: int) -> float | None:
    """The training CPU time (all threads) up to the first epoch at `threshold`, divided by the thread
    count: about the wall time the same work takes when nothing else runs on those cores."""
    hit = next((h for h in history if h["val_accuracy"] is not None and h["val_accuracy"] >= threshold), None)
    return hit["elapsed_train_cpu_seconds"] / threads if hit else None


def throughput(data: Path, threads: int, rounds: int, batch_size: int = 64,
               augment: str | None = None) -> tuple[float, float]:
    """(ours, seed) training samples/s, alternating short slices of each, best slice of each kept.

    Ours is the training loop itself (`pipeline.train.train_one_epoch` over 12,800 cached training
    rows, the default recipe); the seed's slice is 100 batches of its DataLoader. Alternating keeps
    both exposed to the same background load; the best slice is the least disturbed one.
    """
    import torch
    import torch.nn.functional as F

    from pipeline.config import load_config
    from pipeline.core.dataset import load_dataset
    from pipeline.model import build_model
    from pipeline.tensor_cache import load_or_build
    from pipeline.train import (
        Rows,
        choose_preprocess,
        make_augmenter,
        make_model,
        make_optimizer,
        make_scheduler,
        normalizer,
        train_one_epoch,
    )

    cpu = torch.device("cpu")
    config = load_config(options={"threads": threads, "batch_size": batch_size, "augment": augment})
    dataset = load_dataset(data)
    cache = load_or_build(dataset)
    rows = cache.indices("train")[:12_800]
    normalize = normalizer(choose_preprocess(dataset, cache, rows, config), cpu)
    augmenter = make_augmenter(config, dataset.classes)
    ours_rows = Rows(cache, rows, cpu, soft=augmenter is not None)
    model = make_model(config, 1, 10, cpu)
    optimizer = make_optimizer(config, model)
    steps = -(-len(rows) // config.batch_size)
    scheduler = make_scheduler(config, optimizer, rounds * steps)

    loader, _ = seed_loaders(data)
    torch.manual_seed(0)
    seed_model = build_model("standard", 1, 10)
    seed_optimizer = torch.optim.Adam(seed_model.parameters(), lr=1e-3)
    batches = iter(loader)

    ours_best = seed_best = 0.0
    step = 0
    for r in range(rounds):
        stats, step = train_one_epoch(model, optimizer, scheduler, ours_rows, normalize, config, r + 1, step,
                                      augmenter, config.channels_last)
        ours_best = max(ours_best, stats["samples_per_second"])
        seed_model.train()
        start, n = time.perf_counter(), 0
        for _ in range(100):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            loss = F.cross_entropy(seed_model(x), y)
            seed_optimizer.zero_grad()
            loss.backward()
            seed_optimizer.step()
            n += len(y)
        seed_best = max(seed_best, n / (time.perf_counter() - start))
    return ours_best, seed_best


# --------------------------------------------------------------------------------------------
# Peak memory, in subprocesses
# --------------------------------------------------------------------------------------------

_CHILD_TRAIN = """
import json, sys, tempfile
from pathlib import Path
from pipeline.config import load_config
from pipeline.core import ui
from pipeline.train import train
ui.set_quiet(True)
cfg = load_config(options={"epochs": 1, "threads": int(sys.argv[2]), "log_images": 0})
with tempfile.TemporaryDirectory() as tmp:
    train(sys.argv[1], Path(tmp) / "run", cfg)
"""

_CHILD_SEED = """
import sys
import torch
sys.path.insert(0, sys.argv[3])
torch.set_num_threads(int(sys.argv[2]))
from benchmarks.bench_train import seed_train
seed_train(sys.argv[1], 1, max_batches=300, evaluate=False)
"""

_CHILD_CACHE = """
import json, sys, time
from pipeline.core.dataset import load_dataset
from pipeline.core import ui
from pipeline.tensor_cache import load_or_build
ui.set_quiet(True)
t = time.perf_counter()
cache = load_or_build(load_dataset(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - t, "n": len(cache), "bytes": int(cache.images.nbytes)}))
"""


_PEAK = """
import re as _re
with open("/proc/self/status") as _fh:
    print("PEAK_KIB", _re.search(r"VmHWM:\\s+(\\d+)", _fh.read()).group(1))
"""


def peak_rss(code: str, *args: str, env: dict | None = None) -> tuple[float, str]:
    """(peak resident MiB, stdout) of `python -c code args`.

    The child reports its own high-water mark (VmHWM, reset at exec); `ru_maxrss` would include
    the memory of the benchmark process it was forked from.
    """
    repo = str(Path(__file__).resolve().parents[1])
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": repo}
    proc = subprocess.run([sys.executable, "-c", code + _PEAK, *args], stdout=subprocess.PIPE, env=full_env,
                          cwd=repo, check=True, text=True)
    lines = proc.stdout.strip().splitlines()
    peak = next(int(line.split()[1]) for line in lines if line.startswith("PEAK_KIB "))
    return peak / 1024.0, "\n".join(line for line in lines if not line.startswith("PEAK_KIB "))


def augment_throughput(data: Path, threads: int, rounds: int, recipe: str,
                       device: str = "cpu") -> tuple[float, float]:
    """(with, without) online augmentation: our loop's samples/s over the same 12,800 cached rows at
    the default batch, alternating one epoch of each, the best epoch of each kept (the same
    background load reaches both). On `device` "cuda" the rows, the augmentation and the model all
    live on the GPU."""
    import torch

    from pipeline.config import load_config
    from pipeline.core.dataset import load_dataset
    from pipeline.tensor_cache import load_or_build
    from pipeline.train import (
        Rows,
        choose_preprocess,
        make_augmenter,
        make_model,
        make_optimizer,
        make_scheduler,
        normalizer,
        train_one_epoch,
    )

    dev = torch.device(device)
    dataset = load_dataset(data)
    cache = load_or_build(dataset)
    rows = cache.indices("train")[:12_800]
    loops = []
    for augment in (recipe, None):
        config = load_config(options={"threads": threads, "augment": augment})
        normalize = normalizer(choose_preprocess(dataset, cache, rows, config), dev)
        augmenter = make_augmenter(config, dataset.classes)
        model = make_model(config, 1, 10, dev)
        optimizer = make_optimizer(config, model)
        scheduler = make_scheduler(config, optimizer, rounds * -(-len(rows) // config.batch_size))
        loops.append([model, optimizer, scheduler, Rows(cache, rows, dev, soft=augmenter is not None), normalize,
                      config, augmenter, 0])
    best = [0.0, 0.0]
    for r in range(rounds):
        for i, (model, optimizer, scheduler, data_rows, normalize, config, augmenter, step) in enumerate(loops):
            stats, loops[i][7] = train_one_epoch(model, optimizer, scheduler, data_rows, normalize, config, r + 1, step,
                                                 augmenter, config.channels_last)
            best[i] = max(best[i], stats["samples_per_second"])
    return best[0], best[1]


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _row(name: str, ours: float | None, reference: float | None, unit: str, target: str, note: str) -> dict:
    ratio = ours / reference if ours is not None and reference not in (None, 0) else None
    return {"name": name, "ours": ours, "reference": reference, "ratio": ratio, "unit": unit, "target": target,
            "note": note}


def run(quick: bool) -> list[dict]:
    import torch

    from pipeline.core import ui
    from pipeline.train import auto_threads

    ui.set_quiet(True)
    data = mnist_dataset(quick)
    threads = auto_threads()
    torch.set_num_threads(threads)
    size = "10k train / 2k val subset" if quick else "50k train / 10k held-out val"
    rows: list[dict] = []

    # Cache build (and its peak memory) in a fresh cache folder, in a subprocess.
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        cache_mib, out = peak_rss(_CHILD_CACHE, str(data), env={"PIPELINE_CACHE_DIR": tmp})
    built = json.loads(out.strip().splitlines()[-1])

    # (a) throughput, alternating slices of both loops in this process, same threads.
    rounds = 4 if quick else 8
    from pipeline.config import TrainConfig

    default_batch = TrainConfig().batch_size
    ours_sps, seed_sps = throughput(data, threads, rounds, batch_size=default_batch)
    ours32_sps, _ = throughput(data, threads, 2, batch_size=32)
    rows.append(_row("train throughput, default recipe", ours_sps, seed_sps, "samples/s", ">= 4x the seed loop",
                     f"best of {rounds} alternating slices: ours 12.8k cached rows at batch {default_batch}, the seed loop 100 "
                     f"batches of 32 (ImageFolder + PIL per sample); {threads} thread(s)"))
    rows.append(_row("train throughput, batch 32 (seed's batch)", ours32_sps, seed_sps, "samples/s", "(information)",
                     "our loop at the seed's batch size, to separate the data path from the batch size"))
    recipe = Path(__file__).resolve().parents[1] / "configs" / "augment" / "digits.yaml"
    try:
        aug_sps, plain_sps = augment_throughput(data, threads, rounds, str(recipe))
        rows.append(_row("train throughput with online augmentation", aug_sps, plain_sps, "samples/s",
                         ">= 0.6x our loop without augmentation",
                         f"--augment {recipe.relative_to(recipe.parents[2])}; best of {rounds} alternating epochs of "
                         f"each over 12.8k cached rows at batch {default_batch}; reference: our loop without augmentation"))
    except Exception as exc:  # noqa: BLE001 - the augmentation stage is optional for this benchmark
        rows.append(_row("train throughput with online augmentation", None, ours_sps, "samples/s", "", f"not run: {exc}"))
    if torch.cuda.is_available():  # the same two loops with the data, augmentation and model on the GPU
        from benchmarks.run import cuda_device

        gpu_aug, gpu_plain = augment_throughput(data, threads, rounds, str(recipe), device="cuda")
        rows.append(_row("train throughput on CUDA, no augmentation", gpu_plain, ours_sps, "samples/s",
                         "(information)", f"{cuda_device()}; our loop with the rows and model on the GPU; "
                                          f"reference: the same loop on {threads} CPU thread(s)"))
        rows.append(_row("train throughput on CUDA with online augmentation", gpu_aug, gpu_plain, "samples/s",
                         ">= 0.6x our loop without augmentation", f"{cuda_device()}; the batched augmentation runs "
                                                                  "on the GPU; reference: the GPU loop without it"))

    # (b) time to a validation accuracy, on the same data in this one run: the seed recipe (seed loop)
    # against the default recipe, and configs/train/fast.yaml to 99.5 %. Wall seconds are what the
    # run took; CPU seconds / threads is what it takes on the same cores with nothing else running.
    if quick:
        threshold, epochs_seed, extra = 0.97, 3, {"epochs": 3}
        fast_threshold, fast_extra = 0.98, {"epochs": 2}
    else:
        threshold, epochs_seed, extra = 0.99, 10, {}
        fast_threshold, fast_extra = 0.995, {}
    seed_run = seed_train(data, epochs_seed)
    ours_run = ours_train(data, threads, **extra)
    seed_threads = torch.get_num_threads()
    t_seed, t_ours = first_reaching(seed_run["history"], threshold), first_reaching(ours_run["history"], threshold)
    c_seed = first_reaching_cpu(seed_run["history"], threshold, seed_threads)
    c_ours = first_reaching_cpu(ours_run["history"], threshold, threads)
    final = ours_run["history"][-1]["val_accuracy"]
    rows.append(_row(f"time to {threshold:.1%} val accuracy, default recipe vs seed loop", t_ours, t_seed, "s",
                     "ratio <= 0.083 (1/12 of the seed loop)" if not quick else "(quick: subset, 3 epochs each)",
                     f"{size}; wall seconds of training incl. data loading, evaluation excluded; seed recipe "
                     f"{epochs_seed} epochs (best {max(h['val_accuracy'] for h in seed_run['history']):.4f}), "
                     f"default {len(ours_run['history'])} epochs; {threads} thread(s)"))
    rows.append(_row(f"time to {threshold:.1%} val accuracy, default vs seed, CPU s / threads", c_ours, c_seed, "s",
                     "ratio <= 0.083 (1/12 of the seed loop)" if not quick else "(quick: subset, 3 epochs each)",
                     "the same two runs' process CPU time up to that epoch divided by their thread count: the wall "
                     "time on the same cores when idle"))
    rows.append(_row("val accuracy after the recipe", final, seed_run["history"][-1]["val_accuracy"], "accuracy",
                     ">= 0.989 (full, test set)" if not quick else "(quick: 3 epochs)",
                     f"{size}; ours: default recipe ({len(ours_run['history'])} epochs); reference: seed recipe "
                     f"({epochs_seed} epochs)"))
    fast_run = ours_train(data, threads, FAST, **fast_extra)
    history = fast_run["history"]
    t_fast = first_reaching(history, fast_threshold)
    c_fast = first_reaching_cpu(history, fast_threshold, threads)
    best = max(h["val_accuracy"] for h in history)
    note = (f"{size}; configs/train/fast.yaml ({len(history)} epochs, best {best:.4f}, final "
            f"{history[-1]['val_accuracy']:.4f}); wall seconds of training, evaluation excluded; {threads} thread(s); "
            f"reference: the seed loop's time to {threshold:.1%} in this run")
    rows.append(_row(f"fast recipe: time to {fast_threshold:.1%} val accuracy", t_fast, t_seed, "s",
                     "<= 60 s of training on 2 cores (full)" if not quick else "(quick: subset, 2 epochs)", note))
    rows.append(_row(f"fast recipe: time to {fast_threshold:.1%}, CPU s / threads", c_fast, c_seed, "s",
                     "<= 60 s on 2 idle cores (full)" if not quick else "(quick: subset, 2 epochs)",
                     f"process CPU time of the same run up to that epoch / {threads} thread(s) (wall time on idle "
                     f"cores); total {history[-1]['elapsed_train_cpu_seconds'] / threads:.1f} s for "
                     f"{len(history)} epochs"))
    rows.append(_row(f"fast recipe: all {len(history)} epochs, training wall s", history[-1]["elapsed_train_seconds"],
                     t_seed, "s", "<= 60 s on 2 cores, final >= 99.5% (full)" if not quick else "(quick: subset, 2 epochs)",
                     f"the whole recipe, as a user runs it: final val accuracy {history[-1]['val_accuracy']:.4f}, "
                     f"CPU s / threads {history[-1]['elapsed_train_cpu_seconds'] / threads:.1f}; evaluation excluded"))

    # (c) peak memory, each in its own subprocess.
    repo = str(Path(__file__).resolve().parents[1])
    train_mib, _ = peak_rss(_CHILD_TRAIN, str(data), str(threads))
    seed_mib, _ = peak_rss(_CHILD_SEED, str(data), str(threads), repo)
    rows.append(_row("peak memory, training", train_mib, seed_mib, "MiB", "sane (< 1 GiB for 60k)",
                     "one epoch in a subprocess (VmHWM); reference: the seed loop for 300 batches"))
    rows.append(_row("peak memory, cache build", cache_mib, None, "MiB", "sane (< 1 GiB for 60k)",
                     f"decode {built['n']} images into a {built['bytes'] / 2**20:.1f} MiB uint8 memory-mapped array"))
    rows.append(_row("cache build time (one-time)", built["seconds"], None, "s", "(reported separately)",
                     f"{built['n']} images, {built['n'] / built['seconds']:.0f} images/s; reused until the dataset changes"))
    return rows
