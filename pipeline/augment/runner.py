"""The processes of an `augment` run: batches of work, the worker processes, and what each returns.

Work goes out in batches of samples (`make_tasks`). A batch is decoded, augmented, encoded and
stored by `work_batch`: copies too large for a pack are written into the work folder as files;
packed copies stay in memory in the process that writes the output and go to a worker's spool
file in a worker process. Each finished sample becomes a `Record` (see `pipeline.augment.journal`),
logged to the process's records file; a worker hands back only where its records went.

`Workers` starts W - 1 worker processes for W workers (from the fork server, or forked from this
process when that is safe); `Work` hands out the batches, lets this process augment whenever the
next batch to write is not finished, and yields the records in task order.

With ``--engine ray`` (`pipeline.engines`) the batches go to Ray workers instead (`ray_context`,
`ray_batch`): a Ray worker may run on another machine, so it writes nothing; every copy comes back
in its record and this process stores it as it stores its own (`Work._stored`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import multiprocessing as mp
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.augment.engine import (
    ORIGINAL_PACK_MAX,
    Augmenter,
    aug_stem,
    encode,
    out_ext,
    packs_copies,
)
from pipeline.augment.journal import Journal, Record, Spools
from pipeline.augment.recipe import load_recipe
from pipeline.augment.server import server_context
from pipeline.core import ui
from pipeline.core.dataset import dumps_body, load_dataset
from pipeline.core.paths import sha256_bytes
from pipeline.engines import Engine

BATCH = 16  # samples per unit of work: warm caches, and resume loses at most one batch per worker
BATCH_MAX = 128  # ... for tiny images: up to this many samples,
BATCH_PIXELS = 256 * 28 * 28  # about this many augmented pixels per batch

Task = list[tuple[str, list[int]]]  # (sample id, the copies to make) for each sample of a batch


@dataclass
class Plan:
    """A run's inputs, as a worker process needs them to rebuild the engine."""

    dataset: str
    recipe: str
    seed: int
    copies: int
    splits: list[str]
    pack: str = "auto"


@dataclass
class WorkerContext:
    """What `work_batch` works with in one process: the engine, the work folder its file copies go
    to, the process's journal, the --pack mode, and whether this is the process that writes the
    output (`inline`: its packed copies stay in memory; a worker spools them)."""

    augmenter: Augmenter
    work: Path | None  # None: a Ray worker's, which keeps its file copies in the records
    journal: Journal | None
    pack: str
    inline: bool


# The one module-level slot, in worker processes only: a pool's task receives just its batch (the
# context, with the loaded dataset, is far too large to send with every task), so the pool's
# initializer leaves the worker's context here for `_pool_batch`; an initializer that failed
# leaves its error, raised by the first task (a Pool whose initializer raises restarts its workers
# forever). The process that writes the output passes its own context explicitly.
_POOL_CONTEXT: WorkerContext | BaseException | None = None


def _worker_init(plan: Plan, work: str, state: str, augmenter: Augmenter | None) -> None:
    """A worker process's start: one thread for OpenCV and the BLAS, the engine (`augmenter`, when
    forked from the writing process, else built from the plan), the collector quietened."""
    global _POOL_CONTEXT
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - albumentations brings cv2
        pass
    try:
        aug = augmenter or Augmenter(load_dataset(plan.dataset), load_recipe(plan.recipe), plan.seed)
        _POOL_CONTEXT = WorkerContext(aug, Path(work), Journal(Path(state)), plan.pack, inline=False)
        gc.freeze()  # the dataset stays for the worker's life: out of the collector's view (see `quiet_gc`)
        gc.set_threshold(max(gc.get_threshold()[0], 50_000), *gc.get_threshold()[1:])
    except Exception as exc:  # noqa: BLE001 - raised again from the first task
        _POOL_CONTEXT = exc


def _pool_batch(batch: Task) -> tuple[str, int, int]:
    """`work_batch` in a worker process, with the context its initializer left."""
    context = _POOL_CONTEXT
    if isinstance(context, BaseException):
        raise context
    assert context is not None, "a pool task outside a worker process"
    return work_batch(context, batch)


def ray_context(plan: Plan) -> WorkerContext:
    """A Ray worker's context (built once per worker, `pipeline.engines`): one thread for OpenCV, the
    engine built from the plan (its paths absolute, as every node sees them), no work folder."""
    import cv2

    cv2.setNumThreads(1)
    aug = Augmenter(load_dataset(plan.dataset), load_recipe(plan.recipe), plan.seed)
    gc.freeze()  # as in a worker process (`_worker_init`)
    gc.set_threshold(max(gc.get_threshold()[0], 50_000), *gc.get_threshold()[1:])
    return WorkerContext(aug, None, None, plan.pack, inline=True)


def ray_batch(context: WorkerContext, batch: Task) -> list[Record]:
    """`augment_batch` on a Ray worker: every copy comes back in the records (files in `files`)."""
    return augment_batch(context, batch)


def work_batch(context: WorkerContext, batch: Task) -> list[Record] | tuple[str, int, int]:
    """Augment every copy of a few samples; store the images, then log each sample as done.

    In the process that writes the output, returns the records (the file copies' logged, the
    packed ones held in memory: the commit logs them once their copies are in a pack). A worker
    process spools the packed images and logs every record, and returns only where its records
    went, ``(name, offset, length)``: the commit reads them and the spooled images back out of the
    page cache instead of taking them through the pool's pipe (a pipe holds 64 KiB; a batch's
    records are ~150 KB, and each pass of a bigger result through it waits for the committing
    process's result thread to get the interpreter lock).
    """
    records = augment_batch(context, batch)
    if context.inline:
        files = [r for r in records if not r.packed]
        if files:
            context.journal.log(files)
        return records
    packed = [r for r in records if r.packed]
    if packed:
        context.journal.spool(packed)
    return context.journal.log(records)


def augment_batch(context: WorkerContext, batch: Task) -> list[Record]:
    """The records of a batch: decode it, augment every copy, then encode, store and render; the
    augmentation loop runs with warm caches (worth 15-25 % on 28x28 digits, against working
    sample by sample). Copies that are not packed are written into the work folder (without one,
    on a Ray worker: kept in the record's `files`)."""
    aug = context.augmenter
    samples = [aug.by_id[sample_id] for sample_id, _ in batch]
    raws = [aug.dataset.read_image_bytes(s) for s in samples]
    bases = [aug.load(s, raw) for s, raw in zip(samples, raws, strict=True)]
    results = [[aug.augment(s, c, base) for c in copies]
               for s, base, (_, copies) in zip(samples, bases, batch, strict=True)]
    records = []
    for s, raw, (sample_id, copies), res in zip(samples, raws, batch, results, strict=True):
        ext, stem = out_ext(s), aug_stem(s)
        packed = packs_copies(s, context.pack)
        datas = [encode(r.item.image, ext) for r in res]
        bodies, names, files = [], set(), []
        for c, r, data in zip(copies, res, datas, strict=True):
            rel = f"{stem}{c}.{ext}"
            if not packed:
                if context.work is None:
                    files.append((rel, data))
                else:
                    _write(context.work / rel, data)
            copy = aug.to_sample(s, c, r, rel, sha256_bytes(data))
            bodies.append(dumps_body(copy))  # the line once it is known where the image is (the commit)
            names |= copy.labels()
        record = Record(id=sample_id, bodies=bodies, names=sorted(names), files=files or None)
        if packed:
            record.blobs = datas
            if s.pack is None and len(raw) <= ORIGINAL_PACK_MAX:  # packed beside its copies (see the commit)
                record.original = raw
        records.append(record)
    return records


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


def make_tasks(todo: list, workers: int, area: float = 0.0) -> list[list]:
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


class Workers:
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
        self.count, self.plan, self.work, self.state = count, plan, work, state
        self.pool = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @staticmethod
    def can_fork() -> bool:
        # a child forked from a process whose thread pools have run (OpenCV, OpenBLAS, torch) can
        # hang in them; forking from a second thread is unsafe too
        return "fork" in mp.get_all_start_methods() and single_threaded()

    def start_early(self) -> None:
        """Start the fork server's workers now, unless they will be forked later."""
        if self.count > 0 and not self.can_fork():
            self._start_in_background()

    def start(self, augmenter: Augmenter) -> None:
        """Start the workers if `start_early` did not: forked here when that is safe, taking
        `augmenter` (this process's, with the loaded dataset) along."""
        if self.count < 1 or self.thread is not None or self.pool is not None:
            return
        if self.can_fork():
            import pipeline.augment.albu  # noqa: F401 - imported once here (with albumentations), inherited

            self._create(mp.get_context("fork"), augmenter)  # (a forked worker's arguments are not pickled)
        else:
            self._start_in_background()

    def _start_in_background(self) -> None:
        self.thread = threading.Thread(target=self._create, args=(server_context(), None), daemon=True,
                                       name="augment-workers")
        self.thread.start()

    def _create(self, ctx, augmenter: Augmenter | None) -> None:
        try:
            self.pool = ctx.Pool(self.count, initializer=_worker_init,
                                 initargs=(self.plan, str(self.work), str(self.state), augmenter))
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


class Work:
    """The records of every task, in task order, so the commit can write packs while workers work.

    With `workers` W > 1, W - 1 are processes (`Workers`) and the committing process is the W-th:
    whenever the next task to commit is not finished yet, it augments the next task nobody has
    started (no pipe for that one) instead of waiting. On two cores that keeps two processes busy
    rather than three competing for them. The pool keeps a few tasks in flight ahead of the
    commit, so finished results wait for at most a few batches. Until the workers are up, this
    process works through the tasks alone. Iterating yields each finished sample's record; leaving
    stops the processes and closes this process's journal.
    """

    def __init__(self, tasks: list[Task], context: WorkerContext, workers: Workers, spools: Spools,
                 engine: Engine | None = None) -> None:
        self.tasks, self.context, self.spools = tasks, context, spools
        self.workers = workers
        self.engine = engine if engine is not None and not engine.is_local else None  # Ray: every task there
        self.parallel = self.engine is None and workers.count > 0 and len(tasks) > 1
        self.bar = None
        self.cv2_threads: int | None = None

    def __enter__(self) -> Work:
        import cv2

        self.bar = ui.progress(total=sum(len(t) for t in self.tasks), desc="augment", unit="sample")
        self.cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # one worker, one core: OpenCV's pool would spin a second one on small images
        if self.parallel:
            self.workers.start(self.context.augmenter)
        return self

    def __iter__(self) -> Iterator[Record]:
        for result in self._batches():
            records = result if isinstance(result, list) else self.spools.records(result)
            yield from records
            self.bar.update(len(records))

    def _batches(self) -> Iterator[list[Record] | tuple[str, int, int]]:
        if self.engine is not None:
            plan = self.workers.plan
            plan = dataclasses.replace(plan, dataset=os.path.abspath(plan.dataset), recipe=os.path.abspath(plan.recipe))
            for records in self.engine.map(ray_context, plan, ray_batch, self.tasks):
                yield self._stored(records)
            return
        if not self.parallel:
            for task in self.tasks:
                yield work_batch(self.context, task)
            return
        window = 4 * self.workers.count  # tasks in flight in the pool
        pending = collections.deque(range(len(self.tasks)))
        running: dict[int, object] = {}  # task index -> AsyncResult
        finished: dict[int, list[Record]] = {}  # done here, waiting for their turn
        for turn in range(len(self.tasks)):
            while True:
                pool = self.workers.ready()
                while pool is not None and len(running) < window and pending:
                    i = pending.popleft()
                    running[i] = pool.apply_async(_pool_batch, (self.tasks[i],))
                if turn in finished:
                    yield finished.pop(turn)
                    break
                if turn in running and (running[turn].ready() or not pending):
                    yield running.pop(turn).get()
                    break
                i = pending.popleft()  # the turn's task is not done elsewhere yet: do the next one here
                finished[i] = work_batch(self.context, self.tasks[i])
        self.workers.finish()

    def _stored(self, records: list[Record]) -> list[Record]:
        """A Ray worker's records as this process's own: its file copies written into the work
        folder and logged (`work_batch`, inline); its packed copies, in memory, go to the commit."""
        files = [r for r in records if r.files]
        for record in files:
            for rel, data in record.files or []:
                _write(self.context.work / rel, data)
            record.files = None
        if files:
            self.context.journal.log(files)
        return records

    def __exit__(self, exc_type, *exc: object) -> None:
        self.workers.stop(error=exc_type is not None)
        self.context.journal.close()
        if self.cv2_threads is not None:
            import cv2

            cv2.setNumThreads(self.cv2_threads)
        self.bar.close()


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
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


def single_threaded() -> bool:
    """True when this process runs one OS thread (Linux: /proc/self/task), so fork is safe."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False
