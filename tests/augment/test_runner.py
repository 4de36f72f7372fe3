"""The processes of a run: batches, what a batch returns where, and the worker processes' start."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from pipeline.augment import runner
from pipeline.augment.engine import Augmenter, aug_images
from pipeline.augment.journal import Journal, Spools, read_records
from pipeline.augment.recipe import load_recipe
from pipeline.augment.runner import BATCH, BATCH_MAX, WorkerContext, make_tasks, work_batch
from pipeline.augment.stage import run_augment
from pipeline.core.dataset import load_dataset
from pipeline.core.errors import DataError, UsageError
from tests.augment.conftest import RECIPES


def _context(data: Path, tmp_path: Path, pack: str, inline: bool) -> WorkerContext:
    state = tmp_path / "state"
    (state / "records").mkdir(parents=True, exist_ok=True)
    aug = Augmenter(load_dataset(data), load_recipe(RECIPES / "detection.yaml"), seed=2)
    return WorkerContext(aug, tmp_path / "work", Journal(state), pack, inline=inline)


@pytest.mark.parametrize("pack", ["always", "never"])
def test_the_writing_process_keeps_packed_copies_and_a_worker_spools_them(det_data, tmp_path, pack):
    """The same batch gives the same records either way; in the writing process packed copies stay
    in memory (only file copies are logged), a worker spools them and logs every record."""
    task = [(s.id, [1, 2]) for s in load_dataset(det_data).split("train")[:3]]
    here = _context(det_data, tmp_path / "here", pack, inline=True)
    records = work_batch(here, task)
    here.journal.close()
    assert [r.id for r in records] == [sample_id for sample_id, _ in task]
    logged_here = [r for p in (tmp_path / "here/state/records").glob("*.jsonl") for r in read_records(p.read_text())]
    assert [r.id for r in logged_here] == ([] if pack == "always" else [r.id for r in records])
    assert all((r.blobs is not None) == (pack == "always") and r.spool is None for r in records)

    worker = _context(det_data, tmp_path / "worker", pack, inline=False)
    where = work_batch(worker, task)
    worker.journal.close()
    spools = Spools(tmp_path / "worker" / "state")
    logged = spools.records(where)
    assert [r.bodies for r in logged] == [r.bodies for r in records]  # the same copies, byte for byte
    for here_record, record in zip(records, logged, strict=True):
        assert (record.spool is not None) == (pack == "always") and record.blobs is None
        if pack == "always":
            blobs = spools.read(record)
            assert blobs[record.with_original:] == here_record.blobs
            assert record.with_original == (here_record.original is not None)
    spools.close()
    if pack == "never":  # file copies: in the work folder, the same bytes from either process
        sample = worker.augmenter.by_id[task[0][0]]
        for _, image in aug_images(sample, 2):
            assert (tmp_path / "worker/work" / image).read_bytes() == (tmp_path / "here/work" / image).read_bytes()


@pytest.mark.parametrize(("todo", "workers", "area", "sizes"), [
    (40, 1, 0.0, [10] * 4),  # a small run: four batches per process
    (200, 1, 0.0, [BATCH] * 12 + [4, 4]),  # 16 a batch, the rest in quarter batches
    (200, 2, 0.0, [BATCH] * 8 + [4] * 18),  # the last 2 * workers batches in quarters
    (4000, 1, 2 * 28 * 28, [BATCH_MAX] * 31 + [32]),  # tiny images: up to 128 a batch, the rest a quarter one
    (3, 4, 0.0, [1, 1, 1]),
])
def test_batches_cover_every_sample_in_order(todo: int, workers: int, area: float, sizes: list[int]) -> None:
    items = list(range(todo))
    tasks = make_tasks(items, workers, area)
    assert [len(t) for t in tasks] == sizes
    assert [x for t in tasks for x in t] == items


def test_workers_that_come_up_late_or_not_at_all(det_data, tmp_path, monkeypatch, tree_bytes):
    """The writing process works alone until the worker processes are up: the same bytes whether
    they join after its first batch or only after its last task; a failure to start them is raised."""
    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=3, seed=5, workers=1)
    real, real_batch, real_finish = runner.server_context, runner.work_batch, runner.Workers.finish
    first_batch, all_done = threading.Event(), threading.Event()

    class Late:
        def __init__(self, until: threading.Event | None, error: bool = False) -> None:
            self.until, self.error = until, error

        def Pool(self, *args, **kwargs):  # noqa: N802 - multiprocessing's name
            if self.until is not None:
                self.until.wait()
            if self.error:
                raise OSError("no processes here")
            return real().Pool(*args, **kwargs)

    def batch(context, task):
        try:
            return real_batch(context, task)
        finally:
            first_batch.set()

    def finish(self):
        all_done.set()  # every task is done: only now may the workers come up
        real_finish(self)

    monkeypatch.setattr(runner, "single_threaded", lambda: False)  # the fork server's path
    monkeypatch.setattr(runner, "work_batch", batch)
    monkeypatch.setattr(runner.Workers, "finish", finish)
    for name, until in (("late", first_batch), ("after", all_done)):
        monkeypatch.setattr(runner, "server_context", lambda u=until: Late(u))
        run_augment(det_data, RECIPES / "detection.yaml", tmp_path / name, copies=3, seed=5, workers=2)
        assert until.is_set() and tree_bytes(tmp_path / name) == tree_bytes(reference)
    monkeypatch.setattr(runner, "server_context", lambda: Late(None, error=True))
    with pytest.raises(OSError, match="no processes here"):
        run_augment(det_data, RECIPES / "detection.yaml", tmp_path / "failed", copies=20, seed=5, workers=2)
    assert not (tmp_path / "failed").exists()


def test_workers_start_after_the_checks_and_are_stopped_before_a_failed_run_returns(cls_data, tmp_path,
                                                                                    monkeypatch):
    """A run that fails its checks starts no worker; one that fails while its workers are still
    starting stops them before it returns (a process that exits while the fork server spawns its
    workers would leave them failing)."""
    calls: list[str] = []
    failed = threading.Event()
    real_batch = runner.work_batch

    class FakePool:
        def terminate(self) -> None:
            calls.append("terminate")

        def join(self) -> None:
            calls.append("join")

    class Slow:
        def Pool(self, *args, **kwargs):  # noqa: N802 - multiprocessing's name
            calls.append("start")
            failed.wait()  # still starting when the run fails
            return FakePool()

    def batch(context, task):
        try:
            return real_batch(context, task)
        except DataError:
            failed.set()
            raise

    monkeypatch.setattr(runner, "single_threaded", lambda: False)
    monkeypatch.setattr(runner, "server_context", lambda: Slow())
    monkeypatch.setattr(runner, "work_batch", batch)
    with pytest.raises(UsageError, match="no such folder"):
        run_augment(tmp_path / "missing", RECIPES / "digits.yaml", tmp_path / "out", copies=1, workers=2)
    assert calls == []

    data = tmp_path / "data"
    shutil.copytree(cls_data, data)
    first = load_dataset(data).samples[0]
    (data / first.image).write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut short")  # fails the first batch
    with pytest.raises(DataError, match="unreadable or truncated"):
        run_augment(data, RECIPES / "digits.yaml", tmp_path / "out", copies=1, splits=["all"], workers=2)
    assert calls == ["start", "terminate", "join"]


def test_a_worker_whose_start_failed_raises_from_its_first_task(det_data, tmp_path, monkeypatch) -> None:
    plan = runner.Plan(str(tmp_path / "missing"), str(RECIPES / "detection.yaml"), 0, 1, ["train"])
    monkeypatch.setattr(runner, "_POOL_CONTEXT", None)
    runner._worker_init(plan, str(tmp_path / "work"), str(tmp_path / "state"), None)
    with pytest.raises(UsageError, match="no such folder"):
        runner._pool_batch([("x", [1])])
    context = _context(det_data, tmp_path, "always", inline=False)
    monkeypatch.setattr(runner, "_POOL_CONTEXT", None)
    runner._worker_init(plan, str(tmp_path / "work"), str(tmp_path / "state"), context.augmenter)  # forked
    assert isinstance(runner._POOL_CONTEXT, WorkerContext) and runner._POOL_CONTEXT.augmenter is context.augmenter
