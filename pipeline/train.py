"""Train NumberModel on a classification dataset: a loop you can read top to bottom.

    1. open the dataset (a canonical dataset, or an ImageFolder tree imported on the fly)
    2. decode it once into the uint8 tensor cache (`pipeline.tensor_cache`)
    3. pick the rows of the train and validation splits and the normalization
    4. build the model, optimizer and schedule; restore them when resuming
    5. per epoch: shuffle by an index permutation, gather uint8 batches, normalize them as tensors,
       step; evaluate on the validation split; write checkpoints, TensorBoard scalars, metrics.json

The run folder::

    config.yaml              the resolved config (train again with --config RUN/config.yaml)
    run.json                 classes, model variant, preprocessing (size, grayscale, mean/std, background)
    metrics.json             per-epoch history, best epoch, throughput
    checkpoints/epoch-NNN.pt model state_dict after each epoch
    best.pt, last.pt         model state_dicts (best validation accuracy; last epoch)
    resume.pt                model, optimizer, scheduler and RNG state of the last finished epoch
    tensorboard/             loss and accuracy (train/val), learning rate, sample images

Everything in a checkpoint is tensors, numbers and strings: they load with `weights_only=True`.
"""

from __future__ import annotations

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

from pipeline.config import TrainConfig, dump_yaml, load_config
from pipeline.core import ui
from pipeline.core.dataset import Dataset, is_dataset, load_dataset, now_iso
from pipeline.core.errors import DataError, UsageError
from pipeline.core.paths import atomic_write_text
from pipeline.core.rng import derive_seed

RUN_FORMAT = "pipeline-run"
RUN_VERSION = 1
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the seed's Normalize((0.1307,), (0.3081,))
THRESHOLDS = (0.97, 0.98, 0.99, 0.995)  # metrics.json records when validation accuracy first reached each


# --------------------------------------------------------------------------------------------
# Data: the dataset, its rows, its preprocessing
# --------------------------------------------------------------------------------------------


def open_classification_dataset(path: str | os.PathLike, *, purpose: str = "train") -> Dataset:
    """A classification dataset at `path`; an ImageFolder tree is imported into the cache first."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such dataset folder",
                         fix="check the path, or create one with `pipeline fetch` or `pipeline import`")
    if is_dataset(path):
        dataset = load_dataset(path)
    else:
        dataset = _import_tree(path)
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
    dataset, report = import_dataset("imagefolder", src, dest)
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


def check_trainable(dataset: Dataset) -> None:
    """Refuse datasets that cannot train a classifier: empty, a single class, unlabelled samples."""
    if not dataset.samples:
        raise UsageError(f"{dataset.root}: the dataset is empty", fix="import or fetch some images first")
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
        mean, std = channel_stats(cache.images, train_rows)
        rule = f"mean/std of the {len(train_rows)} training images ({reason})"
    background = "light" if border_level(cache.images, train_rows) >= 128 else "dark"
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


def setup_torch(config: TrainConfig):
    """Pick the device and set the thread count (`threads: 0` = `auto_threads()`)."""
    import torch

    torch.set_num_threads(config.threads or auto_threads())
    try:
        torch.set_num_interop_threads(1)  # NumberModel runs one op at a time; extra pools only contend
    except RuntimeError:
        pass  # already set in this process
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {config.device}: no CUDA device here", fix="use --device auto or --device cpu")
    return torch.device(config.device)


def make_model(config: TrainConfig, in_channels: int, num_classes: int, device):
    import torch

    from pipeline.model import build_model

    torch.manual_seed(derive_seed(config.seed, "init"))
    model = build_model(config.variant, in_channels, num_classes).to(device)
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


def make_augmenter(config: TrainConfig, classes: list[str]):
    """The online augmenter for `config.augment`, or None (the fast path without augmentation)."""
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
    return OnlineAugmenter(config.augment, classes=list(classes), seed=derive_seed(config.seed, "augment"))


# --------------------------------------------------------------------------------------------
# Batches: uint8 rows in memory (or memory-mapped), gathered by index
# --------------------------------------------------------------------------------------------


class Rows:
    """The uint8 images, hard labels and (optional) soft targets of some cache rows, as tensors.

    When the images fit comfortably in RAM (or on the GPU) they are copied there once; otherwise
    each batch is gathered from the memory-mapped cache (rows sorted for sequential reads).
    """

    def __init__(self, cache, rows: np.ndarray, device, *, soft: bool) -> None:
        import torch

        self.n = len(rows)
        self.device = device
        self.labels = torch.from_numpy(cache.labels[rows]).to(device)
        self.targets = torch.from_numpy(cache.targets(rows)).to(device) if soft else None
        nbytes = self.n * int(np.prod(cache.images.shape[1:]))
        if nbytes <= _memory_budget():
            self.images = torch.from_numpy(np.ascontiguousarray(cache.images[rows])).to(device)
            self._mapped = None
        else:
            self.images = None
            self._mapped = (cache.images, rows)

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


def train_one_epoch(model, optimizer, scheduler, data: Rows, normalize, config: TrainConfig, epoch: int,
                    step: int, augmenter=None, channels_last: bool = False) -> tuple[dict[str, float], int]:
    """One pass over `data` in a fresh permutation; returns (loss/accuracy/throughput, next global step)."""
    import torch
    import torch.nn.functional as F

    model.train()
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "shuffle", epoch))
    order = torch.randperm(data.n, generator=generator)
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.device)
    correct = torch.zeros((), dtype=torch.int64, device=data.device)
    started = time.perf_counter()
    batches = range(0, data.n, config.batch_size)
    for start in ui.progress(batches, total=len(batches), desc=f"epoch {epoch}", unit="batch"):
        idx = order[start:start + config.batch_size]
        x = data.images_at(idx)
        hard = data.labels[idx.to(data.labels.device)]
        target = hard if data.targets is None else data.targets[idx.to(data.targets.device)]
        if augmenter is not None:
            x, target = augmenter(x, target, step=step)
            x, target = x.to(data.device), target.to(data.device)
        x = normalize(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss = F.cross_entropy(logits, target, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        with torch.no_grad():
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == hard).sum()
    seconds = time.perf_counter() - started
    return {
        "train_loss": float(loss_sum) / max(1, data.n),
        "train_accuracy": int(correct) / max(1, data.n),
        "train_seconds": seconds,
        "samples_per_second": data.n / seconds if seconds > 0 else 0.0,
    }, step


def evaluate_rows(model, data: Rows, normalize, batch_size: int, channels_last: bool = False):
    """Logits (CPU, float32) of every row of `data`, in order, without gradients."""
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


def loss_and_accuracy(logits, data: Rows) -> tuple[float, float]:
    import torch.nn.functional as F

    if data.n == 0:
        return float("nan"), float("nan")
    target = data.labels.cpu() if data.targets is None else data.targets.cpu()
    loss = float(F.cross_entropy(logits, target))
    accuracy = float((logits.argmax(1) == data.labels.cpu()).float().mean())
    return loss, accuracy


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


def prepare_run_folder(out: Path, resume: bool) -> bool:
    """Make `out` ready; True when there is a resumable state to continue from."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is a file", fix="choose another --out")
    if resume:
        if not is_run(out):
            raise UsageError(f"{out}: no run to resume (no run.json)", fix="start it without --resume")
        if not (out / "resume.pt").is_file():
            ui.info(f"{out}: interrupted before its first epoch finished; starting it again")
            return False
        return True
    if out.is_dir() and any(out.iterdir()):
        if not is_run(out):
            raise UsageError(f"{out}: exists, is not empty and is not a run folder; refusing to replace it",
                             fix="choose another --out, or remove that folder")
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
        out[f"{t:g}"] = {"epoch": hit["epoch"], "train_seconds": hit["elapsed_train_seconds"]} if hit else None
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


def train(data_path: str | os.PathLike, out: str | os.PathLike, config: TrainConfig | None = None, *,
          resume: bool = False) -> TrainResult:
    """Train NumberModel on the dataset at `data_path` into the run folder `out` (see the module doc)."""
    import torch

    out = Path(out)
    if config is None:
        config = resume_config(out, {}) if resume and is_run(out) else load_config()

    # 1-2. the data, decoded once
    device = setup_torch(config)
    dataset = open_classification_dataset(data_path)
    check_trainable(dataset)
    from pipeline.tensor_cache import load_or_build

    cache = load_or_build(dataset, size=config.image_size, grayscale=config.grayscale)

    # 3. rows and preprocessing
    train_rows, val_rows, notes = choose_rows(cache, config.val_split)
    for note in notes:
        ui.info(note)
    pre = choose_preprocess(dataset, cache, train_rows, config)
    normalize = normalizer(pre, device)
    augmenter = make_augmenter(config, dataset.classes)
    soft = cache.soft is not None or augmenter is not None
    train_data = Rows(cache, train_rows, device, soft=soft)
    val_data = Rows(cache, val_rows, device, soft=cache.soft is not None) if val_rows is not None else None

    # 4. model, optimizer, schedule (restored when resuming)
    epochs = config.resolved_epochs(len(train_rows))
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    model = make_model(config, pre.channels, len(dataset.classes), device)
    optimizer = make_optimizer(config, model)
    scheduler = make_scheduler(config, optimizer, epochs * steps_per_epoch)
    resuming = prepare_run_folder(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    history: list[dict] = []
    best: dict | None = None
    start_epoch = 1
    if resuming:
        state = torch.load(out / "resume.pt", map_location=device, weights_only=True)
        if state["dataset_hash"] != dataset.content_hash:
            raise UsageError(f"{data_path}: not the dataset this run was trained on (its content changed)",
                             fix="resume with the same dataset, or start a new run without --resume")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        history, best = list(state["history"]), state["best"]
        start_epoch = int(state["epoch"]) + 1
        ui.info(f"resuming {out} after epoch {state['epoch']} of {epochs}")
    else:
        atomic_write_text(out / "config.yaml", dump_yaml(config))
    run_info = {
        "format": RUN_FORMAT, "version": RUN_VERSION, "status": "running",
        "classes": list(dataset.classes), "variant": config.variant, "in_channels": pre.channels,
        "preprocess": pre.to_json(),
        "dataset": {"path": str(dataset.root), "content_hash": dataset.content_hash},
        "splits": {"train": int(len(train_rows)), "val": int(len(val_rows)) if val_rows is not None else 0},
        "epochs": epochs, "device": str(device), "threads": torch.get_num_threads(),
        "started": load_run_info(out).get("started", now_iso()) if resuming else now_iso(), "finished": None,
    }
    if resuming:
        run_info["resumed"] = now_iso()
    write_json(out / "run.json", run_info)

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"), purge_step=start_epoch if resuming else None)
    if not resuming and config.log_images:
        writer.add_images("samples/train", train_data.images_at(torch.arange(min(config.log_images, train_data.n)))
                          .float().div(255.0).cpu(), 0)

    # 5. the epochs
    channels_last = config.channels_last
    step = (start_epoch - 1) * steps_per_epoch
    elapsed = history[-1]["elapsed_train_seconds"] if history else 0.0
    for epoch in range(start_epoch, epochs + 1):
        record, step = train_one_epoch(model, optimizer, scheduler, train_data, normalize, config, epoch, step,
                                       augmenter, channels_last)
        elapsed += record["train_seconds"]
        record = {"epoch": epoch, **record, "elapsed_train_seconds": elapsed,
                  "lr": optimizer.param_groups[0]["lr"], "val_loss": None, "val_accuracy": None}
        if val_data is not None:
            logits = evaluate_rows(model, val_data, normalize, config.eval_batch_size, channels_last)
            record["val_loss"], record["val_accuracy"] = loss_and_accuracy(logits, val_data)
        history.append(record)

        writer.add_scalar("loss/train", record["train_loss"], epoch)
        writer.add_scalar("accuracy/train", record["train_accuracy"], epoch)
        writer.add_scalar("lr", record["lr"], epoch)
        if record["val_accuracy"] is not None:
            writer.add_scalar("loss/val", record["val_loss"], epoch)
            writer.add_scalar("accuracy/val", record["val_accuracy"], epoch)
        writer.flush()

        weights = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_atomic(weights, out / "checkpoints" / f"epoch-{epoch:03d}.pt")
        save_atomic(weights, out / "last.pt")
        score = record["val_accuracy"] if record["val_accuracy"] is not None else record["train_accuracy"]
        if best is None or score >= best["score"]:
            best = {"epoch": epoch, "score": score, "val_accuracy": record["val_accuracy"],
                    "basis": "val_accuracy" if record["val_accuracy"] is not None else "train_accuracy (no validation)"}
            save_atomic(weights, out / "best.pt")
        save_atomic({
            "epoch": epoch, "model": weights, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "torch_rng": torch.get_rng_state(), "history": history, "best": best,
            "dataset_hash": dataset.content_hash,
        }, out / "resume.pt")
        write_json(out / "metrics.json", _metrics(history, best, epochs, cache.build_seconds, "running"))
        val_text = f", val acc {record['val_accuracy']:.4f}" if record["val_accuracy"] is not None else ""
        ui.info(f"epoch {epoch}/{epochs}: loss {record['train_loss']:.4f}, train acc {record['train_accuracy']:.4f}"
                f"{val_text}, {record['samples_per_second']:.0f} samples/s")
    writer.close()

    write_json(out / "metrics.json", _metrics(history, best, epochs, cache.build_seconds, "complete"))
    run_info.update(status="complete", finished=now_iso(), best=best)
    write_json(out / "run.json", run_info)
    return TrainResult(out=out, epochs=epochs, history=history, best=best, notes=notes,
                       cache_seconds=cache.build_seconds, device=str(device))


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
