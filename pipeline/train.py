"""Train NumberModel on a classification dataset, or an autoencoder on any images: a loop you can read
top to bottom.

    1. open the dataset (a canonical dataset, or an ImageFolder tree imported on the fly)
    2. decode it once into the uint8 tensor cache (`pipeline.tensor_cache`)
    3. pick the rows of the train and validation splits and the normalization
    4. build the model, optimizer and schedule; restore them when resuming
    5. per epoch: shuffle by an index permutation, gather uint8 batches, normalize them as tensors,
       step; evaluate on the validation split; write checkpoints, TensorBoard logs, metrics.json

The model variant decides the task (`pipeline.model.model_task`). A classifier learns the labels with
cross-entropy, mean-reduced over the batch (the course sums it: with Adam that only rescales the
loss, not the steps, since Adam divides each gradient by its own running magnitude; the loss we
report is per sample either way). An autoencoder (`--variant autoencoder`, the transposed
convolutions) learns to give back its input: it sees the normalized image and is scored by the
mean squared error between its output and the image in [0, 1] (PSNR = 10 log10(1 / MSE) dB); it
needs no labels, so any image dataset trains it.

The run folder::

    config.yaml              the resolved config (train again with --config RUN/config.yaml)
    run.json                 classes, model variant, preprocessing (size, grayscale, mean/std, background)
    metrics.json             per-epoch history, best epoch, throughput
    checkpoints/epoch-NNN.pt model state_dict after each epoch
    best.pt, last.pt         model state_dicts (best validation accuracy, or lowest reconstruction error; last epoch)
    resume.pt                model, optimizer, scheduler and RNG state of the last finished epoch
    reconstructions.png      autoencoders: originals above their reconstructions by the last epoch's model
    tensorboard/             open with `tensorboard --logdir RUN/tensorboard`: loss and accuracy (train/val),
                             learning rate, the model graph, weight and gradient histograms every
                             `histogram_every` epochs, the augmented batch the model saw each epoch, the
                             validation confusion matrix (classifiers) or reconstructions (autoencoders)
                             per epoch, and the hyperparameters with the final metrics (HPARAMS tab)

Everything in a checkpoint is tensors, numbers and strings: they load with `weights_only=True`.

Under torchrun the same loop runs data-parallel (`pipeline.distributed`): every rank takes its part
of each global batch, sums are all-reduced, and rank 0 alone writes the run folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import distributed
from pipeline.config import TrainConfig, dump_yaml, load_config
from pipeline.core import failpoints, outputs, ui
from pipeline.core.dataset import Dataset, is_dataset, load_dataset, now_iso
from pipeline.core.errors import DataError, UsageError
from pipeline.core.paths import atomic_write_text
from pipeline.core.rng import derive_seed
from pipeline.distributed import World
from pipeline.engines import Engine

RUN_FORMAT = "pipeline-run"
RUN_VERSION = 1
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the seed's Normalize((0.1307,), (0.3081,))
THRESHOLDS = (0.97, 0.98, 0.99, 0.995)  # metrics.json records when validation accuracy first reached each


# --------------------------------------------------------------------------------------------
# Data: the dataset, its rows, its preprocessing
# --------------------------------------------------------------------------------------------


def dataset_folder(path: str | os.PathLike) -> Path:
    """The dataset folder for `path`: the cached import of an ImageFolder tree, else `path` itself.

    A tree is imported once into the cache and re-imported only when its files change, so every
    stage can take a curated `<class>/<image>` folder wherever it takes a dataset. Anything else is
    returned as it is, for `load_dataset` to read or to explain (no such folder, not a dataset).
    """
    from pipeline.formats import imagefolder

    path = Path(path)
    if path.is_dir() and not is_dataset(path) and imagefolder.layout(path):
        return _import_tree(path).root
    return path


def open_image_dataset(path: str | os.PathLike) -> Dataset:
    """The dataset at `path` (any task; an ImageFolder tree is imported into the cache first)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such dataset folder",
                         fix="check the path, or create one with `pipeline fetch` or `pipeline import`")
    if is_dataset(path):
        return load_dataset(path)
    return _import_tree(path)


def open_classification_dataset(path: str | os.PathLike, *, purpose: str = "train") -> Dataset:
    """A classification dataset at `path`; an ImageFolder tree is imported into the cache first."""
    path = Path(path)
    dataset = open_image_dataset(path)
    if dataset.task != "classification":
        raise UsageError(
            f"{path}: a {dataset.task} dataset; {purpose} needs a classification dataset (one label per image)",
            fix=f"turn each labelled object into a classification sample with `pipeline crop {path} --out DIR`",
        )
    return dataset


def _import_tree(src: Path) -> Dataset:
    """Import an ImageFolder tree into the cache once; re-import only when its files change."""
    from pipeline.formats import imagefolder
    from pipeline.formats.ingest import import_dataset
    from pipeline.tensor_cache import cache_root

    if not imagefolder.layout(src):
        raise UsageError(
            f"{src}: neither a pipeline dataset (no dataset.json) nor an ImageFolder tree (<class>/<image>)",
            fix="point at a dataset folder, or import this one first with `pipeline import auto`",
        )
    fingerprint = _tree_fingerprint(src)
    dest = cache_root() / "imported" / hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:16]
    stamp = dest.with_name(dest.name + ".fingerprint")
    if is_dataset(dest) and stamp.is_file() and stamp.read_text().strip() == fingerprint:
        return load_dataset(dest)
    ui.info(f"importing ImageFolder tree {src} into {dest}")
    dataset, report = import_dataset("imagefolder", src, dest, overwrite=True)  # (the cache's own copy)
    for err in report.problems[:20]:
        ui.warn(str(err))
    atomic_write_text(stamp, fingerprint + "\n")
    return dataset


def _tree_fingerprint(root: Path) -> str:
    """Hash of every file's relative path, size and modification time (cheap; no file contents)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name), follow_symlinks=False)  # a broken link is no crash
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def check_trainable(dataset: Dataset, task: str = "classification") -> None:
    """Refuse datasets that cannot train: empty; for a classifier also a single class (unlabelled
    samples are refused when the tensor cache is read). An autoencoder needs only images."""
    if not dataset.samples:
        raise UsageError(f"{dataset.root}: the dataset is empty", fix="import or fetch some images first")
    if task == "reconstruction":
        return
    if len(dataset.classes) < 2:
        raise UsageError(
            f"{dataset.root}: only one class ({', '.join(dataset.classes) or 'none'}); a classifier needs at least two",
            fix="add images of other classes (e.g. a background class)",
        )


def choose_rows(cache, val_split: str | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Rows to train on and to validate on, with notes for the user.

    Train on the `train` split; a dataset without any split trains on all of it. Validate on
    `val_split` (normally `val`); when that split is empty, say so and train without validation
    (the test split is used only when asked for: `--set val_split=test`).
    """
    notes: list[str] = []
    train_rows = cache.indices("train")
    if len(train_rows) == 0:
        train_rows = cache.indices(None)
        if len(train_rows) == 0:
            raise UsageError("the dataset has no `train` split and no unsplit samples to train on",
                             fix="assign splits with `pipeline split DATASET --val 0.1`")
        notes.append(f"no `train` split: training on the {len(train_rows)} samples without a split")
    val_rows = None
    if val_split is not None:
        rows = cache.indices(val_split)
        if len(rows):
            val_rows = rows
        else:
            notes.append(f"no `{val_split}` split: training without validation "
                         "(add one with `pipeline split --val 0.1`, or use the test split with --set val_split=test)")
    return train_rows, val_rows, notes


@dataclass
class Preprocess:
    """What turns a decoded image into the model's input; saved in run.json, reused by validate/predict."""

    size: int
    grayscale: bool
    mean: list[float]
    std: list[float]
    rule: str  # why these mean/std: MNIST-like data or computed on the training split
    background: str  # "dark" or "light": the training images' border (predict inverts photos to match)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "grayscale": self.grayscale, "mean": self.mean, "std": self.std,
                "rule": self.rule, "background": self.background}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocess:
        return cls(size=int(data["size"]), grayscale=bool(data["grayscale"]), mean=list(data["mean"]),
                   std=list(data["std"]), rule=str(data.get("rule", "")), background=str(data.get("background", "dark")))

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3


def choose_preprocess(dataset: Dataset, cache, train_rows: np.ndarray, config: TrainConfig) -> Preprocess:
    """The normalization rule, recorded in run.json.

    `normalize: auto` uses MNIST's (0.1307, 0.3081) when the data is MNIST-like, defined as:
    converted to grayscale AND every training image is 28x28 (MNIST's own size). Anything else
    gets mean/std computed over its training split. `mnist` and `dataset` force either rule.
    """
    from pipeline.tensor_cache import border_level, channel_stats

    sizes = cache.sizes[train_rows]
    mnist_like = config.grayscale and len(sizes) > 0 and bool(np.all(sizes == 28))
    return preprocess_rule(config, mnist_like, lambda: channel_stats(cache.images, train_rows),
                           lambda: border_level(cache.images, train_rows), len(train_rows))


def preprocess_rule(config: TrainConfig, mnist_like: bool, stats, border, n_train: int) -> Preprocess:
    """`choose_preprocess`'s rule, given whether the data is MNIST-like and how to measure the training
    images: `stats()` their per-channel mean and std, `border()` their border brightness (0..255)."""
    mode = config.normalize
    if mode == "auto":
        mode = "mnist" if mnist_like else "dataset"
        reason = "auto: grayscale 28x28 images (MNIST-like)" if mnist_like else "auto: not 1-channel 28x28"
    else:
        reason = f"normalize: {mode}"
    channels = 1 if config.grayscale else 3
    if mode == "mnist":
        mean, std = [MNIST_MEAN] * channels, [MNIST_STD] * channels
        rule = f"MNIST mean/std ({reason})"
    else:
        mean, std = stats()
        rule = f"mean/std of the {n_train} training images ({reason})"
    background = "light" if border() >= 128 else "dark"
    return Preprocess(size=config.image_size, grayscale=config.grayscale, mean=mean, std=std, rule=rule,
                      background=background)


def normalizer(pre: Preprocess, device):
    """A function uint8/float [0, 255] batch -> normalized float batch: (x / 255 - mean) / std, fused."""
    import torch

    scale = torch.tensor([1.0 / (255.0 * s) for s in pre.std], device=device).view(1, -1, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(pre.mean, pre.std, strict=True)], device=device).view(1, -1, 1, 1)

    def normalize(x):
        return torch.addcmul(shift, x.float(), scale)

    return normalize


# --------------------------------------------------------------------------------------------
# Machinery: device, threads, model, optimizer, schedule
# --------------------------------------------------------------------------------------------


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auto_threads() -> int:
    """One intra-op thread per idle core, at least one.

    OpenMP threads wait for each other at every op; on a machine whose cores are busy with other
    work, a descheduled thread stalls the rest (measured: 2 threads on 2 loaded cores ran 10x
    slower than 1), while on idle cores 2 threads train NumberModel about 1.7x faster than 1.
    Idle cores are measured now, over a quarter of a second of /proc/stat, not from the load
    average, which still counts the stage that ran a minute ago.
    """
    cores = available_cores()
    busy = _busy_cores(cores)
    return max(1, min(cores, int(cores - busy + 0.5)))


def _busy_cores(cores: int, window: float = 0.25) -> float:
    """How many cores other processes keep busy right now (/proc/stat; the load average elsewhere)."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):
            return 0.0
    total = total1 - total0
    if total <= 0:
        return 0.0
    machine_cores = os.cpu_count() or cores
    busy_fraction = 1.0 - (idle1 - idle0) / total
    return min(float(cores), busy_fraction * machine_cores)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_BELOW = 32 << 20  # blocks under this come from the heap (glibc's largest mmap threshold)
TRIM_ABOVE = 256 << 20  # the heap's free top is handed back to the kernel only beyond this


def retain_freed_memory() -> bool:
    """Have glibc keep freed blocks for reuse instead of handing them back to the kernel.

    A training step allocates and frees the same activation and gradient buffers, several MB each,
    every batch. glibc serves blocks that large with mmap and gives them back when freed (or trims
    the heap's top), so each step page-faults them in again and the kernel zeroes every page: for
    the fast recipe about 5 % of a CPU epoch. Served from the heap and kept there (the top trimmed
    only once 256 MiB of it is free), the same memory is reused. Process-wide; False, doing
    nothing, where the C library has no `mallopt` (not glibc).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_BELOW)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))


@contextlib.contextmanager
def subnormals_flushed():
    """Within: subnormal floats (below 1.2e-38 in float32) count as zero in this thread and the threads it
    starts; the previous setting is restored after. (The setting is per thread: OpenMP workers that
    torch started earlier keep theirs. Setting it on them too was measured and gained nothing.)

    As one-cycle anneals, gradients and Adam's moments drift into that range, where each CPU operation
    on them takes many times longer; at such magnitudes they change nothing learnt. The default recipe
    on MNIST: the same accuracy at every epoch, 20-30 % less training time. Scoped to training because
    the setting is the processor's, and other code (numpy, tests) may want IEEE subnormals.
    """
    import torch

    before = float(torch.tensor([1e-39], dtype=torch.float32) * 1.0) == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def setup_torch(config: TrainConfig, here: World | None = None):
    """Pick the device and set the thread count (`threads: 0` = `auto_threads()`, shared among the
    training processes of this machine under torchrun; each of them takes its own GPU); freed
    memory is kept for reuse (`retain_freed_memory`)."""
    import torch

    here = here or World()
    retain_freed_memory()
    torch.set_num_threads(config.threads or max(1, auto_threads() // here.local_size))
    try:
        torch.set_num_interop_threads(1)  # NumberModel runs one op at a time; extra pools only contend
    except RuntimeError:
        pass  # already set in this process
    if config.device == "auto":
        return distributed.device_for(here, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {config.device}: no CUDA device here", fix="use --device auto or --device cpu")
    return distributed.device_for(here, torch.device(config.device))


def make_model(config: TrainConfig, in_channels: int, num_classes: int, device):
    import torch

    from pipeline.model import build_model

    torch.manual_seed(derive_seed(config.seed, "init"))
    model = build_model(config.variant, in_channels, num_classes, **config.model_options()).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(config: TrainConfig, model):
    import torch

    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def make_scheduler(config: TrainConfig, optimizer, total_steps: int):
    import torch

    if config.schedule == "none" or total_steps < 4:
        return None  # a one-cycle needs at least two steps up and two down; shorter runs keep lr constant
    # torch's OneCycleLR ends the warm-up at step pct_start * total - 1: keep that at least 1
    pct_start = min(max(config.warmup, 2.0 / total_steps), 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps,
                                               pct_start=pct_start)


def make_augmenter(config: TrainConfig, classes: list[str], rank: int = 0):
    """The online augmenter for `config.augment`, or None (the fast path without augmentation).
    Under torchrun each rank draws its own stream (rank 0 the single process's)."""
    if not config.augment:
        return None
    try:
        from pipeline.augment.online import OnlineAugmenter
    except ModuleNotFoundError as exc:
        if exc.name in ("pipeline.augment", "pipeline.augment.online"):
            raise UsageError("augmentation is not available (pipeline.augment.online is not installed)",
                             fix="train without --augment") from None
        raise
    if not Path(config.augment).is_file():
        raise UsageError(f"{config.augment}: no such augmentation recipe", fix="check the --augment path")
    seed = derive_seed(config.seed, "augment") if rank == 0 else derive_seed(config.seed, "augment", "rank", rank)
    return OnlineAugmenter(config.augment, classes=list(classes), seed=seed)


# --------------------------------------------------------------------------------------------
# Batches: uint8 rows in memory (or memory-mapped), gathered by index
# --------------------------------------------------------------------------------------------


class Rows:
    """The uint8 images, hard labels and (optional) soft targets of some cache rows, as tensors.

    When the images fit comfortably in RAM (or on the GPU) they are copied there once; otherwise
    each batch is gathered from the memory-mapped cache (rows sorted for sequential reads).
    """

    def __init__(self, cache, rows: np.ndarray, device, *, soft: bool, share: int = 1) -> None:
        import torch

        self.n = len(rows)
        self.device = device
        self.labels = torch.from_numpy(cache.labels[rows]).to(device)
        self.targets = torch.from_numpy(cache.targets(rows)).to(device) if soft else None
        nbytes = self.n * int(np.prod(cache.images.shape[1:]))
        if nbytes <= _memory_budget() // share:  # (`share`: the training processes of this machine)
            self.images = torch.from_numpy(np.ascontiguousarray(cache.images[rows])).to(device)
            self._mapped = None
        else:
            self.images = None
            self._mapped = (cache.images, rows)

    def subset(self, idx) -> Rows:
        """The positions `idx` (a CPU LongTensor) as Rows of their own, held in memory (a few images to show)."""
        part = Rows.__new__(Rows)
        part.n, part.device, part.targets, part._mapped = len(idx), self.device, None, None
        part.labels = self.labels[idx.to(self.labels.device)]
        part.images = self.images_at(idx)
        return part

    def images_at(self, idx):
        """uint8 (B, C, S, S) for positions `idx` (a CPU LongTensor)."""
        import torch

        if self.images is not None:
            return self.images[idx.to(self.images.device)]
        images, rows = self._mapped
        picked = rows[idx.numpy()]
        order = np.argsort(picked, kind="stable")
        block = np.empty((len(picked),) + images.shape[1:], dtype=np.uint8)
        block[order] = images[picked[order]]
        return torch.from_numpy(block).to(self.device)


def _memory_budget() -> int:
    """Bytes of images we are willing to hold in RAM: a quarter of the memory available now."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 1 << 30


# --------------------------------------------------------------------------------------------
# One epoch, one evaluation
# --------------------------------------------------------------------------------------------


def optimizer_step(optimizer, scheduler, loss) -> None:
    """One training step from `loss`: gradients, the optimizer's update, the schedule's next rate."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def train_one_epoch(model, optimizer, scheduler, data: Rows, normalize, config: TrainConfig, epoch: int,
                    step: int, augmenter=None, channels_last: bool = False, *, task: str = "classification",
                    show=None, world: World | None = None) -> tuple[dict[str, float | None], int]:
    """One pass over `data` in a fresh permutation; returns (loss/accuracy/throughput, next global step).

    Under torchrun (`world` of several ranks, `model` wrapped in DDP) every rank draws the same
    permutation and steps on its part of each global batch of `batch_size` rows; its loss is the
    sum over its rows times world size / global batch, so DDP's average of the ranks' gradients
    is the gradient of the whole batch's mean loss. The returned sums are over every rank.

    A classifier's loss is cross-entropy against the labels; an autoencoder's (`task` "reconstruction")
    the mean squared error between its output and the (augmented) input in [0, 1], and it has no
    accuracy. `show`, when given, is called once with the first batch exactly as the model gets it
    before normalization: uint8, after augmentation.
    """
    import torch
    import torch.nn.functional as F

    reconstruct = task == "reconstruction"
    here = world or World()
    model.train()
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "shuffle", epoch))
    order = torch.randperm(data.n, generator=generator)
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    started, started_cpu = time.perf_counter(), time.process_time()
    batches = range(0, data.n, config.batch_size)
    for start in ui.progress(batches, total=len(batches), desc=f"epoch {epoch}", unit="batch"):
        idx = order[start:start + config.batch_size]
        whole = len(idx)
        idx = distributed.part(here, idx)  # (the whole batch in a single process)
        x = data.images_at(idx)
        hard = data.labels[idx.to(data.labels.device)]
        target = hard if data.targets is None else data.targets[idx.to(data.targets.device)]
        if augmenter is not None and len(idx):
            x, target = augmenter(x, target, step=step)
            x, target = x.to(data.device), target.to(data.device)
        if show is not None and start == 0:
            show(x)
        if reconstruct:
            target = x.float().div(255.0)
        x = normalize(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        output = model(x)
        if here.distributed:  # this rank's sum of per-sample losses, scaled for DDP's average
            if reconstruct:
                total = F.mse_loss(output, target, reduction="sum") / max(1, math.prod(output.shape[1:]))
            else:
                total = F.cross_entropy(output, target, label_smoothing=config.label_smoothing, reduction="sum")
            loss = total * (here.size / whole)
        elif reconstruct:
            loss = F.mse_loss(output, target)
        else:
            loss = F.cross_entropy(output, target, label_smoothing=config.label_smoothing)
        optimizer_step(optimizer, scheduler, loss)
        step += 1
        with torch.no_grad():
            loss_sum += total.detach() if here.distributed else loss.detach() * len(idx)
            if not reconstruct:
                correct += (output.argmax(1) == hard).sum()
    if here.distributed:
        distributed.all_sum(here, loss_sum)
        distributed.all_sum(here, correct)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    return {
        "train_loss": float(loss_sum) / max(1, data.n),
        "train_accuracy": None if reconstruct else int(correct) / max(1, data.n),
        "train_seconds": seconds,
        "train_cpu_seconds": cpu_seconds,  # every thread of the process: on a shared machine, / threads ~ idle wall
        "samples_per_second": data.n / seconds if seconds > 0 else 0.0,
    }, step


def evaluate_rows(model, data: Rows, normalize, batch_size: int, channels_last: bool = False):
    """Outputs (CPU, float32) of every row of `data`, in order, without gradients: a classifier's logits,
    an autoencoder's reconstructions."""
    import torch

    model.eval()
    outputs = []
    batches = range(0, data.n, batch_size)
    with torch.no_grad():
        for start in ui.progress(batches, total=len(batches), desc="evaluate", unit="batch"):
            idx = torch.arange(start, min(start + batch_size, data.n))
            x = normalize(data.images_at(idx))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            outputs.append(model(x).float().cpu())
    return torch.cat(outputs) if outputs else torch.zeros((0, 0))


def evaluate_shared(model, data: Rows, normalize, config: TrainConfig, here: World, *, reconstruct: bool,
                    num_classes: int) -> dict[str, Any]:
    """Validation under torchrun: each rank evaluates its part of the rows with rank 0's weights and
    norm statistics, and the sums are added across ranks. Returns val_loss and, for a classifier,
    val_accuracy and the confusion matrix (rows true, columns predicted); for an autoencoder val_psnr."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    for buffer in model.buffers():  # the BatchNorm statistics of rank 0, which its checkpoint holds
        dist.broadcast(buffer, src=0)
    pos = distributed.part(here, torch.arange(data.n))
    mine = data.subset(pos)
    outputs = evaluate_rows(model, mine, normalize, config.eval_batch_size, config.channels_last)
    if reconstruct:
        errors = reconstruction_errors(outputs, mine.images.cpu()) if len(pos) else np.zeros(0)
        total = distributed.all_sum(here, torch.tensor([float(errors.sum())], dtype=torch.float64))
        mse = float(total[0]) / max(1, data.n)
        return {"val_loss": mse, "val_psnr": psnr(mse)}
    hard = data.labels[pos.to(data.labels.device)].cpu()
    target = hard if data.targets is None else data.targets[pos.to(data.targets.device)].cpu()
    outputs = outputs.reshape(len(pos), num_classes)
    sums = torch.tensor([float(F.cross_entropy(outputs, target, reduction="sum")) if len(pos) else 0.0,
                         float((outputs.argmax(1) == hard).sum())], dtype=torch.float64)
    cm = torch.bincount(hard * num_classes + outputs.argmax(1), minlength=num_classes * num_classes)
    distributed.all_sum(here, sums)
    distributed.all_sum(here, cm)
    return {"val_loss": float(sums[0]) / max(1, data.n), "val_accuracy": float(sums[1]) / max(1, data.n),
            "confusion": cm.reshape(num_classes, num_classes).numpy()}
def outputs_and_features(model, data: Rows, normalize, batch_size: int, channels_last: bool = False):
    """`evaluate_rows`' logits and, beside them, each row's penultimate-layer features: the input of
    the model's last linear layer (84 values for NumberModel), as CPU float32 tensors."""
    import torch
    from torch import nn

    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    features: list = []
    handle = last.register_forward_pre_hook(lambda module, args: features.append(args[0].detach().float().cpu()))
    try:
        logits = evaluate_rows(model, data, normalize, batch_size, channels_last)
    finally:
        handle.remove()
    return logits, (torch.cat(features) if features else torch.zeros((0, last.in_features)))


def fit_and_predict(dataset: Dataset, cache, fit_rows: np.ndarray, predict_rows: np.ndarray, config: TrainConfig,
                    device, *, desc: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Train a fresh classifier on the cache rows `fit_rows` exactly as `train` would (same model, optimizer,
    schedule, epochs and per-epoch loop), without a run folder, and return its class probabilities
    (softmax) and penultimate-layer features for `predict_rows`: the out-of-sample predictions of one
    cross-validation fold (`pipeline.labeling.issues`)."""
    import torch

    pre = choose_preprocess(dataset, cache, fit_rows, config)
    normalize = normalizer(pre, device)
    augmenter = make_augmenter(config, dataset.classes)
    data = Rows(cache, fit_rows, device, soft=cache.soft is not None or augmenter is not None)
    epochs = config.resolved_epochs(len(fit_rows))
    model = make_model(config, pre.channels, len(dataset.classes), device)
    optimizer = make_optimizer(config, model)
    scheduler = make_scheduler(config, optimizer, epochs * math.ceil(len(fit_rows) / config.batch_size))
    step = 0
    for epoch in range(1, epochs + 1):
        record, step = train_one_epoch(model, optimizer, scheduler, data, normalize, config, epoch, step,
                                       augmenter, config.channels_last)
        ui.info(f"{desc}{_epoch_line({'epoch': epoch, **record, 'val_accuracy': None}, epochs)}")
    held = Rows(cache, predict_rows, device, soft=False)
    logits, features = outputs_and_features(model, held, normalize, config.eval_batch_size, config.channels_last)
    return torch.softmax(logits.double(), dim=1).numpy(), features.numpy()


def loss_and_accuracy(logits, data: Rows) -> tuple[float, float]:
    import torch.nn.functional as F

    if data.n == 0:
        return float("nan"), float("nan")
    target = data.labels.cpu() if data.targets is None else data.targets.cpu()
    loss = float(F.cross_entropy(logits, target))
    accuracy = float((logits.argmax(1) == data.labels.cpu()).float().mean())
    return loss, accuracy


def reconstruction_errors(outputs, images) -> np.ndarray:
    """Per-image mean squared error between reconstructions and uint8 `images`, both taken in [0, 1]."""
    import torch

    target = torch.as_tensor(np.asarray(images)).float().div(255.0)
    diff = outputs.float().cpu().clamp(0.0, 1.0) - target
    return diff.pow(2).flatten(1).mean(1).double().numpy()


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error on [0, 1] pixels (inf for a perfect copy)."""
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def to_uint8(outputs) -> np.ndarray:
    """Reconstructions in [0, 1] (float, any device) as uint8 (N, C, S, S) images."""
    import torch

    return outputs.detach().float().cpu().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).numpy()


# --------------------------------------------------------------------------------------------
# The run folder
# --------------------------------------------------------------------------------------------


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and a rename: a kill never leaves half a checkpoint."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def is_run(path: Path) -> bool:
    return (path / "run.json").is_file()


def prepare_run_folder(out: Path, resume: bool, reads: tuple[Path, ...] = ()) -> bool:
    """Make `out` ready; True when there is a resumable state to continue from. An earlier run
    there is replaced; anything else, and an input of the run, never (`core.outputs`)."""
    outputs.claim_dir(out, "run", reads=reads, overwrite=True)
    if resume:
        if not is_run(out):
            raise UsageError(f"{out}: no run to resume (no run.json)", fix="start it without --resume")
        if not (out / "resume.pt").is_file():
            ui.info(f"{out}: interrupted before its first epoch finished; starting it again")
            return False
        return True
    if out.is_dir() and any(out.iterdir()):
        ui.info(f"{out}: replacing the previous run (use --resume to continue it instead)")
        for child in sorted(out.iterdir()):
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    return False


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _first_reaching(history: list[dict]) -> dict[str, dict | None]:
    out: dict[str, dict | None] = {}
    for t in THRESHOLDS:
        hit = next((h for h in history if h.get("val_accuracy") is not None and h["val_accuracy"] >= t), None)
        out[f"{t:g}"] = {"epoch": hit["epoch"], "train_seconds": hit["elapsed_train_seconds"],
                         "train_cpu_seconds": hit.get("elapsed_train_cpu_seconds")} if hit else None
    return out


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    out: Path
    epochs: int
    history: list[dict]
    best: dict | None
    notes: list[str]
    cache_seconds: float | None
    device: str
    task: str = "classification"
    rank: int = 0  # under torchrun: this process's rank (rank 0 prints the summary)
    world_size: int = 1


def train(data_path: str | os.PathLike, out: str | os.PathLike, config: TrainConfig | None = None, *,
          resume: bool = False, val: str | None = None, engine: Engine | None = None) -> TrainResult:
    """Train the configured model on the dataset at `data_path` into the run folder `out` (see the module doc).
    `engine` (`pipeline.engines`): where the tensor cache's images are decoded when it is built.

    `data_path` may also name WebDataset shards (paths or brace patterns, or their export folder),
    streamed without a dataset folder; `val` then names the validation shards (`pipeline.streaming`).
    Under torchrun every process calls this with the same arguments (`pipeline.distributed`)."""
    from pipeline import streaming

    out = Path(out)
    if config is None:
        config = resume_config(out, {}) if resume and is_run(out) else load_config()
    here = distributed.world()
    stream = streaming.is_stream(data_path)
    if val is not None and not stream:
        raise UsageError("--val names validation shards; a dataset's validation split is chosen by val_split",
                         fix="drop --val, or train from shards ('shards/train-{000000..000009}.tar')")
    device = setup_torch(config, here)

    def run(config: TrainConfig) -> TrainResult:
        with subnormals_flushed():
            if stream:
                return streaming.train_stream(data_path, out, config, resume, device, here, val)
            return _train(data_path, out, config, resume, device, here, engine)

    if not here.distributed:
        return run(config)
    distributed.start(here, device)
    if not here.main:
        ui.set_quiet(True)  # one voice: rank 0 prints the notes, the progress and the summary
    try:
        # rank 0's config (its run folder's, on --resume), so a machine without the run folder agrees
        result = run(distributed.broadcast(here, config))
        # every rank finished before any leaves the group: a rank that tore gloo down while rank 0 was
        # still writing its last checkpoint could abort ("terminate called without an active exception")
        distributed.barrier(here)
        return result
    finally:
        distributed.stop(here)


class _NoBoard:
    """What ranks other than 0 log to TensorBoard: nothing."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def open_run(out: Path, resume: bool, reads: tuple[Path, ...], here: World, device, config: TrainConfig, model,
             optimizer, scheduler, content_hash: str, epochs: int,
             wrong_data: UsageError) -> tuple[bool, list[dict], dict | None, int]:
    """Prepare the run folder `out` (rank 0; the others learn whether it resumes) and, on --resume,
    restore the model, optimizer, scheduler, random state and history from its resume.pt (rank 0
    reads it and hands it to the others under torchrun). `wrong_data` is raised when resume.pt was
    written for other data. Returns (resuming, history, best, first epoch to run); a new run gets
    its config.yaml."""
    import torch

    resuming = prepare_run_folder(out, resume, reads) if here.main else False
    resuming = distributed.broadcast(here, resuming)
    if here.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
    if not resuming:
        if here.main:
            atomic_write_text(out / "config.yaml", dump_yaml(config))
        return False, [], None, 1
    if here.distributed:  # rank 0 reads its run folder and hands the state to the others
        state = torch.load(out / "resume.pt", map_location="cpu", weights_only=True) if here.main else None
        state = distributed.broadcast(here, state)
    else:
        state = torch.load(out / "resume.pt", map_location=device, weights_only=True)
    if state["dataset_hash"] != content_hash:
        raise wrong_data
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    _restore_rng(state, here)
    ui.info(f"resuming {out} after epoch {state['epoch']} of {epochs}")
    return True, list(state["history"]), state["best"], int(state["epoch"]) + 1


def _train(data_path: str | os.PathLike, out: Path, config: TrainConfig, resume: bool, device,
           here: World, engine: Engine | None = None) -> TrainResult:
    import torch

    from pipeline.model import model_task

    task = model_task(config.variant)
    reconstruct = task == "reconstruction"

    # 1-2. the data, decoded once (once per machine under torchrun: local rank 0 first)
    with distributed.local_first(here):
        dataset = open_image_dataset(data_path) if reconstruct else open_classification_dataset(data_path)
        check_trainable(dataset, task)
        from pipeline.tensor_cache import load_or_build

        cache = load_or_build(dataset, size=config.image_size, grayscale=config.grayscale, labels=not reconstruct,
                              engine=engine)

    # 3. rows and preprocessing
    train_rows, val_rows, notes = choose_rows(cache, config.val_split)
    for note in notes:
        ui.info(note)
    pre = choose_preprocess(dataset, cache, train_rows, config)
    normalize = normalizer(pre, device)
    augmenter = make_augmenter(config, dataset.classes, here.rank)
    # soft targets for label-mixing augmentation; an autoencoder's target is its input, labels only ride along
    soft = (augmenter is not None and bool(dataset.classes)) if reconstruct else (
        cache.soft is not None or augmenter is not None)
    train_data = Rows(cache, train_rows, device, soft=soft, share=here.local_size)
    val_data = (Rows(cache, val_rows, device, soft=cache.soft is not None, share=here.local_size)
                if val_rows is not None else None)

    # 4. model, optimizer, schedule (restored when resuming)
    epochs = config.resolved_epochs(len(train_rows))
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    model = make_model(config, pre.channels, len(dataset.classes), device)
    if here.rank > 0:
        torch.manual_seed(derive_seed(config.seed, "rank", here.rank))  # its own dropout masks
    optimizer = make_optimizer(config, model)
    scheduler = make_scheduler(config, optimizer, epochs * steps_per_epoch)
    wrong = UsageError(f"{data_path}: not the dataset this run was trained on (its content changed)",
                       fix="resume with the same dataset, or start a new run without --resume")
    resuming, history, best, start_epoch = open_run(out, resume, (Path(data_path),), here, device, config, model,
                                                    optimizer, scheduler, dataset.content_hash, epochs, wrong)
    run_info = {
        "format": RUN_FORMAT, "version": RUN_VERSION, "status": "running", "task": task,
        "classes": list(dataset.classes), "variant": config.variant, "in_channels": pre.channels,
        "model_options": {k: list(v) if isinstance(v, tuple) else v for k, v in config.model_options().items()},
        "preprocess": pre.to_json(),
        "dataset": {"path": str(dataset.root), "content_hash": dataset.content_hash},
        "splits": {"train": int(len(train_rows)), "val": int(len(val_rows)) if val_rows is not None else 0},
        "epochs": epochs, "device": str(device), "threads": torch.get_num_threads(),
        "started": None, "finished": None,
    }
    if here.distributed:
        run_info["world_size"] = here.size
        run_info["backend"] = distributed.backend(device)
    if here.main:
        run_info["started"] = load_run_info(out).get("started", now_iso()) if resuming else now_iso()
        if resuming:
            run_info["resumed"] = now_iso()
        write_json(out / "run.json", run_info)

    board = Board(out / "tensorboard", config, purge_step=start_epoch if resuming else None) if here.main else _NoBoard()
    if not resuming:
        board.graph(model, normalize(train_data.images_at(torch.arange(min(2, train_data.n)))))
    # the images each epoch shows (autoencoders): validation rows spread over the split, else training rows
    shown = val_data if val_data is not None else train_data
    shown_idx = torch.linspace(0, shown.n - 1, min(max(config.log_images, 1), shown.n)).round().long().unique()
    net = model
    if here.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    # 5. the epochs
    channels_last = config.channels_last
    step = (start_epoch - 1) * steps_per_epoch
    elapsed = history[-1]["elapsed_train_seconds"] if history else 0.0
    elapsed_cpu = history[-1].get("elapsed_train_cpu_seconds", 0.0) if history else 0.0
    for epoch in range(start_epoch, epochs + 1):
        with distributed.collective_errors(here, epoch - 1):
            record, step = train_one_epoch(net, optimizer, scheduler, train_data, normalize, config, epoch, step,
                                           augmenter, channels_last, task=task,
                                           show=lambda x, e=epoch: board.batch(x, e), world=here)
            elapsed += record["train_seconds"]
            elapsed_cpu += record["train_cpu_seconds"]
            record = {"epoch": epoch, **record, "elapsed_train_seconds": elapsed,
                      "elapsed_train_cpu_seconds": elapsed_cpu,
                      "lr": optimizer.param_groups[0]["lr"], "val_loss": None, "val_accuracy": None}
            if val_data is not None and here.distributed:
                scores = evaluate_shared(model, val_data, normalize, config, here, reconstruct=reconstruct,
                                         num_classes=len(dataset.classes))
                cm = scores.pop("confusion", None)
                record.update(scores)
                if cm is not None:
                    board.confusion_counts(cm, dataset.classes, epoch)
            elif val_data is not None:
                outputs = evaluate_rows(model, val_data, normalize, config.eval_batch_size, channels_last)
                if reconstruct:
                    mse = float(reconstruction_errors(outputs, val_data.images_at(torch.arange(val_data.n)).cpu()).mean())
                    record.update(val_loss=mse, val_psnr=psnr(mse))
                else:
                    record["val_loss"], record["val_accuracy"] = loss_and_accuracy(outputs, val_data)
                    board.confusion(outputs, val_data, dataset.classes, epoch)
            rng_states = distributed.gather(here, torch.get_rng_state()) if here.distributed else None
        history.append(record)
        best = _better(best, record, reconstruct)
        if here.main:
            _save_epoch(out, board, model, optimizer, scheduler, record, history, best, epochs, epoch,
                        reconstruct, shown, shown_idx, normalize, dataset.content_hash, cache.build_seconds,
                        rng_states)
        with distributed.collective_errors(here, epoch - 1):
            distributed.barrier(here)  # every rank past this point knows the epoch is saved
        failpoints.hit("train.epoch")
        ui.info(_epoch_line(record, epochs))

    if here.main:
        _finish_run(out, board, model, config, task, reconstruct, shown, shown_idx, normalize, history, best,
                    epochs, cache.build_seconds, run_info)
    return TrainResult(out=out, epochs=epochs, history=history, best=best, notes=notes,
                       cache_seconds=cache.build_seconds, device=str(device), task=task, rank=here.rank,
                       world_size=here.size)


def _restore_rng(state: dict, here: World) -> None:
    """The torch RNG of the saved epoch: a single process's, or under torchrun each rank's own (a
    run resumed with another number of processes gives the other ranks fresh streams)."""
    import torch

    ranks = state.get("torch_rng_ranks")
    if here.distributed and ranks is not None and len(ranks) == here.size:
        torch.set_rng_state(ranks[here.rank].cpu())
    elif here.rank == 0:
        torch.set_rng_state(state["torch_rng"].cpu())


def _save_epoch(out: Path, board, model, optimizer, scheduler, record: dict, history: list[dict], best: dict,
                epochs: int, epoch: int, reconstruct: bool, shown, shown_idx, normalize, data_hash: str,
                cache_seconds: float | None, rng_states: list | None) -> None:
    """Rank 0's writes after an epoch: TensorBoard, the checkpoints, resume.pt, metrics.json."""
    import torch

    board.epoch(record, epoch)
    if reconstruct:
        board.reconstructions(model, shown, shown_idx, normalize, epoch)
    board.histograms(model, epoch)
    board.flush()

    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_atomic(weights, out / "checkpoints" / f"epoch-{epoch:03d}.pt")
    save_atomic(weights, out / "last.pt")
    if best["epoch"] == epoch:
        save_atomic(weights, out / "best.pt")
    state = {
        "epoch": epoch, "model": weights, "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "torch_rng": torch.get_rng_state(), "history": history, "best": best,
        "dataset_hash": data_hash,
    }
    if rng_states is not None:
        state["torch_rng_ranks"] = rng_states
    save_atomic(state, out / "resume.pt")
    write_json(out / "metrics.json", _metrics(history, best, epochs, cache_seconds, "running"))


def _finish_run(out: Path, board, model, config: TrainConfig, task: str, reconstruct: bool, shown, shown_idx,
                normalize, history: list[dict], best: dict | None, epochs: int, cache_seconds: float | None,
                run_info: dict) -> None:
    """Rank 0's writes at the end: reconstructions.png, the hyperparameters, the final metrics and run.json."""
    if reconstruct and history:
        originals = shown.images_at(shown_idx).cpu()
        recon = to_uint8(evaluate_rows(model, shown.subset(shown_idx), normalize, config.eval_batch_size))
        import torch

        mse = float(reconstruction_errors(torch.from_numpy(recon).float().div(255.0), originals).mean())
        from pipeline.viz import reconstruction_sheet

        title = (f"{out.name}: originals (top) and reconstructions, epoch {history[-1]['epoch']}, "
                 f"MSE {mse:.5f}, PSNR {psnr(mse):.1f} dB")
        reconstruction_sheet(originals.numpy(), recon, title=title).save(out / "reconstructions.png")
    final = history[-1] if history else {}
    board.hparams(config, task, {k: final.get(k) for k in ("train_loss", "train_accuracy", "val_loss",
                                                              "val_accuracy", "val_psnr")})
    board.close()

    write_json(out / "metrics.json", _metrics(history, best, epochs, cache_seconds, "complete"))
    run_info.update(status="complete", finished=now_iso(), best=best)
    write_json(out / "run.json", run_info)


def _better(best: dict | None, record: dict, reconstruct: bool) -> dict:
    """The best epoch so far: highest validation (else training) accuracy; lowest error for an autoencoder."""
    if reconstruct:
        validated = record["val_loss"] is not None
        score = -(record["val_loss"] if validated else record["train_loss"])
        basis = "val_loss (mean squared error)" if validated else "train_loss (mean squared error, no validation)"
    else:
        validated = record["val_accuracy"] is not None
        score = record["val_accuracy"] if validated else record["train_accuracy"]
        basis = "val_accuracy" if validated else "train_accuracy (no validation)"
    if best is None or score >= best["score"]:
        return {"epoch": record["epoch"], "score": score, "val_accuracy": record["val_accuracy"],
                "val_loss": record["val_loss"], "basis": basis}
    return best


def _epoch_line(record: dict, epochs: int) -> str:
    if record["train_accuracy"] is None:  # an autoencoder: errors, no accuracy
        val = (f", val MSE {record['val_loss']:.5f} (PSNR {record['val_psnr']:.1f} dB)"
               if record["val_loss"] is not None else "")
        return (f"epoch {record['epoch']}/{epochs}: train MSE {record['train_loss']:.5f}{val}, "
                f"{record['samples_per_second']:.0f} samples/s")
    val = f", val acc {record['val_accuracy']:.4f}" if record["val_accuracy"] is not None else ""
    return (f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
            f"train acc {record['train_accuracy']:.4f}{val}, {record['samples_per_second']:.0f} samples/s")


class Board:
    """What the run shows in TensorBoard (`tensorboard --logdir RUN/tensorboard`), one method per panel.

    Scalars per epoch; the model graph once; weight and gradient histograms every `histogram_every`
    epochs; the first batch of each epoch as the model saw it (after augmentation); the validation
    confusion matrix (classifiers) or reconstructions (autoencoders) per epoch; the hyperparameters
    with the final metrics at the end (the HPARAMS tab).
    """

    def __init__(self, logdir: Path, config: TrainConfig, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(logdir), purge_step=purge_step)
        self.config = config

    def graph(self, model, example) -> None:
        """The model graph, traced from one forward pass on `example` (a normalized batch)."""
        if not self.config.log_graph or len(example) == 0:
            return
        import warnings

        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings():  # add_graph traces with torch.jit, which warns it is deprecated
                warnings.simplefilter("ignore", FutureWarning)
                self.writer.add_graph(model, example)
        finally:
            model.train(was_training)

    def batch(self, x, epoch: int) -> None:
        """The first `log_images` images of a training batch, as the model got them (uint8, augmented)."""
        if self.config.log_images:
            self.writer.add_images("batch/train (augmented)" if self.config.augment else "batch/train",
                                   x[:self.config.log_images].float().div(255.0).cpu(), epoch)

    def epoch(self, record: dict, epoch: int) -> None:
        self.writer.add_scalar("loss/train", record["train_loss"], epoch)
        if record["train_accuracy"] is not None:
            self.writer.add_scalar("accuracy/train", record["train_accuracy"], epoch)
        self.writer.add_scalar("lr", record["lr"], epoch)
        if record["val_loss"] is not None:
            self.writer.add_scalar("loss/val", record["val_loss"], epoch)
        if record["val_accuracy"] is not None:
            self.writer.add_scalar("accuracy/val", record["val_accuracy"], epoch)
        if record.get("val_psnr") is not None:
            self.writer.add_scalar("psnr/val", record["val_psnr"], epoch)

    def confusion(self, logits, data: Rows, classes: list[str], epoch: int) -> None:
        """The validation confusion matrix of this epoch as an image."""
        from pipeline.evaluate import confusion_matrix

        self.confusion_counts(confusion_matrix(data.labels.cpu().numpy(), logits.argmax(1).numpy(), len(classes)),
                              classes, epoch)

    def confusion_counts(self, cm: np.ndarray, classes: list[str], epoch: int) -> None:
        """A confusion matrix (rows true, columns predicted) as this epoch's image."""
        from pipeline.viz import confusion_image

        self.writer.add_image("confusion/val", np.asarray(confusion_image(cm, classes)), epoch, dataformats="HWC")

    def reconstructions(self, model, data: Rows, idx, normalize, epoch: int) -> None:
        """Originals (top) and this epoch's reconstructions (bottom) of a few images."""
        import torch

        if not self.config.log_images or len(idx) == 0:
            return
        originals = data.images_at(idx).float().div(255.0).cpu()
        recon = evaluate_rows(model, data.subset(idx), normalize, len(idx)).clamp(0.0, 1.0)
        self.writer.add_images("reconstructions", torch.cat([originals, recon]), epoch)

    def histograms(self, model, epoch: int) -> None:
        """Every parameter's values and its last gradient (the epoch's last batch)."""
        every = self.config.histogram_every
        if not every or epoch % every:
            return
        for name, param in model.named_parameters():
            self._histogram(f"weights/{name}", param, epoch)
            if param.grad is not None:
                self._histogram(f"gradients/{name}", param.grad, epoch)

    def _histogram(self, tag: str, values, epoch: int, bins: int = 30) -> None:
        """One histogram, counted with torch.histc: about 10x faster than `add_histogram`'s NumPy binning,
        which would cost a short run a noticeable share of its time."""
        import torch

        flat = values.detach().float().flatten().cpu()
        low, high = float(flat.min()), float(flat.max())
        if high <= low:  # a constant tensor (a fresh bias): one narrow bucket
            high = low + max(abs(low), 1.0) * 1e-6
        counts = torch.histc(flat, bins=bins, min=low, max=high)
        limits = torch.linspace(low, high, bins + 1)[1:]
        self.writer.add_histogram_raw(tag, min=low, max=high, num=flat.numel(), sum=float(flat.sum()),
                                      sum_squares=float(flat.pow(2).sum()), bucket_limits=limits.tolist(),
                                      bucket_counts=counts.tolist(), global_step=epoch)

    def hparams(self, config: TrainConfig, task: str, metrics: dict[str, float | None]) -> None:
        """The config next to the final metrics (HPARAMS tab); values TensorBoard cannot show become text."""
        hp: dict[str, Any] = {"task": task}
        for key, value in config.to_dict().items():
            hp[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
        final = {f"final/{k}": float(v) for k, v in metrics.items() if v is not None}
        self.writer.add_hparams(hp, final, run_name=".")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _metrics(history: list[dict], best: dict | None, epochs: int, cache_seconds: float | None, status: str) -> dict:
    total = sum(h["train_seconds"] for h in history)
    samples = sum(h["samples_per_second"] * h["train_seconds"] for h in history)
    return {
        "status": status,
        "epochs_planned": epochs,
        "epochs_done": len(history),
        "best": best,
        "final": history[-1] if history else None,
        "train_seconds": total,
        "train_cpu_seconds": sum(h.get("train_cpu_seconds", 0.0) for h in history),
        "samples_per_second": samples / total if total > 0 else 0.0,
        "first_reaching_val_accuracy": _first_reaching(history),
        "cache_build_seconds": cache_seconds,
        "history": history,
    }


def resume_config(out: Path, options: dict[str, Any]) -> TrainConfig:
    """The run's own config.yaml; a resume may change only the device and the thread count.

    `options` are the config values the user gave explicitly on the command line.
    """
    saved = load_config(config_file=Path(out) / "config.yaml")
    changed = sorted(k for k, v in options.items()
                     if k not in ("device", "threads") and v is not None and v != getattr(saved, k, v))
    if changed:
        raise UsageError(
            f"{out}: --resume continues the run with its saved config; these options differ: {', '.join(changed)}",
            fix="drop those options, or start a new run in another --out",
        )
    keep = {k: options[k] for k in ("device", "threads") if options.get(k) is not None}
    return load_config(config_file=Path(out) / "config.yaml", options=keep)


def load_run_info(run: str | os.PathLike) -> dict[str, Any]:
    """run.json of a run folder; a clear error when `run` is not one."""
    run = Path(run)
    if not run.is_dir():
        raise UsageError(f"{run}: no such run folder", fix="train one with `pipeline train DATASET --out RUN`")
    path = run / "run.json"
    if not path.is_file():
        raise UsageError(f"{run}: not a run folder (no run.json)", fix="point at the --out folder of `pipeline train`")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})", fix="re-run `pipeline train`") from exc
    if info.get("format") != RUN_FORMAT:
        raise DataError(path, "", field="format", expected=repr(RUN_FORMAT), got=info.get("format"))
    return info
