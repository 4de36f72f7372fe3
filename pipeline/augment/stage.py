"""The offline `augment` stage: a new dataset with the originals plus N augmented copies.

Every copy's randomness comes from ``derive_seed(seed, "augment", sample id, copy)`` (partners
included), so the output does not depend on the order of work or on the number of worker
processes.

Copies of images up to 1024x1024 pixels (``--pack auto``) are stored in image packs
(`pipeline.core.packs`), their originals (up to 16 KiB) just before them: creating one file (and
syncing it before the commit) costs more than augmenting a 28x28 digit, about a quarter of the
time augmenting a 320x240 photo takes and a tenth of augmenting and re-encoding a 650x417 JPEG.
Larger images are written as files into the work folder.

Work goes out in batches of samples. The process that writes the output takes them in sample-id
order, writes the packed copies into packs and the records into `samples.jsonl`, so the bytes do
not depend on the number of workers; with more than one worker it also augments batches itself
whenever the next one to write is not finished (see `_Work`).

Work is resumable: everything is written into a persistent work folder next to the output
(``.NAME.augment-work``, the `DatasetWriter` workdir, packs included) and a state folder
(``.NAME.augment-state``): a worker process appends the packed copies of a batch to its spool
file, then one record per finished sample to its log (`_record`); the writing process packs the
copies it makes itself and logs their records once they are in the pack. A rerun with the same
inputs moves the interrupted run's packs into the state folder, re-checks the logged images'
hashes, skips what is logged and takes packed copies back from the spool or those packs. On
success the work folder is renamed into place and the state folder removed.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment import multi
from pipeline.augment.recipe import Recipe, load_recipe
from pipeline.augment.server import server_context
from pipeline.augment.single import Item, SingleOps, present_targets
from pipeline.core import ui
from pipeline.core.dataset import (
    IMAGES_DIR,
    SPLITS,
    Dataset,
    DatasetWriter,
    Obj,
    Sample,
    dumps_body,
    load_dataset,
    sample_line,
)
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import decode_array, stored_png
from pipeline.core.packs import MAX_BYTES, MAX_MEMBERS, PACK_SUFFIX, PACKS_DIR
from pipeline.core.paths import atomic_write_bytes, safe_stem, sha256_bytes
from pipeline.core.rng import SeededGenerator, derive_seed

AUG_SEP = "~aug"
PACKS_KEPT = "packs"  # in the state folder: an interrupted run's packs, read back by the rerun
ORIGINAL_PACK_MAX = 16 * 1024  # originals up to this size go into the pack with their copies, larger ones are linked
FSYNC_FILES_MAX = 256  # copies written as files: each fsynced in the background up to this many, then one sync
SYNC_EVERY = 8 << 20  # bytes of a pack written between background syncs of it
PACK_MODES = ("auto", "always", "never")
PACK_AUTO_PIXELS = 1024 * 1024  # --pack auto: copies of images up to this area go into packs
TINY_PNG_PIXELS = 32 * 32  # PNGs up to this area: stored, not deflated (see `encode`)
SMALL_PNG_PIXELS = 128 * 128  # PNGs up to this area: no row filters (faster and smaller on digits)
BATCH = 16  # samples per unit of work: warm caches, and resume loses at most one batch per worker
BATCH_MAX = 128  # ... for tiny images: up to this many samples,
BATCH_PIXELS = 256 * 28 * 28  # about this many augmented pixels per batch


def aug_id(sample_id: str, copy: int) -> str:
    """The id of copy `copy` (1-based) of `sample_id`."""
    return f"{sample_id}{AUG_SEP}{copy}"


# --------------------------------------------------------------------------------------------
# Images in and out
# --------------------------------------------------------------------------------------------


def encode(image: np.ndarray, ext: str) -> bytes:
    """PNG (lossless) or JPEG (quality 95) bytes; deterministic for the same pixels.

    PNGs of images up to 32x32 are stored without deflate compression (`stored_png`, ~5
    microseconds): compressing a 28x28 digit costs ~25 (zlib's set-up per stream), more than
    augmenting it, and saves ~470 of its 880 bytes. Up to 128x128: no row filters and run-length matching (faster and smaller on
    digit-like images than the defaults); larger: level 1.
    """
    import cv2

    if ext not in ("jpg", "jpeg") and image.shape[0] * image.shape[1] <= TINY_PNG_PIXELS:
        return stored_png(image)
    arr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if ext in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        area = image.shape[0] * image.shape[1]
        if area <= SMALL_PNG_PIXELS:
            options = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE,
                       cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        else:
            options = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        ok, buf = cv2.imencode(".png", arr, options)
    if not ok:
        raise DataError("image", "could not be encoded", got=image.shape)
    return buf.tobytes()


def out_ext(sample: Sample) -> str:
    """JPEG copies of JPEG images, PNG for everything else."""
    name = sample.image.rpartition("/")[2]
    return "jpg" if name.rpartition(".")[2].lower() in ("jpg", "jpeg") and "." in name else "png"


# --------------------------------------------------------------------------------------------
# The engine shared by the stage, the preview and the tests
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    item: Item
    parents: list[str]
    seed: int


class Augmenter:
    """Augments samples of one dataset with one recipe, deterministically from (seed, id, copy)."""

    def __init__(self, dataset: Dataset, recipe: Recipe, seed: int = 0) -> None:
        self.dataset = dataset
        self.recipe = recipe
        self.seed = int(seed)
        self.classes = list(dataset.classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.by_id = {s.id: s for s in dataset.samples}
        has_label = any(s.label is not None or s.soft_label for s in dataset.samples)
        self.targets = present_targets([s.objects for s in dataset.samples], has_label)
        recipe.check_targets(self.targets, where=str(dataset.root))
        self.pools: dict[str | None, list[str]] = {}
        for s in dataset.samples:  # sorted by id already
            self.pools.setdefault(s.split, []).append(s.id)
        self._ops: dict[int, SingleOps] = {}
        self._rng = SeededGenerator()

    def single_ops(self, channels: int) -> SingleOps:
        if channels not in self._ops:
            self._ops[channels] = SingleOps(self.recipe, channels, self.targets)
        return self._ops[channels]

    def load(self, sample: Sample, data: bytes | None = None) -> Item:
        """The sample's pixels and labels (`data`: its encoded image, when already read)."""
        where = _Where(self.dataset, sample)
        image = decode_array(self.dataset.read_image_bytes(sample) if data is None else data, where)
        if image.shape[0] != sample.height or image.shape[1] != sample.width:
            raise DataError(str(where), "image size differs from samples.jsonl",
                            expected=f"{sample.width}x{sample.height}", got=f"{image.shape[1]}x{image.shape[0]}",
                            fix="re-import the dataset")
        soft = None
        if sample.soft_label:
            soft = np.zeros(len(self.classes))
            for k, v in sample.soft_label.items():
                soft[self.index[k]] = v
            soft /= soft.sum()
        elif sample.label is not None:
            soft = np.zeros(len(self.classes))
            soft[self.index[sample.label]] = 1.0
        return Item(image, soft, [o.copy() for o in sample.objects] if sample.objects is not None else None)

    def apply_single(self, item: Item, rng: np.random.Generator) -> Item:
        return self.single_ops(K.channels_of(item.image))(item, rng)

    def augment(self, sample: Sample, copy: int, item: Item | None = None) -> Result:
        """Copy `copy` of `sample`: the single-sample ops, then each multi-sample op with its own
        probability and partners drawn from the sample's split by the same generator."""
        seed = derive_seed(self.seed, "augment", sample.id, copy)
        rng = self._rng.reset(seed)  # the same generator object, a fresh stream: valid until the next call
        base = item if item is not None else self.load(sample)
        out = self.apply_single(base, rng)
        parents = [sample.id]
        for op in self.recipe.multi:
            if float(rng.random()) >= op.p:
                continue
            need = multi.partners_needed(op)
            pool = self.pools.get(sample.split, [])
            others = [i for i in pool if i != sample.id] or pool
            ids = [others[int(j)] for j in rng.integers(0, len(others), size=need)] if need else []
            partners = [self.apply_single(self.load(self.by_id[i]), rng) for i in ids]
            out = multi.apply(op, out, partners, rng, self.recipe)
            parents += ids
        return Result(out, parents, seed)

    def to_sample(self, sample: Sample, copy: int, result: Result, image: str, sha256: str) -> Sample:
        """The canonical record of an augmented copy: labels, provenance and what was drawn."""
        item = result.item
        label, soft_label = sample.label, None
        if item.soft is not None:
            top = int(np.argmax(item.soft))
            label = self.classes[top]
            if item.soft.max() < 1.0 - 1e-9:
                soft_label = {self.classes[i]: round(float(v), 6) for i, v in enumerate(item.soft) if v > 0}
        return Sample(
            id=aug_id(sample.id, copy), image=image, width=item.width, height=item.height, sha256=sha256,
            split=sample.split, label=label, soft_label=soft_label,
            objects=_rounded(item.objects) if sample.objects is not None or item.objects else None,
            source={"stage": "augment", "parents": result.parents},
            meta={"augment": {"recipe": self.recipe.name, "recipe_sha256": self.recipe.hash, "seed": result.seed,
                              "copy": copy, "ops": item.params}},
        )


class _Where:
    """A sample's image location for messages, worked out only when a message needs it."""

    def __init__(self, dataset: Dataset, sample: Sample) -> None:
        self.dataset, self.sample = dataset, sample

    def __str__(self) -> str:
        return self.dataset.image_where(self.sample)

    __fspath__ = __str__


def _rounded(objects: list[Obj] | None) -> list[Obj] | None:
    """Coordinates to 1/1000 pixel: stable, short lines (clipping already kept them in the image)."""
    if objects is None:
        return None

    def pts(points: list[list[float]]) -> list[list[float]]:
        return [[round(float(v), 3) for v in p[:2]] + [int(v) for v in p[2:]] for p in points]

    out = []
    for o in objects:
        n = o.copy()
        if n.bbox is not None:
            n.bbox = [round(float(v), 3) for v in n.bbox]
        if n.polygon is not None:
            n.polygon = [pts(r) for r in n.polygon]
        if n.keypoints is not None:
            n.keypoints = pts(n.keypoints)
        if n.polyline is not None:
            n.polyline = pts(n.polyline)
        out.append(n)
    return out


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    dataset: str
    recipe: str
    seed: int
    copies: int
    splits: list[str]
    pack: str = "auto"


_WORKER: dict = {}


def _worker_init(plan: Plan, work: str, state: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - albumentations brings cv2
        pass
    inherited = _WORKER.get("aug") if _WORKER.get("plan") == plan else None  # forked from the committing process
    _WORKER.clear()
    try:
        aug = inherited or Augmenter(load_dataset(plan.dataset), load_recipe(plan.recipe), plan.seed)
        _WORKER.update(aug=aug, work=Path(work), state=Path(state), pack=plan.pack)
        gc.freeze()  # the dataset stays for the worker's life: out of the collector's view (see `_quiet_gc`)
        gc.set_threshold(max(gc.get_threshold()[0], 50_000), *gc.get_threshold()[1:])
    except Exception as exc:  # noqa: BLE001 - raised again from the first task: a Pool whose
        _WORKER["error"] = exc  # initializer fails would restart its workers forever


def _aug_stem(sample: Sample) -> str:
    """Where the copies of `sample` are stored (their member names when packed), up to the copy
    number: 256 shard folders by a hash of the id, so parallel workers rarely create files in the
    same folder (creations in one folder serialize)."""
    shard = hashlib.sha1(sample.id.encode("utf-8")).hexdigest()[:2]
    return f"{IMAGES_DIR}/augmented/{shard}/{safe_stem(sample.id)}{AUG_SEP}"


def packs_copies(sample: Sample, mode: str) -> bool:
    """Whether the copies of `sample` go into image packs under `--pack mode`."""
    return mode == "always" or (mode == "auto" and sample.width * sample.height <= PACK_AUTO_PIXELS)


def _write(path: Path, data: bytes) -> None:
    """Write one image into the work folder. No temporary name and no fsync: nothing reads the
    work folder before the stage renames it into place; a file cut by a kill belongs to a sample
    that was not logged yet and is rewritten by the rerun, logged ones are re-hashed on resume,
    and the stage syncs once before the dataset is committed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL  # never through a hard link an earlier run left
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        path.unlink()
        fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _append(state: Path, kind: str, data: bytes) -> tuple[str, int]:
    """Append `data` to this process's `kind` file (records log or image spool) with one write;
    returns the file's name and the offset the data starts at. A log line torn by a kill fails to
    parse and its sample is redone; a new process whose pid is reused starts on a fresh line."""
    key = (kind, os.getpid(), str(state))
    if key not in _WORKER:
        folder = state / kind
        folder.mkdir(exist_ok=True)
        name = f"{os.getpid()}.{'jsonl' if kind == 'records' else 'bin'}"
        fd = os.open(folder / name, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if kind == "records" and size and os.pread(fd, 1, size - 1) != b"\n":
            size += os.write(fd, b"\n")
        _WORKER[key] = [fd, name, size]
    entry = _WORKER[key]
    offset = entry[2]
    os.write(entry[0], data)
    entry[2] += len(data)
    return entry[1], offset


def _close_files() -> None:
    for key in [k for k in _WORKER if isinstance(k, tuple)]:
        os.close(_WORKER.pop(key)[0])


def _work_batch(batch: list[tuple[str, list[int]]]) -> list[dict] | tuple[str, int, int]:
    """Augment every copy of a few samples; store the images, then log each sample as done.

    Decode the batch, augment every copy, then encode, store and record: the augmentation loop
    runs with warm caches (worth 15-25 % on 28x28 digits, against working sample by sample).

    Returns the entries (see `_records`) in the committing process; a worker process returns only
    where its records went in its log, ``(name, offset, length)``: the commit reads them and the
    packed images back out of the page cache instead of taking them through the pool's pipe (a
    pipe holds 64 KiB; a batch's records are ~150 KB, and each pass of a bigger result through it
    waits for the committing process's result thread to get the interpreter lock).
    """
    if "error" in _WORKER:
        raise _WORKER["error"]
    aug: Augmenter = _WORKER["aug"]
    work: Path = _WORKER["work"]
    samples = [aug.by_id[sample_id] for sample_id, _ in batch]
    raws = [aug.dataset.read_image_bytes(s) for s in samples]
    bases = [aug.load(s, raw) for s, raw in zip(samples, raws, strict=True)]
    results = [[aug.augment(s, c, base) for c in copies]
               for s, base, (_, copies) in zip(samples, bases, batch, strict=True)]
    entries = []
    for s, raw, (sample_id, copies), res in zip(samples, raws, batch, results, strict=True):
        ext = out_ext(s)
        stem = _aug_stem(s)
        packed = packs_copies(s, _WORKER["pack"])
        datas = [encode(r.item.image, ext) for r in res]
        lines, names = [], set()
        for c, r, data in zip(copies, res, datas, strict=True):
            rel = f"{stem}{c}.{ext}"
            if not packed:
                _write(work / rel, data)
            copy = aug.to_sample(s, c, r, rel, sha256_bytes(data))
            lines.append(dumps_body(copy))  # the line once it is known where the image is (`_commit`)
            names |= copy.labels()
        entry: dict = {"id": sample_id, "lines": lines, "names": sorted(names)}
        if packed:
            entry["blobs"] = datas
            if s.pack is None and len(raw) <= ORIGINAL_PACK_MAX:  # packed beside its copies (see `_commit`)
                entry["original"] = raw
        entries.append(entry)
    if _WORKER.get("inline"):
        # in the committing process: everything is handed over as it is; packed copies go straight
        # into the pack, and the commit logs their records once they are there (see `_commit`)
        text = "".join(_record(e) for e in entries if "blobs" not in e)
        if text:
            _append(_WORKER["state"], "records", text.encode("utf-8"))
        return entries
    spool = [(e, [e["original"], *e["blobs"]] if "original" in e else e["blobs"]) for e in entries if "blobs" in e]
    if spool:
        name, offset = _append(_WORKER["state"], "spool", b"".join(b"".join(d) for _, d in spool))
        for entry, datas in spool:
            entry["spool"] = [name, offset, [len(d) for d in datas]]
            offset += sum(len(d) for d in datas)
    text = "".join(map(_record, entries)).encode("utf-8")
    name, offset = _append(_WORKER["state"], "records", text)
    return name, offset, len(text)


def _record(entry: dict) -> str:
    """One sample in the records log: a head line (its id, where its packed images sit: in a
    worker's spool, or in a pack the committing process wrote; the class names its copies use;
    how many copies follow) and then each copy's samples.jsonl line as it is (no second
    rendering, and the commit takes the lines as they are)."""
    spool = "".join(f',"{key}":{json.dumps(entry[key], ensure_ascii=False)}' for key in ("spool", "pack")
                    if key in entry)
    original = ',"original":1' if "original" in entry and "spool" in entry else ""  # first in the spool
    names = json.dumps(entry["names"], ensure_ascii=False)
    head = f'{{"done":{json.dumps(entry["id"], ensure_ascii=False)}{spool}{original},"names":{names},' \
           f'"copies":{len(entry["lines"])}}}'
    return "\n".join([head, *entry["lines"]]) + "\n"


def _records(text: str, check: bool = False) -> Iterator[dict]:
    """The entries of a records log (or part of one): ``id``, ``lines`` (the copies'
    samples.jsonl lines), ``names``, and for packed copies ``spool`` (``[file, offset, lengths]``,
    the original first when ``with_original``) or ``pack`` (``[file, offsets, lengths]``: in a pack
    of an earlier run, kept in the state folder by `_prepare_state`). `check`: a log left by an earlier run; entries
    cut short by a kill (or otherwise unreadable) are left out, and each gets its copies'
    ``images`` and ``sha256``."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith('{"done":'):
            continue  # (only in a log torn by a kill: the rest of a sample whose head was cut)
        try:
            head = json.loads(line)
            count = head["copies"]
            copies = lines[i:i + count]
            entry = {"id": head["done"], "lines": copies, "names": head["names"],
                     **({"spool": head["spool"], "with_original": "original" in head} if "spool" in head else {}),
                     **({"pack": head["pack"]} if "pack" in head else {})}
            if check:
                parsed = [Sample.from_json({"id": aug_id(entry["id"], k + 1), "image": "", **json.loads(c)})
                          for k, c in enumerate(copies)]
                if len(parsed) != count:
                    continue
                entry["sha256"] = [c.sha256 for c in parsed]
        except (ValueError, KeyError, TypeError, DataError):
            continue  # torn by a kill: that sample is redone
        i += count
        yield entry


def _read_logs(state: Path, copies: int) -> dict[str, dict]:
    """Entries logged by earlier runs (the images are checked by `_intact`)."""
    done: dict[str, dict] = {}
    folder = state / "records"
    if not folder.is_dir():
        return done
    for log in sorted(folder.glob("*.jsonl")):
        for entry in _records(log.read_bytes().decode("utf-8", errors="replace"), check=True):
            if len(entry["lines"]) == copies:
                done[entry["id"]] = entry
    return done


class _Spools:
    """Reads back what the workers wrote into the state folder: images from their spool files,
    records from their logs."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.fds: dict[tuple[str, str], int] = {}

    def _pread(self, kind: str, name: str, length: int, offset: int) -> bytes | None:
        key = (kind, name)
        if key not in self.fds:
            try:
                self.fds[key] = os.open(self.state / kind / Path(name).name, os.O_RDONLY)
            except FileNotFoundError:
                return None
        data = os.pread(self.fds[key], length, offset)
        return data if len(data) == length else None

    def records(self, where: tuple[str, int, int]) -> list[dict]:
        """The entries a worker logged at ``(name, offset, length)``."""
        name, offset, length = where
        data = self._pread("records", name, length, offset)
        if data is None:
            raise DataError(self.state / "records" / name, "a worker's records are missing",
                            fix=f"remove {self.state} and run again")
        return list(_records(data.decode("utf-8")))

    def read(self, entry: dict) -> list[bytes] | None:
        """The images of a spooled entry (the original first when it was spooled too), or of one
        logged with its place in an earlier run's pack."""
        if "pack" in entry:
            name, offsets, lengths = entry["pack"]
            out = [self._pread(PACKS_KEPT, name, n, at) for at, n in zip(offsets, lengths, strict=True)]
            return None if any(b is None for b in out) else out
        name, offset, lengths = entry["spool"]
        blob = self._pread("spool", name, sum(lengths), offset)
        if blob is None:
            return None
        out, pos = [], 0
        for n in lengths:
            out.append(blob[pos:pos + n])
            pos += n
        return out

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def discard(self) -> None:
        """Empty and remove the spool files once every copy in them is in a pack: their pages are
        dropped instead of being written back by the sync that follows. A run killed after this
        redoes the samples whose copies were spooled (their records no longer check out)."""
        self.close()
        for folder in (self.state / "spool", self.state / PACKS_KEPT):
            if folder.is_dir():
                for path in folder.iterdir():
                    os.truncate(path, 0)  # also when a worker still holds it open
                    path.unlink()


def _intact(work: Path, spools: _Spools, entry: dict, sample: Sample) -> bool:
    """Whether every image of a logged entry (of `sample`'s copies) is present with the logged hash."""
    if "spool" in entry or "pack" in entry:
        blobs = spools.read(entry)
        if blobs is None:
            return False
        if entry.get("with_original"):
            blobs = blobs[1:]
        return all(sha256_bytes(b) == h for b, h in zip(blobs, entry["sha256"], strict=True))
    stem, ext = _aug_stem(sample), out_ext(sample)
    for c, h in enumerate(entry["sha256"], start=1):
        path = work / f"{stem}{c}.{ext}"
        if not path.is_file() or sha256_bytes(path.read_bytes()) != h:
            return False
    return True


def run_augment(
    dataset_path: str | os.PathLike,
    recipe_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    copies: int = 1,
    splits: list[str] | None = None,
    seed: int = 0,
    workers: int = 1,
    pack: str = "auto",
) -> dict:
    """Write `out`: every sample of `dataset_path` plus `copies` augmented copies of each sample in
    `splits` (default train; "all" for every sample). `pack`: auto (copies of images up to 1024x1024
    go into image packs), always or never. Returns figures for the summary."""
    if copies < 0:
        raise UsageError(f"--copies must be >= 0, got {copies}")
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if pack not in PACK_MODES:
        raise UsageError(f"--pack must be one of {', '.join(PACK_MODES)}, got {pack!r}")
    dataset_path, out = Path(dataset_path), Path(out)
    splits = list(splits or ["train"])
    plan = Plan(str(dataset_path), str(Path(recipe_path)), int(seed), int(copies), sorted(splits), pack)
    work = out.with_name(f".{out.name}.augment-work")
    state = out.with_name(f".{out.name}.augment-state")
    pool = _Workers(workers - 1, plan, work, state)
    try:
        return _run(dataset_path, recipe_path, out, plan, work, state, pool)
    finally:
        pool.stop(error=True)  # (a no-op once the run has stopped them: only after an error)


def _run(dataset_path: Path, recipe_path: str | os.PathLike, out: Path, plan: Plan, work: Path, state: Path,
         pool: _Workers) -> dict:
    copies, splits, seed = plan.copies, plan.splits, plan.seed
    dataset = load_dataset(dataset_path)
    recipe = load_recipe(recipe_path)
    bad = [s for s in splits if s not in (*SPLITS, "all")]
    if bad:
        raise UsageError(f"--splits: unknown split {bad[0]!r}", fix="use train, val, test or all")
    if out.resolve() == dataset_path.resolve():
        raise UsageError(f"--out {out} is the input dataset", fix="write the augmented version to a new folder")
    chosen = [s for s in dataset.samples if "all" in splits or s.split in splits]
    if not chosen and copies:
        have = ", ".join(sorted(str(k) for k in dataset.splits()))
        raise UsageError(f"{dataset_path}: no samples in split(s) {', '.join(splits)} (splits present: {have})",
                         fix="run `pipeline split` first, or pass --splits all")
    ids = {s.id for s in dataset.samples}
    clash = next((aug_id(s.id, c) for s in chosen for c in range(1, copies + 1) if aug_id(s.id, c) in ids), None)
    if clash is not None:
        raise UsageError(f"{dataset_path}: already holds a sample {clash!r}, the id a new copy would get",
                         fix="augment the dataset the copies were made from, or pick that dataset's --out again")
    augmenter = Augmenter(dataset, recipe, seed)  # validates targets before any work starts
    fingerprint = {"dataset": dataset.content_hash, "recipe": recipe.hash, "seed": plan.seed, "copies": plan.copies,
                   "splits": plan.splits, "pack": plan.pack, "format": 4}
    pool.start_early()  # once the checks passed: their start overlaps what follows
    resumed = _prepare_state(work, state, fingerprint)

    spools = _Spools(state)
    try:
        chosen_ids = {s.id: s for s in chosen}
        done = _read_logs(state, copies) if resumed else {}
        done = {k: v for k, v in done.items() if k in chosen_ids and _intact(work, spools, v, chosen_ids[k])}
        todo = [(s.id, list(range(1, copies + 1))) for s in chosen if copies and s.id not in done]
        area = sum(s.width * s.height for s in chosen) / max(1, len(chosen)) * copies
        tasks = _tasks(todo, pool.count + 1, area)
        with _quiet_gc(), _Work(tasks, augmenter, plan, work, state, pool, spools) as fresh:
            stored = _commit(dataset, dataset_path, recipe, recipe_path, plan, chosen, done, iter(fresh), spools,
                              work, state, out)
    finally:
        spools.close()
    shutil.rmtree(state, ignore_errors=True)
    return {"samples": len(dataset.samples), "augmented": stored["files"] + stored["packed"],
            "files": stored["files"], "packed": stored["packed"], "packs": stored["packs"],
            "originals_packed": stored["originals_packed"],
            "resumed": len(done) if resumed else 0,
            "recipe": recipe.name, "recipe_sha256": recipe.hash}


def _tasks(todo: list, workers: int, area: float = 0.0) -> list[list]:
    """Batches of `BATCH` samples, more for tiny images (up to `BATCH_MAX`, about `BATCH_PIXELS`
    augmented pixels each: a batch of digits is then worth the cost of handing it out), fewer on
    small runs (so every worker gets some); the last few a quarter of that, so the processes
    finish at nearly the same time. `area`: pixels per sample, times its copies."""
    size = BATCH
    if area > 0:
        size = max(BATCH, min(BATCH_MAX, int(BATCH_PIXELS // area)))
    size = max(1, min(size, -(-len(todo) // (workers * 4))))
    tail = len(todo) - workers * 2 * size if workers > 1 else len(todo)
    head = max(0, tail - tail % size)
    small = max(1, size // 4)
    return ([todo[i:i + size] for i in range(0, head, size)]
            + [todo[i:i + small] for i in range(head, len(todo), small)])


class _Workers:
    """The worker processes of a run (`count` of them) and their start.

    From the fork server (see `server`), the pool is created by a background thread, started as
    soon as the run's checks have passed: the server may still be importing albumentations and each
    worker loads the dataset and the recipe, while this process goes on and works through the
    tasks alone until the workers are up. When this process runs a single thread, the workers are
    forked from it instead, when the work begins (`start`): they inherit the loaded dataset and the
    built recipe.
    Stopping waits for a start under way (a process that exits while the fork server spawns its
    workers leaves them failing, with tracebacks, on the semaphores it took along).
    """

    def __init__(self, count: int, plan: Plan, work: Path, state: Path) -> None:
        self.count, self.args = count, (plan, str(work), str(state))
        self.pool = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @staticmethod
    def can_fork() -> bool:
        # a child forked from a process whose thread pools have run (OpenCV, OpenBLAS, torch) can
        # hang in them; forking from a second thread is unsafe too
        return "fork" in mp.get_all_start_methods() and _single_threaded()

    def start_early(self) -> None:
        """Start the fork server's workers now, unless they will be forked later."""
        if self.count > 0 and not self.can_fork():
            self._start_in_background()

    def start(self) -> None:
        """Start the workers if `start_early` did not: forked here when that is safe."""
        if self.count < 1 or self.thread is not None or self.pool is not None:
            return
        if self.can_fork():
            import pipeline.augment.fastgeom  # noqa: F401 - imported once here (with albumentations), inherited
            import pipeline.augment.fastpixel  # noqa: F401

            self._create(mp.get_context("fork"))
        else:
            self._start_in_background()

    def _start_in_background(self) -> None:
        self.thread = threading.Thread(target=self._create, args=(server_context(),), daemon=True,
                                       name="augment-workers")
        self.thread.start()

    def _create(self, ctx) -> None:
        try:
            self.pool = ctx.Pool(self.count, initializer=_worker_init, initargs=self.args)
        except BaseException as exc:  # noqa: BLE001 - raised again by `ready`, in the calling thread
            self.error = exc

    def _starting(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def ready(self):
        """The pool once it is up, else None; a failure to start it is raised here."""
        if self.error is not None:
            raise self.error
        return None if self._starting() else self.pool

    def finish(self) -> None:
        """Every task is done: the workers exit now, while the commit finishes."""
        if self.pool is not None and not self._starting():
            self.pool.close()

    def stop(self, error: bool) -> None:
        """Let the workers finish (or terminate them, on an error), once a start under way is done
        (only when the run ended, or failed, before the workers were up)."""
        if self.thread is not None:
            self.thread.join()
        pool, self.pool = self.pool, None
        if pool is not None:
            if error:
                pool.terminate()
            else:
                pool.close()
            pool.join()


class _Work:
    """The entries of every task, in task order, so the commit can write packs while workers work.

    With `workers` W > 1, W - 1 are processes (`_Workers`) and the committing process is the W-th:
    whenever the next task to commit is not finished yet, it augments the next task nobody has
    started (no pipe for that one) instead of waiting. On two cores that keeps two processes busy
    rather than three competing for them. The pool keeps a few tasks in flight ahead of the
    commit, so finished results wait for at most a few batches. Until the workers are up, this
    process works through the tasks alone. Iterating yields each finished sample's entry; leaving
    stops the processes.
    """

    def __init__(self, tasks: list[list[tuple[str, list[int]]]], augmenter: Augmenter, plan: Plan, work: Path,
                 state: Path, workers: _Workers, spools: _Spools) -> None:
        self.tasks, self.augmenter, self.plan, self.work, self.state = tasks, augmenter, plan, work, state
        self.spools = spools
        self.workers = workers
        self.parallel = workers.count > 0 and len(tasks) > 1
        self.bar = None
        self.cv2_threads: int | None = None

    def __enter__(self) -> _Work:
        import cv2

        self.bar = ui.progress(total=sum(len(t) for t in self.tasks), desc="augment", unit="sample")
        self.cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # one worker, one core: OpenCV's pool would spin a second one on small images
        _WORKER.clear()
        _WORKER.update(aug=self.augmenter, work=self.work, state=self.state, pack=self.plan.pack, inline=True,
                       plan=self.plan)
        if self.parallel:
            self.workers.start()
        return self

    def __iter__(self) -> Iterator[dict]:
        for result in self._batches():
            entries = result if isinstance(result, list) else self.spools.records(result)
            yield from entries
            self.bar.update(len(entries))

    def _batches(self) -> Iterator[list[dict] | tuple[str, int, int]]:
        if not self.parallel:
            yield from map(_work_batch, self.tasks)
            return
        window = 4 * self.workers.count  # tasks in flight in the pool
        pending = collections.deque(range(len(self.tasks)))
        running: dict[int, object] = {}  # task index -> AsyncResult
        finished: dict[int, list[dict]] = {}  # done here, waiting for their turn
        for turn in range(len(self.tasks)):
            while True:
                pool = self.workers.ready()
                while pool is not None and len(running) < window and pending:
                    i = pending.popleft()
                    running[i] = pool.apply_async(_work_batch, (self.tasks[i],))
                if turn in finished:
                    yield finished.pop(turn)
                    break
                if turn in running and (running[turn].ready() or not pending):
                    yield running.pop(turn).get()
                    break
                i = pending.popleft()  # the turn's task is not done elsewhere yet: do the next one here
                finished[i] = _work_batch(self.tasks[i])
        self.workers.finish()

    def __exit__(self, exc_type, *exc: object) -> None:
        self.workers.stop(error=exc_type is not None)
        _close_files()
        _WORKER.clear()
        if self.cv2_threads is not None:
            import cv2

            cv2.setNumThreads(self.cv2_threads)
        self.bar.close()


def _commit(dataset: Dataset, dataset_path: Path, recipe: Recipe, recipe_path: str | os.PathLike, plan: Plan,
            chosen: list[Sample], done: dict[str, dict], fresh: Iterator[dict], spools: _Spools, work: Path,
            state: Path, out: Path) -> dict[str, int]:
    """The new dataset: originals linked, then the copies of each chosen sample in id order, from
    an earlier run's log (`done`) or as `fresh` delivers them: file copies are already in the work
    folder, packed copies go into packs in id order (the same bytes for any number of workers)."""
    stored = {"files": 0, "packed": 0, "packs": 0, "originals_packed": 0}
    with DatasetWriter(out, task=dataset.task, stage="augment", classes=dataset.classes,
                       params={"recipe": recipe.name, "recipe_sha256": recipe.hash, "recipe_file": str(recipe_path),
                               "copies": plan.copies, "splits": plan.splits, "seed": plan.seed, "pack": plan.pack},
                       inputs={str(dataset_path): dataset.content_hash}, parent_lineage=dataset.info.lineage,
                       workdir=work, render_early=True) as writer:
        # The originals (up to ORIGINAL_PACK_MAX bytes) of images whose copies are packed go into
        # the pack beside their copies (copying a few hundred bytes costs less than a hard link's
        # metadata update); the others, and images already in a pack, are linked (no second copy
        # of a photo's bytes).
        with_copies = {s.id for s in chosen if plan.copies and packs_copies(s, plan.pack) and s.pack is None}
        for s in dataset.samples:
            if s.id not in with_copies:
                writer.add_from(dataset, s)
        packer = _Packer(writer, stored)
        log: list[str] = []  # records of the copies this process made and packed, not yet logged
        complete = False
        try:
            for s in chosen if plan.copies else []:
                entry = done.get(s.id) or next(fresh, None)
                if entry is None or entry["id"] != s.id:
                    raise DataError(state, f"no record of the augmented copies of {s.id!r}",
                                    fix=f"remove {state} and run again")
                stem, ext = _aug_stem(s), out_ext(s)
                copies = [(aug_id(s.id, c), f"{stem}{c}.{ext}") for c in range(1, plan.copies + 1)]
                if not ("blobs" in entry or "spool" in entry or "pack" in entry):  # written as files
                    for (sample_id, image), line in zip(copies, entry["lines"], strict=True):
                        if not (work / image).is_file():
                            raise DataError(work / image, "missing from the work folder",
                                            fix=f"remove {state} and run again")
                        writer.add_rendered(sample_id, image, sample_line(sample_id, image, None, line), entry["names"])
                        stored["files"] += 1
                        if stored["files"] <= FSYNC_FILES_MAX:
                            writer.sync_in_background(image)  # (written without fsync by a worker)
                    continue
                blobs, original = entry.get("blobs"), entry.get("original")
                if blobs is None:  # spooled by a worker, or kept from an earlier run
                    blobs = spools.read(entry)
                    if blobs is None:
                        raise DataError(state, f"the images of {s.id!r} are missing",
                                        fix=f"remove {state} and run again")
                    if entry.get("with_original"):
                        original, blobs = (blobs[0] if s.id not in done else None), blobs[1:]
                if s.id in with_copies:
                    if original is None and os.path.getsize(dataset.root / s.image) <= ORIGINAL_PACK_MAX:
                        original = dataset.read_image_bytes(s)  # (an earlier run's spool is not trusted with it)
                    if original is None or writer.uses_image(s.image):  # linked (or its name is taken here)
                        writer.add_from(dataset, s)
                    else:
                        copy = Sample.from_json(s.to_json())
                        copy.pack = packer.add(s.image, original)
                        writer.add(copy)
                        stored["originals_packed"] += 1
                refs = []
                for (sample_id, image), line, data in zip(copies, entry["lines"], blobs, strict=True):
                    refs.append(packer.add(image, data))
                    writer.add_rendered(sample_id, image, sample_line(sample_id, image, refs[-1], line), entry["names"])
                    stored["packed"] += 1
                packer.sync_if_due()
                if "blobs" in entry and len({ref["file"] for ref in refs}) == 1:
                    # copies made here: logged now that they are in the pack, where a rerun finds
                    # them (a record whose copies straddle two packs is not logged: redone then)
                    entry["pack"] = [Path(refs[0]["file"]).name, [r["offset"] for r in refs], [r["length"] for r in refs]]
                    log.append(_record(entry))
                    if sum(map(len, log)) > 1 << 16:
                        packer.flush()  # the copies reach the file before their records do
                        _append(state, "records", "".join(log).encode("utf-8"))
                        log.clear()
            if next(fresh, None) is not None:
                raise AssertionError("augment: a sample was augmented but not chosen")
            complete = True
        finally:
            packer.close(sync=complete)  # (synced while samples.jsonl is rendered and written)
            if log:  # (after the close: the pack's buffer is in the file; kept for a rerun after an error too)
                _append(state, "records", "".join(log).encode("utf-8"))
        spools.discard()
        if stored["files"] > FSYNC_FILES_MAX and hasattr(os, "sync"):  # the rest of the copies written as
            writer.sync_in_background(None)  # files reach the disk before the rename (one sync for them all)
        writer.finish()
    return stored


class _Packer:
    """The packs the commit writes, members in id order: a new pack when one is full (the full one
    closed and flushed to the disk from the writer's sync thread while the next fills), and what a
    pack holds so far flushed every SYNC_EVERY bytes, so the commit's last wait is short."""

    def __init__(self, writer: DatasetWriter, stored: dict[str, int]) -> None:
        self.writer, self.stored = writer, stored
        self.pack = None
        self.rel = ""
        self.synced = 0  # bytes of the current pack handed to the sync thread

    def add(self, name: str, data: bytes) -> dict:
        """Store `data` as member `name`; returns its `pack` reference."""
        if self.pack is None or len(self.pack) >= MAX_MEMBERS or self.pack.size + len(data) > MAX_BYTES:
            self.close(sync=True)
            self.rel, self.pack = self.writer.new_pack("augment")
            self.synced = 0
            self.stored["packs"] += 1
        return {"file": self.rel, "offset": self.pack.add(name, data), "length": len(data)}

    def flush(self) -> None:
        if self.pack is not None:
            self.pack.flush()

    def sync_if_due(self) -> None:
        if self.pack is not None and self.pack.size >= self.synced + SYNC_EVERY:
            self.pack.flush()
            self.writer.sync_in_background(self.rel)
            self.synced = self.pack.size

    def close(self, sync: bool) -> None:
        if self.pack is not None:
            self.pack.close()
            if sync:
                self.writer.sync_in_background(self.rel)
            self.pack = None


@contextlib.contextmanager
def _quiet_gc():
    """Fewer cyclic-GC passes while augmenting: the loaded dataset is frozen out of the collector's
    view and the first generation collects every 50,000 allocations instead of 700. Each copy
    allocates hundreds of short-lived objects (albumentations' parameter dicts); without this,
    collections walking the dataset's records cost ~20 % of the stage on small images."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], 50_000), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def _single_threaded() -> bool:
    """True when this process runs one OS thread (Linux: /proc/self/task), so fork is safe."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _prepare_state(work: Path, state: Path, fingerprint: dict) -> bool:
    """Keep a previous run's work when it was for the same inputs; otherwise start clean."""
    marker = state / "plan.json"
    text = json.dumps(fingerprint, sort_keys=True)
    if marker.is_file() and work.is_dir() and marker.read_text(encoding="utf-8") == text:
        for folder in (work, state):  # half-written files of a killed run (atomic writes' temporaries)
            for tmp in folder.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        packs = work / PACKS_DIR  # the packs the run wrote: out of the new packs' way, read from there
        if packs.is_dir():
            (state / PACKS_KEPT).mkdir(exist_ok=True)
            for path in packs.glob(f"*{PACK_SUFFIX}"):
                os.replace(path, state / PACKS_KEPT / path.name)
        return True
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    (state / "records").mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, text.encode("utf-8"))
    return False
