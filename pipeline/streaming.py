"""Training streamed from WebDataset shards: no dataset folder, no tensor cache, memory bounded by a
shuffle buffer.

    pipeline train 'shards/train-{000000..000009}.tar' --val 'shards/val-000000.tar' --out RUN
    pipeline train shards/ --out RUN      # the folder `pipeline export --format webdataset` wrote

The data is a list of local shard files: paths and brace patterns (``{000000..000099}`` numbered
with the same zero padding, ``{a,b}`` alternatives), several separated by spaces, or an export
folder, whose `dataset.json` names the shards of each split (train from `train`, else the unsplit
ones; validation from `val_split`). The class names come from the `dataset.json` beside the shards,
else the class indices are the names. Only local files: a URL is refused with a fix (fetch the
shards first).

How a run goes:

1. one pass over the training shards counts the samples of each shard and measures the decoded
   images for the normalization rule of `pipeline.train` (MNIST's mean/std for 28x28 grayscale data,
   else the training images' own), as the tensor cache build does for a dataset;
2. each epoch the shards are shuffled from (seed, epoch); under torchrun rank r takes every
   world-size-th shard of that order (an error when there are fewer shards than processes), so
   each rank reads its own shards; within a rank samples pass through a shuffle buffer of
   `SHUFFLE_BUFFER` samples seeded from (seed, epoch, rank);
3. every image is decoded and resized as the tensor cache does (`tensor_cache.to_array`) by an
   IterableDataset (`ShardStream`) that a DataLoader batches; batches of
   `batch_size` (under torchrun `batch_size / world size` per process, which must divide) train the
   model; every rank takes the same number of steps in an epoch (the fewest any rank's shards
   give; the rest of a longer share waits for a later epoch's deal), so DDP never waits for a
   rank that has run out;
4. validation streams the validation shards: each rank decodes every world-size-th sample and the
   sums are added across ranks.

The run folder is the same as for a dataset (checkpoints, TensorBoard, metrics, resume.pt); the
shard names and sizes stand for the dataset's content hash, so `--resume` refuses other shards.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset

from pipeline import distributed
from pipeline.config import TrainConfig
from pipeline.core import failpoints, ui
from pipeline.core.dataset import is_dataset, now_iso
from pipeline.core.errors import DataError, UsageError
from pipeline.core.rng import derive_seed
from pipeline.distributed import World
from pipeline.formats import webdataset as wds_format

SHUFFLE_BUFFER = 4096  # samples held for shuffling within a rank (a few MB of 32x32 uint8 images)
MAX_SHARDS = 1_000_000  # names one pattern may expand to
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")


# --------------------------------------------------------------------------------------------
# Which shards
# --------------------------------------------------------------------------------------------


def is_stream(data: str | object) -> bool:
    """Whether `data` names shards (a .tar, a pattern, a URL of one, or an export folder of shards)."""
    text = str(data)
    path = Path(text)
    if path.is_dir():  # a dataset, an ImageFolder tree, or an export folder of shards
        return not is_dataset(path) and wds_format.read_manifest(path) is not None
    return any(word.endswith(".tar") or (".tar" in word and "{" in word) for word in text.split())


def expand_braces(text: str) -> list[str]:
    """`text` with its brace patterns expanded: ``{000..003}`` (zero padding kept) and ``{a,b}``."""
    m = _BRACE.search(text)
    if m is None:
        return [text]
    body = m.group(1)
    r = _RANGE.match(body)
    if r:
        low, high = int(r.group(1)), int(r.group(2))
        width = len(r.group(1)) if r.group(1).startswith("0") else 0
        if high < low:
            raise UsageError(f"{text}: the range {{{body}}} counts down", fix="write {LOW..HIGH}, e.g. {000000..000009}")
        if high - low + 1 > MAX_SHARDS:
            raise UsageError(f"{text}: {{{body}}} names {high - low + 1:,} shards, over {MAX_SHARDS:,}",
                             fix="name fewer shards")
        options = [str(i).zfill(width) for i in range(low, high + 1)]
    else:
        options = body.split(",")
    out: list[str] = []
    for option in options:
        out += expand_braces(text[:m.start()] + option + text[m.end():])
        if len(out) > MAX_SHARDS:
            raise UsageError(f"{text}: names more than {MAX_SHARDS:,} shards", fix="name fewer shards")
    return out


def expand(spec: str, what: str = "shards") -> list[Path]:
    """The shard files `spec` names (space-separated paths and patterns), each checked to exist."""
    paths: list[Path] = []
    for word in str(spec).split():
        if "://" in word:
            raise UsageError(f"{word}: training streams local shard files only",
                             fix="download the shards first (e.g. pipeline fetch url URL --out DIR, or curl), "
                                 "then name the local files")
        for name in expand_braces(word):
            path = Path(name)
            if not path.is_file():
                raise UsageError(f"{name}: no such shard file ({what})", fix="check the path and the pattern")
            paths.append(path)
    if not paths:
        raise UsageError(f"{spec!r}: names no shard files ({what})", fix="e.g. 'shards/train-{000000..000009}.tar'")
    return paths


@dataclass
class Source:
    """The shards of a run and what `dataset.json` beside them says."""

    train: list[Path]
    val: list[Path]
    classes: list[str] | None  # None: the class indices are the names
    spec: str  # as the user named it (run.json)
    notes: list[str] = field(default_factory=list)

    def content_hash(self) -> str:
        """Stands for the dataset's content hash (resume refuses other shards): names and sizes."""
        h = hashlib.sha256()
        for part, paths in (("train", self.train), ("val", self.val)):
            for p in paths:
                h.update(f"{part}\t{p.name}\t{p.stat().st_size}\n".encode())
        h.update(repr(self.classes).encode())
        return h.hexdigest()


def resolve(data: str | object, val: str | None, val_split: str | None) -> Source:
    """The training and validation shards of `data` (and `val`), and the class names."""
    path = Path(str(data))
    notes: list[str] = []
    if path.is_dir():
        manifest = wds_format.read_manifest(path)
        assert manifest is not None  # (is_stream)
        listed = [(s.get("file"), s.get("split")) for s in manifest.get("shards", []) if isinstance(s, dict)]
        by_split: dict[str | None, list[Path]] = {}
        for name, split in listed:
            if isinstance(name, str) and "/" not in name and (path / name).is_file():
                by_split.setdefault(split, []).append(path / name)
        train = by_split.get("train") or by_split.get(None) or []
        if not train:
            raise UsageError(f"{path}: no training shards (no train or unsplit shards in its dataset.json)",
                             fix="export a dataset with a train split, or name the shards")
        if not by_split.get("train"):
            notes.append(f"no `train` shards: training on the {len(train)} unsplit shards")
        val_paths = expand(val, "--val") if val else list(by_split.get(val_split, [])) if val_split else []
        if val_split and not val_paths and not val:
            notes.append(f"no `{val_split}` shards: training without validation")
    else:
        train = expand(str(data))
        manifest = wds_format.read_manifest(train[0].parent)
        val_paths = expand(val, "--val") if val else []
        if not val:
            notes.append("no --val shards: training without validation")
    classes = list(manifest["classes"]) if manifest is not None else None
    return Source(train=train, val=val_paths, classes=classes, spec=" ".join(str(data).split()), notes=notes)


# --------------------------------------------------------------------------------------------
# Reading samples
# --------------------------------------------------------------------------------------------


def shard_samples(path: Path) -> Iterator[wds_format.ShardSample]:
    """The samples of one shard file; a bad member or a damaged shard is one `DataError`."""
    with open(path, "rb") as fh:
        yield from wds_format.iter_shard(fh, str(path))


def decode(item: wds_format.ShardSample, size: int, grayscale: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """The sample's image as the model sees it before normalization (uint8 C x size x size, the
    tensor cache's `to_array`) and the stored image's (width, height)."""
    from pipeline.core.images import open_image_bytes
    from pipeline.tensor_cache import to_array

    image = item.image()
    if image is None:
        raise DataError(item.where, "no image member", fix="write KEY.png or KEY.jpg beside KEY.cls")
    img = open_image_bytes(image[1], item.where)
    return to_array(img, size, grayscale), img.size


def label_of(item: wds_format.ShardSample, classes: list[str] | None) -> int:
    """The class index of KEY.cls; an error for an unlabelled sample or an index outside the classes."""
    raw = item.members.get("cls")
    if raw is None:
        raise DataError(item.where, "sample without a label (no .cls member)", field="cls",
                        fix="label it, or leave it out of the training shards")
    text = raw.decode("ascii", "replace").strip()
    if not text.isdigit() or (classes is not None and int(text) >= len(classes)):
        limit = f"below {len(classes)}" if classes is not None else ">= 0"
        raise DataError(item.where + ".cls", "", expected=f"a class index {limit}", got=text[:40],
                        fix="re-export the shards with their dataset.json")
    return int(text)


@dataclass
class Survey:
    """One pass over the training shards: counts, the normalization's measures, the classes seen."""

    counts: dict[str, int]  # shard path -> samples
    total: float = 0.0  # channel sums over every pixel (in [0, 1] units)
    total_sq: float = 0.0
    pixels: int = 0
    border: float = 0.0
    border_pixels: int = 0
    all_28: bool = True
    top_label: int = -1
    sums: np.ndarray | None = None  # per channel
    sums_sq: np.ndarray | None = None


def survey(shards: list[Path], config: TrainConfig, classes: list[str] | None, here: World) -> Survey:
    """Count every shard's samples (every rank reads every shard's members) and measure the images
    (rank r decodes every world-size-th sample; the sums are added across ranks)."""
    import torch

    channels = 1 if config.grayscale else 3
    sums = np.zeros(channels)
    sums_sq = np.zeros(channels)
    pixels = border = border_pixels = 0
    all_28, top = True, -1
    counts: dict[str, int] = {}
    position = 0
    bar = ui.progress(total=len(shards), desc="measure shards (once)", unit="shard")
    with bar:
        for shard in shards:
            n = 0
            for item in shard_samples(shard):
                label = label_of(item, classes)
                n += 1
                position += 1
                if (position - 1) % here.size != here.rank:
                    continue
                arr, source_size = decode(item, config.image_size, config.grayscale)
                top = max(top, label)
                block = arr.astype(np.float64) / 255.0
                sums += block.sum(axis=(1, 2))
                sums_sq += (block * block).sum(axis=(1, 2))
                pixels += arr.shape[1] * arr.shape[2]
                ring = np.concatenate([arr[:, 0, :], arr[:, -1, :], arr[:, 1:-1, 0], arr[:, 1:-1, -1]], axis=1)
                border += float(ring.sum())
                border_pixels += ring.size
                all_28 &= source_size == (28, 28)
            counts[str(shard)] = n
            bar.update(1)
    packed = torch.tensor([*sums, *sums_sq, pixels, border, border_pixels, 0.0 if all_28 else 1.0],
                          dtype=torch.float64)
    distributed.all_sum(here, packed)
    tops = distributed.gather(here, top)
    return Survey(counts=counts, sums=packed[:channels].numpy(), sums_sq=packed[channels:2 * channels].numpy(),
                  pixels=int(packed[2 * channels]), border=float(packed[2 * channels + 1]),
                  border_pixels=int(packed[2 * channels + 2]), all_28=float(packed[2 * channels + 3]) == 0.0,
                  top_label=max(tops))


def preprocess_of(config: TrainConfig, found: Survey, n_train: int):
    """`pipeline.train`'s normalization rule on the surveyed training images."""
    from pipeline.train import preprocess_rule

    def stats() -> tuple[list[float], list[float]]:
        if found.pixels == 0:
            c = 1 if config.grayscale else 3
            return [0.5] * c, [0.5] * c
        mean = found.sums / found.pixels
        std = np.sqrt(np.maximum(found.sums_sq / found.pixels - mean * mean, 1e-12))
        return [float(m) for m in mean], [float(max(s, 1e-3)) for s in std]

    mnist_like = config.grayscale and n_train > 0 and found.all_28
    return preprocess_rule(config, mnist_like, stats,
                           lambda: found.border / found.border_pixels if found.border_pixels else 0.0, n_train)


def deal(shards: list[Path], seed: int, epoch: int, here: World) -> list[Path]:
    """This rank's shards for `epoch`: the shards shuffled from (seed, epoch), every world-size-th."""
    order = np.random.default_rng(derive_seed(seed, "shards", epoch)).permutation(len(shards))
    return distributed.shards_for(here, [shards[i] for i in order])


def steps_in(epoch: int, shards: list[Path], counts: dict[str, int], batch: int, seed: int, here: World) -> int:
    """Steps every rank takes in `epoch`: the fewest its shards give any rank (all of them in one process)."""
    fewest = None
    for rank in range(here.size):
        other = World(rank=rank, size=here.size, local_rank=0, local_size=1)
        n = sum(counts[str(p)] for p in deal(shards, seed, epoch, other))
        fewest = n if fewest is None else min(fewest, n)
    return math.ceil((fewest or 0) / batch)


class ShardStream(IterableDataset):
    """One epoch of a rank's training samples as an IterableDataset: (uint8 C x size x size array,
    class index) pairs, decoded as the tensor cache decodes, from `shards` in order through a
    shuffle buffer of `SHUFFLE_BUFFER` samples seeded from (seed, epoch, rank). Iterating it again
    gives the same order. Under DataLoader workers, worker w reads every num_workers-th shard
    (with its own buffer)."""

    def __init__(self, shards: list[Path], classes: list[str] | None, size: int, grayscale: bool, seed: int,
                 epoch: int, rank: int = 0) -> None:
        super().__init__()
        self.shards, self.classes, self.size, self.grayscale = list(shards), classes, size, grayscale
        self.seed, self.epoch, self.rank = seed, epoch, rank

    def samples(self, shards: list[Path]) -> Iterator[tuple[np.ndarray, int]]:
        for shard in shards:
            for item in shard_samples(shard):
                image = decode(item, self.size, self.grayscale)[0]
                yield np.array(image), label_of(item, self.classes)  # (a writable copy: torch takes it as it is)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        from torch.utils.data import get_worker_info

        worker = get_worker_info()
        shards = self.shards if worker is None else self.shards[worker.id::worker.num_workers]
        extra = () if worker is None else ("worker", worker.id)
        rng = np.random.default_rng(derive_seed(self.seed, "buffer", self.epoch, self.rank, *extra))
        buffer: list[tuple[np.ndarray, int]] = []
        for sample in self.samples(shards):
            if len(buffer) < SHUFFLE_BUFFER:
                buffer.append(sample)
                continue
            i = int(rng.integers(len(buffer)))
            buffer[i], sample = sample, buffer[i]
            yield sample
        order = rng.permutation(len(buffer))
        yield from (buffer[i] for i in order)


def stream_batches(shards: list[Path], classes: list[str] | None, config: TrainConfig, batch: int, steps: int,
                   seed: int, epoch: int, here: World):
    """The first `steps` batches (uint8 image tensors, int64 label tensors) of this rank's `ShardStream`."""
    from torch.utils.data import DataLoader

    stream = ShardStream(shards, classes, config.image_size, config.grayscale, seed, epoch, here.rank)
    return itertools.islice(DataLoader(stream, batch_size=batch), steps)


def validation_batches(shards: list[Path], classes: list[str] | None, config: TrainConfig,
                       here: World) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every world-size-th validation sample (this rank's), in shard order, in batches."""
    pending: list[tuple[np.ndarray, int]] = []
    position = 0
    for shard in shards:
        for item in shard_samples(shard):
            position += 1
            if (position - 1) % here.size != here.rank:
                continue
            pending.append((decode(item, config.image_size, config.grayscale)[0], label_of(item, classes)))
            if len(pending) == config.eval_batch_size:
                yield np.stack([p[0] for p in pending]), np.array([p[1] for p in pending], dtype=np.int64)
                pending = []
    if pending:
        yield np.stack([p[0] for p in pending]), np.array([p[1] for p in pending], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def train_stream(data, out: Path, config: TrainConfig, resume: bool, device, here: World, val: str | None):
    """`pipeline.train.train` on shards (see the module doc); returns its `TrainResult`."""
    import torch

    from pipeline import train as T
    from pipeline.model import model_task

    if model_task(config.variant) != "classification":
        raise UsageError(f"--variant {config.variant}: training from shards trains classifiers",
                         fix="import the shards (pipeline import webdataset DIR --out DS) and train on DS")
    if config.batch_size % here.size:
        raise UsageError(f"batch_size {config.batch_size} for {here.size} processes: streaming needs a global "
                         "batch that the processes share evenly", fix=f"use a multiple of {here.size}")
    batch = config.batch_size // here.size
    source = resolve(data, val, config.val_split)
    for note in source.notes:
        ui.info(note)
    started = time.perf_counter()
    found = survey(source.train, config, source.classes, here)
    survey_seconds = time.perf_counter() - started
    classes = source.classes or [str(i) for i in range(found.top_label + 1)]
    if len(classes) < 2:
        raise UsageError(f"{source.spec}: only one class ({', '.join(classes)}); a classifier needs at least two",
                         fix="add shards of other classes")
    n_train = sum(found.counts.values())
    if n_train == 0:
        raise UsageError(f"{source.spec}: the training shards hold no samples", fix="check the shards")
    pre = preprocess_of(config, found, n_train)
    normalize = T.normalizer(pre, device)
    augmenter = T.make_augmenter(config, classes, here.rank)
    content_hash = source.content_hash()

    epochs = config.resolved_epochs(n_train)
    steps = [steps_in(e, source.train, found.counts, batch, config.seed, here) for e in range(1, epochs + 1)]
    model = T.make_model(config, pre.channels, len(classes), device)
    if here.rank > 0:
        torch.manual_seed(derive_seed(config.seed, "rank", here.rank))
    optimizer = T.make_optimizer(config, model)
    scheduler = T.make_scheduler(config, optimizer, sum(steps))
    reads = tuple(sorted({p.parent for p in (*source.train, *source.val)}))
    wrong = UsageError(f"{source.spec}: not the shards this run was trained on",
                       fix="resume with the same shards, or start a new run without --resume")
    resuming, history, best, start_epoch = T.open_run(out, resume, reads, here, device, config, model, optimizer,
                                                      scheduler, content_hash, epochs, wrong)
    n_val = None
    run_info = {
        "format": T.RUN_FORMAT, "version": T.RUN_VERSION, "status": "running", "task": "classification",
        "classes": classes, "variant": config.variant, "in_channels": pre.channels,
        "model_options": {k: list(v) if isinstance(v, tuple) else v for k, v in config.model_options().items()},
        "preprocess": pre.to_json(),
        "dataset": {"path": source.spec, "content_hash": content_hash, "shards": {
            "train": [str(p) for p in source.train], "val": [str(p) for p in source.val]}},
        "splits": {"train": n_train, "val": 0},
        "epochs": epochs, "device": str(device), "threads": torch.get_num_threads(),
        "started": None, "finished": None,
    }
    if here.distributed:
        run_info.update(world_size=here.size, backend=distributed.backend(device))
    if here.main:
        run_info["started"] = T.load_run_info(out).get("started", now_iso()) if resuming else now_iso()
        if resuming:
            run_info["resumed"] = now_iso()
        T.write_json(out / "run.json", run_info)
    board = T.Board(out / "tensorboard", config, purge_step=start_epoch if resuming else None) if here.main \
        else T._NoBoard()
    net = model
    if here.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    step = sum(steps[:start_epoch - 1])
    elapsed = history[-1]["elapsed_train_seconds"] if history else 0.0
    for epoch in range(start_epoch, epochs + 1):
        with distributed.collective_errors(here, epoch - 1):
            mine = deal(source.train, config.seed, epoch, here)
            record, step = _epoch(net, optimizer, scheduler, mine, classes, config, batch, steps[epoch - 1],
                                  epoch, step, normalize, augmenter, device, here, board)
            elapsed += record["train_seconds"]
            record = {"epoch": epoch, **record, "elapsed_train_seconds": elapsed,
                      "lr": optimizer.param_groups[0]["lr"], "val_loss": None, "val_accuracy": None}
            if source.val:
                scores = _validate(model, source.val, classes, config, normalize, device, here)
                n_val = scores.pop("n")
                board.confusion_counts(scores.pop("confusion"), classes, epoch)
                record.update(scores)
            rng_states = distributed.gather(here, torch.get_rng_state()) if here.distributed else None
        history.append(record)
        best = T._better(best, record, False)
        if here.main:
            T._save_epoch(out, board, model, optimizer, scheduler, record, history, best, epochs, epoch, False,
                          None, None, normalize, content_hash, survey_seconds, rng_states)
        with distributed.collective_errors(here, epoch - 1):
            distributed.barrier(here)
        failpoints.hit("train.epoch")
        ui.info(T._epoch_line(record, epochs))
    if here.main:
        if n_val is not None:
            run_info["splits"]["val"] = n_val
        T._finish_run(out, board, model, config, "classification", False, None, None, normalize, history, best,
                      epochs, survey_seconds, run_info)
    return T.TrainResult(out=out, epochs=epochs, history=history, best=best, notes=source.notes,
                         cache_seconds=None, device=str(device), task="classification", rank=here.rank,
                         world_size=here.size)


def _epoch(net, optimizer, scheduler, shards: list[Path], classes: list[str] | None, config: TrainConfig,
           batch: int, steps: int, epoch: int, step: int, normalize, augmenter, device, here: World, board):
    """One epoch of `steps` batches from this rank's `shards`; sums over every rank."""
    import torch
    import torch.nn.functional as F

    from pipeline.train import optimizer_step

    net.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    seen = torch.zeros((), dtype=torch.float64, device=device)
    started = time.perf_counter()
    k = len(classes) if classes else 0
    batches = stream_batches(shards, classes, config, batch, steps, config.seed, epoch, here)
    for i, (images, labels) in enumerate(ui.progress(batches, total=steps, desc=f"epoch {epoch}", unit="batch")):
        x = images.to(device)
        hard = labels.to(device)
        target = hard
        if augmenter is not None:
            x, target = augmenter(x, F.one_hot(hard, k).float(), step=step)
            x, target = x.to(device), target.to(device)
        if i == 0:
            board.batch(x, epoch)
        x = normalize(x)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        output = net(x)
        loss = F.cross_entropy(output, target, label_smoothing=config.label_smoothing)
        optimizer_step(optimizer, scheduler, loss)
        step += 1
        with torch.no_grad():
            loss_sum += loss.detach() * len(hard)
            correct += (output.argmax(1) == hard).sum()
            seen += len(hard)
    sums = distributed.all_sum(here, torch.stack([loss_sum, correct, seen]).cpu())
    seconds = time.perf_counter() - started
    n = max(1.0, float(sums[2]))
    return {"train_loss": float(sums[0]) / n, "train_accuracy": float(sums[1]) / n, "train_seconds": seconds,
            "samples_per_second": float(sums[2]) / seconds if seconds > 0 else 0.0}, step


def _validate(model, shards: list[Path], classes: list[str], config: TrainConfig, normalize, device,
              here: World) -> dict:
    """Validation loss, accuracy and confusion matrix over every validation sample (sums across ranks)."""
    import torch
    import torch.nn.functional as F

    if here.distributed:
        import torch.distributed as dist

        for buffer in model.buffers():  # rank 0's batch-norm statistics, which its checkpoint holds
            dist.broadcast(buffer, src=0)
    model.eval()
    k = len(classes)
    loss_sum = correct = seen = 0.0
    cm = torch.zeros(k * k, dtype=torch.int64)
    with torch.no_grad():
        for images, labels in validation_batches(shards, classes, config, here):
            x = normalize(torch.from_numpy(images).to(device))
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x).float().cpu()
            hard = torch.from_numpy(labels)
            loss_sum += float(F.cross_entropy(logits, hard, reduction="sum"))
            predicted = logits.argmax(1)
            correct += float((predicted == hard).sum())
            seen += len(hard)
            cm += torch.bincount(hard * k + predicted, minlength=k * k)
    sums = distributed.all_sum(here, torch.tensor([loss_sum, correct, seen], dtype=torch.float64))
    distributed.all_sum(here, cm)
    n = max(1.0, float(sums[2]))
    return {"val_loss": float(sums[0]) / n, "val_accuracy": float(sums[1]) / n, "n": int(sums[2]),
            "confusion": cm.reshape(k, k).numpy()}
