"""The offline `augment` stage: a new dataset with the originals plus N augmented copies.

`run_augment` plans the run (checks, resume), runs it (`pipeline.augment.runner`: batches
augmented by this process and the worker processes with `pipeline.augment.engine`) and commits
the new dataset (`_commit`). Every copy's randomness comes from ``derive_seed(seed, "augment",
sample id, copy)`` (partners included), so the output does not depend on the order of work or on
the number of worker processes.

Copies of images up to 1024x1024 pixels (``--pack auto``) are stored in image packs
(`pipeline.core.packs`), their originals (up to 16 KiB) just before them: creating one file (and
syncing it before the commit) costs more than augmenting a 28x28 digit, about a quarter of the
time augmenting a 320x240 photo takes and a tenth of augmenting and re-encoding a 650x417 JPEG.
Larger images are written as files into the work folder.

The process that writes the output takes the batches in sample-id order, writes the packed copies
into packs and the records into `samples.jsonl`, so the bytes do not depend on the number of
workers; with more than one worker it also augments batches itself whenever the next one to write
is not finished (see `runner.Work`).

Work is resumable: everything is written into a persistent work folder next to the output
(``.NAME.augment-work``, the `DatasetWriter` workdir, packs included) and a state folder
(``.NAME.augment-state``, see `pipeline.augment.journal`): a worker process appends the packed
copies of a batch to its spool file, then one record per finished sample to its log; the writing
process packs the copies it makes itself and logs their records once they are in the pack. A
rerun with the same inputs moves the interrupted run's packs into the state folder, re-checks the
logged images' hashes, skips what is logged and takes packed copies back from the spool or those
packs. On success the work folder is renamed into place and the state folder removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.augment.engine import (
    ORIGINAL_PACK_MAX,
    PACK_MODES,
    Augmenter,
    aug_id,
    aug_images,
    packs_copies,
)
from pipeline.augment.journal import (
    RECORDS,
    Journal,
    Packed,
    Record,
    Spools,
    intact,
    prepare_state,
    read_logs,
)
from pipeline.augment.recipe import Recipe, load_recipe
from pipeline.augment.runner import Plan, Work, WorkerContext, Workers, make_tasks, quiet_gc
from pipeline.core import outputs
from pipeline.core.dataset import SPLITS, Dataset, DatasetWriter, Sample, load_dataset, sample_line
from pipeline.core.errors import DataError, UsageError
from pipeline.core.packs import MAX_BYTES, MAX_MEMBERS
from pipeline.engines import Engine

FSYNC_FILES_MAX = 256  # copies written as files: each fsynced in the background up to this many, then one sync
SYNC_EVERY = 8 << 20  # bytes of a pack written between background syncs of it
LOG_CHUNK = 1 << 16  # characters of records the commit gathers before it logs them


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
    overwrite: bool = False,
    engine: Engine | None = None,
) -> dict:
    """Write `out`: every sample of `dataset_path` plus `copies` augmented copies of each sample in
    `splits` (default train; "all" for every sample). `pack`: auto (copies of images up to 1024x1024
    go into image packs), always or never. An earlier dataset at `out` is replaced only with
    `overwrite` (`pipeline.core.outputs`). `engine`: where the copies are made (`pipeline.engines`;
    default: this process and `workers` - 1 worker processes; a Ray engine brings its own workers
    and is started once the checks have passed). Returns figures for the summary."""
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
    engine = engine or Engine()
    pool = Workers(workers - 1 if engine.is_local else 0, plan, work, state)
    try:
        outputs.claim_dir(out, "dataset", reads=[dataset_path], overwrite=overwrite)
        return _run(dataset_path, recipe_path, out, plan, work, state, pool, overwrite, engine)
    finally:
        pool.stop(error=True)  # (a no-op once the run has stopped them: only after an error)


@dataclass
class Commit:
    """What the commit writes and where from: the input dataset and recipe, the run's plan, the
    samples that get copies, and the output's, work and state folders. `stored` counts what it
    stored: copies as files, packed copies, packs, originals packed beside their copies."""

    dataset: Dataset
    recipe: Recipe
    recipe_file: str
    plan: Plan
    chosen: list[Sample]
    out: Path
    work: Path
    state: Path
    overwrite: bool
    stored: dict[str, int] = field(default_factory=lambda: {"files": 0, "packed": 0, "packs": 0,
                                                            "originals_packed": 0})

    def missing(self, what: str, where: Path | None = None) -> DataError:
        """The error for a record or an image the run lost (the state folder is then not trusted)."""
        return DataError(where or self.state, what, fix=f"remove {self.state} and run again")


def _run(dataset_path: Path, recipe_path: str | os.PathLike, out: Path, plan: Plan, work: Path, state: Path,
         pool: Workers, overwrite: bool, engine: Engine) -> dict:
    """Plan (check the inputs, keep or clear an earlier run's state), run and commit."""
    copies = plan.copies
    dataset = load_dataset(dataset_path)
    recipe = load_recipe(recipe_path)
    chosen = _chosen(dataset, dataset_path, out, plan)
    augmenter = Augmenter(dataset, recipe, plan.seed)  # validates targets before any work starts
    fingerprint = {"dataset": dataset.content_hash, "recipe": recipe.hash, "seed": plan.seed, "copies": plan.copies,
                   "splits": plan.splits, "pack": plan.pack, "format": 4}
    pool.start_early()  # once the checks passed: their start overlaps what follows
    resumed = prepare_state(work, state, fingerprint)

    job = Commit(dataset, recipe, str(recipe_path), plan, chosen, out, work, state, overwrite)
    spools = Spools(state)
    try:
        by_id = {s.id: s for s in chosen}
        done = read_logs(state, copies) if resumed else {}
        done = {k: r for k, r in done.items()
                if k in by_id and intact(work, spools, r, [image for _, image in aug_images(by_id[k], copies)])}
        todo = [(s.id, list(range(1, copies + 1))) for s in chosen if copies and s.id not in done]
        area = sum(s.width * s.height for s in chosen) / max(1, len(chosen)) * copies
        with engine if todo else contextlib.nullcontext():  # (a Ray engine starts here, when there is work)
            tasks = make_tasks(todo, pool.count + 1 if engine.is_local else engine.workers or 1, area)
            context = WorkerContext(augmenter, work, Journal(state), plan.pack, inline=True)
            with quiet_gc(), Work(tasks, context, pool, spools, engine) as fresh:
                _commit(job, done, iter(fresh), spools, context.journal)
    finally:
        spools.close()
    shutil.rmtree(state, ignore_errors=True)
    stored = job.stored
    return {"samples": len(dataset.samples), "augmented": stored["files"] + stored["packed"],
            "files": stored["files"], "packed": stored["packed"], "packs": stored["packs"],
            "originals_packed": stored["originals_packed"],
            "resumed": len(done) if resumed else 0,
            "unsplit": sum(1 for s in chosen if s.split is None) if "all" not in plan.splits else 0,
            "recipe": recipe.name, "recipe_sha256": recipe.hash}


def _chosen(dataset: Dataset, dataset_path: Path, out: Path, plan: Plan) -> list[Sample]:
    """The samples that get copies; a `UsageError` for splits, an output or ids the run cannot take."""
    copies, splits = plan.copies, plan.splits
    bad = [s for s in splits if s not in (*SPLITS, "all")]
    if bad:
        raise UsageError(f"--splits: unknown split {bad[0]!r}", fix="use train, val, test or all")
    if out.resolve() == dataset_path.resolve():
        raise UsageError(f"--out {out} is the input dataset", fix="write the augmented version to a new folder")
    chosen = [s for s in dataset.samples if "all" in splits or s.split in splits]
    if "train" in splits and not any(s.split == "train" for s in dataset.samples):
        # as `pipeline train` does: without a train split, the samples without a split are what it trains on
        chosen = [s for s in dataset.samples if s.split in splits or s.split is None]
    if not chosen and copies:
        have = ", ".join(sorted(str(k) for k in dataset.splits()))
        raise UsageError(f"{dataset_path}: no samples in split(s) {', '.join(splits)} (splits present: {have})",
                         fix="run `pipeline split` first, or pass --splits all")
    ids = {s.id for s in dataset.samples}
    clash = next((aug_id(s.id, c) for s in chosen for c in range(1, copies + 1) if aug_id(s.id, c) in ids), None)
    if clash is not None:
        raise UsageError(f"{dataset_path}: already holds a sample {clash!r}, the id a new copy would get",
                         fix="augment the dataset the copies were made from, or pick that dataset's --out again")
    return chosen


def _commit(job: Commit, done: dict[str, Record], fresh: Iterator[Record], spools: Spools, journal: Journal) -> None:
    """The new dataset: originals linked, then the copies of each chosen sample in id order, from
    an earlier run's log (`done`) or as `fresh` delivers them: file copies are already in the work
    folder, packed copies go into packs in id order (the same bytes for any number of workers)."""
    dataset, plan, recipe = job.dataset, job.plan, job.recipe
    with DatasetWriter(job.out, task=dataset.task, stage="augment", classes=dataset.classes,
                       class_ids=dataset.info.class_ids,
                       params={"recipe": recipe.name, "recipe_sha256": recipe.hash, "recipe_file": job.recipe_file,
                               "copies": plan.copies, "splits": plan.splits, "seed": plan.seed, "pack": plan.pack},
                       inputs={plan.dataset: dataset.content_hash}, parent_lineage=dataset.info.lineage,
                       workdir=job.work, render_early=True, reads=[plan.dataset],
                       overwrite=job.overwrite) as writer:
        # The originals (up to ORIGINAL_PACK_MAX bytes) of images whose copies are packed go into
        # the pack beside their copies (copying a few hundred bytes costs less than a hard link's
        # metadata update); the others, and images already in a pack, are linked (no second copy
        # of a photo's bytes).
        with_copies = {s.id for s in job.chosen if plan.copies and packs_copies(s, plan.pack) and s.pack is None}
        for s in dataset.samples:
            if s.id not in with_copies:
                writer.add_from(dataset, s)
        packer = _Packer(writer, job.stored)
        log: list[str] = []  # records of the copies this process made and packed, not yet logged
        complete = False
        try:
            for s in job.chosen if plan.copies else []:
                record = done.get(s.id) or next(fresh, None)
                if record is None or record.id != s.id:
                    raise job.missing(f"no record of the augmented copies of {s.id!r}")
                if not record.packed:
                    _add_files(job, writer, s, record)
                    continue
                refs = _add_packed(job, writer, packer, s, record, spools, resumed=s.id in done,
                                   with_original=s.id in with_copies)
                if record.blobs is not None and len({ref["file"] for ref in refs}) == 1:
                    # copies made here: logged now that they are in the pack, where a rerun finds
                    # them (a record whose copies straddle two packs is not logged: redone then)
                    record.pack = Packed(Path(refs[0]["file"]).name, [r["offset"] for r in refs],
                                         [r["length"] for r in refs])
                    log.append(record.to_json())
                    if sum(map(len, log)) > LOG_CHUNK:
                        packer.flush()  # the copies reach the file before their records do
                        journal.append(RECORDS, "".join(log).encode("utf-8"))
                        log.clear()
            if next(fresh, None) is not None:
                raise AssertionError("augment: a sample was augmented but not chosen")
            complete = True
        finally:
            packer.close(sync=complete)  # (synced while samples.jsonl is rendered and written)
            if log:  # (after the close: the pack's buffer is in the file; kept for a rerun after an error too)
                journal.append(RECORDS, "".join(log).encode("utf-8"))
        spools.discard()
        if job.stored["files"] > FSYNC_FILES_MAX and hasattr(os, "sync"):  # the rest of the copies written as
            writer.sync_in_background(None)  # files reach the disk before the rename (one sync for them all)
        writer.finish()


def _add_files(job: Commit, writer: DatasetWriter, sample: Sample, record: Record) -> None:
    """The copies of `sample` written as files into the work folder (by whichever process made them)."""
    for (sample_id, image), body in zip(aug_images(sample, job.plan.copies), record.bodies, strict=True):
        if not (job.work / image).is_file():
            raise job.missing("missing from the work folder", job.work / image)
        writer.add_rendered(sample_id, image, sample_line(sample_id, image, None, body), record.names)
        job.stored["files"] += 1
        if job.stored["files"] <= FSYNC_FILES_MAX:
            writer.sync_in_background(image)  # (written without fsync by a worker)


def _add_packed(job: Commit, writer: DatasetWriter, packer: _Packer, sample: Sample, record: Record, spools: Spools,
                *, resumed: bool, with_original: bool) -> list[dict]:
    """The copies of `sample` into the pack (its original first, when it goes beside them), from
    memory, a worker's spool or an earlier run's pack; returns the copies' pack references."""
    blobs, original = record.blobs, record.original
    if blobs is None:  # spooled by a worker, or kept from an earlier run
        blobs = spools.read(record)
        if blobs is None:
            raise job.missing(f"the images of {sample.id!r} are missing")
        if record.spool is not None and record.with_original:
            original, blobs = (blobs[0] if not resumed else None), blobs[1:]
    if with_original:
        dataset = job.dataset
        if original is None and os.path.getsize(dataset.root / sample.image) <= ORIGINAL_PACK_MAX:
            original = dataset.read_image_bytes(sample)  # (an earlier run's spool is not trusted with it)
        if original is None or writer.uses_image(sample.image):  # linked (or its name is taken here)
            writer.add_from(dataset, sample)
        else:
            copy = Sample.from_json(sample.to_json())
            copy.pack = packer.add(sample.image, original)
            writer.add(copy)
            job.stored["originals_packed"] += 1
    refs = []
    for (sample_id, image), body, data in zip(aug_images(sample, job.plan.copies), record.bodies, blobs, strict=True):
        refs.append(packer.add(image, data))
        writer.add_rendered(sample_id, image, sample_line(sample_id, image, refs[-1], body), record.names)
        job.stored["packed"] += 1
    packer.sync_if_due()
    return refs


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
        """What the current pack holds so far, into its file."""
        if self.pack is not None:
            self.pack.flush()

    def sync_if_due(self) -> None:
        """Hand the current pack to the sync thread once SYNC_EVERY more bytes are in it."""
        if self.pack is not None and self.pack.size >= self.synced + SYNC_EVERY:
            self.pack.flush()
            self.writer.sync_in_background(self.rel)
            self.synced = self.pack.size

    def close(self, sync: bool) -> None:
        """Close the current pack; `sync`: flushed to the disk from the sync thread."""
        if self.pack is not None:
            self.pack.close()
            if sync:
                self.writer.sync_in_background(self.rel)
            self.pack = None
