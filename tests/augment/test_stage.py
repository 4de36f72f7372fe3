"""The offline `augment` stage: determinism across workers, resume after kill -9, the commit's syncs, CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.augment.journal import PACKS_KEPT, Spools, read_records
from pipeline.augment.stage import run_augment
from pipeline.cli import cli
from pipeline.core.dataset import load_dataset
from tests.augment.conftest import RECIPES
from tests.helpers import make_classification_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_output_has_originals_copies_and_records(cls_data, tmp_path):
    out = tmp_path / "aug"
    figures = run_augment(cls_data, RECIPES / "photos.yaml", out, copies=2, seed=1)
    src, ds = load_dataset(cls_data), load_dataset(out)
    train = [s for s in src.samples if s.split == "train"]
    assert figures["augmented"] == 2 * len(train) == len(ds) - len(src)
    by_id = {s.id: s for s in ds.samples}
    for s in src.samples:  # originals untouched, val/test never augmented
        assert by_id[s.id].sha256 == s.sha256
        assert (f"{s.id}~aug1" in by_id) == (s.split == "train")
    copy = by_id[f"{train[0].id}~aug1"]
    meta = copy.meta["augment"]
    assert meta["recipe"] == "photos" and len(meta["recipe_sha256"]) == 64
    assert isinstance(meta["seed"], int) and meta["copy"] == 1 and isinstance(meta["ops"], list)
    assert copy.source["parents"][0] == train[0].id
    for s in ds.samples:
        if s.soft_label:
            assert abs(sum(s.soft_label.values()) - 1) < 1e-3
        for pid in s.source.get("parents", [])[1:]:  # partners come from the same split
            assert by_id[pid].split == s.split
    assert ds.info.lineage[-1]["stage"] == "augment"
    assert not any(p.name.startswith(".aug.") for p in tmp_path.iterdir())  # work and state folders gone


@pytest.mark.parametrize("pack", ["auto", "never"])
def test_same_seed_same_bytes_for_any_worker_count(det_data, tmp_path, pack, tree_bytes):
    one = tmp_path / "one"
    two = tmp_path / "two"
    run_augment(det_data, RECIPES / "detection.yaml", one, copies=3, seed=5, workers=1, pack=pack)
    run_augment(det_data, RECIPES / "detection.yaml", two, copies=3, seed=5, workers=2, pack=pack)
    assert tree_bytes(one) == tree_bytes(two)
    three = tmp_path / "three"
    run_augment(det_data, RECIPES / "detection.yaml", three, copies=3, seed=5, workers=3, pack=pack)
    assert tree_bytes(one) == tree_bytes(three)
    packs = sorted(p.name for p in (one / "images").rglob("*.zip"))
    assert packs == ([] if pack == "never" else ["augment-00000.zip"])  # 64x48 images: packed under auto
    other = tmp_path / "other"
    run_augment(det_data, RECIPES / "detection.yaml", other, copies=3, seed=6, workers=1, pack=pack)
    assert tree_bytes(one) != tree_bytes(other)
    for s in load_dataset(one).samples:  # no box outside its image
        for o in s.objects or ():
            assert 0 <= o.bbox[0] <= o.bbox[2] <= s.width and 0 <= o.bbox[1] <= o.bbox[3] <= s.height


def test_packed_and_file_copies_hold_the_same_images(cls_data, tmp_path):
    """--pack changes where the copies are stored, nothing else: same ids, hashes, labels, records."""
    from pipeline.core.images import decode_array

    runs = {}
    for pack in ("always", "never"):
        run_augment(cls_data, RECIPES / "digits.yaml", tmp_path / pack, copies=2, seed=3, pack=pack)
        runs[pack] = load_dataset(tmp_path / pack)
    packed, files = runs["always"], runs["never"]
    assert [s.id for s in packed.samples] == [s.id for s in files.samples]
    for a, b in zip(packed.samples, files.samples, strict=True):
        assert (a.pack is not None) == ("~aug" in a.id or a.split == "train") and b.pack is None  # train: augmented
        assert a.image == b.image and a.sha256 == b.sha256 and a.meta == b.meta and a.label == b.label
        data = packed.read_image_bytes(a)
        assert data == (files.root / b.image).read_bytes()
        assert decode_array(data, a.image).shape == (a.height, a.width)
    assert not (packed.root / "images" / "augmented").exists()  # no stray files beside the packs


def test_a_bad_pack_mode_is_a_usage_error(cls_data, tmp_path):
    result = CliRunner().invoke(cli, ["augment", str(cls_data), "--recipe", str(RECIPES / "digits.yaml"),
                                      "--out", str(tmp_path / "o"), "--pack", "sometimes"])
    assert result.exit_code == 2 and "sometimes" in result.output


def test_refuses_a_recipe_the_dataset_cannot_take(det_data, tmp_path):
    recipe = tmp_path / "pairing.yaml"
    recipe.write_text("ops:\n  - {op: sample_pairing}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["augment", str(det_data), "--recipe", str(recipe), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "cannot handle boxes" in str(result.exception) + result.output
    assert not (tmp_path / "o").exists()


def test_refuses_to_augment_its_own_copies_twice(cls_data, tmp_path):
    from pipeline.core.errors import UsageError

    run_augment(cls_data, RECIPES / "digits.yaml", tmp_path / "a", copies=1)
    with pytest.raises(UsageError, match="already holds a sample"):
        run_augment(tmp_path / "a", RECIPES / "digits.yaml", tmp_path / "b", copies=1)


# `pipeline augment ...` that stops for good once 10 samples are logged and says so on stdout, so
# the test kills it there (argv: the records folder, then the command's arguments)
PAUSED_CLI = """
import sys, threading
from pathlib import Path
from pipeline.augment import journal, runner

records, real = Path(sys.argv[1]), runner.Work.__iter__

def paused(self):
    for record in real(self):
        yield record
        logs = sorted(records.glob("*.jsonl"))
        if sum(len(list(journal.read_records(p.read_bytes().decode("utf-8", "replace")))) for p in logs) >= 10:
            print("paused", flush=True)
            threading.Event().wait()  # until the test kills the process group

runner.Work.__iter__ = paused
from pipeline.cli import main
sys.argv = ["pipeline", *sys.argv[2:]]
main()
"""


def _logged(records: Path) -> int:
    """Samples logged (whole records) in a run's records folder."""
    return sum(len(list(read_records(p.read_bytes().decode("utf-8", "replace")))) for p in records.glob("*.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize("pack", ["auto", "never"])  # copies in packs (96x96 images) or as files
def test_resume_after_kill_gives_identical_output(tmp_path, pack, tree_bytes, request):
    data = make_classification_dataset(tmp_path / "data", classes=3, per_class=40, size=96, splits=None)
    recipe = tmp_path / "slow.yaml"
    recipe.write_text("ops:\n  - {op: elastic, alpha: 20, sigma: 4}\n  - {op: perspective}\n  - {op: sharpen}\n",
                      encoding="utf-8")
    args = ["augment", str(data), "--recipe", str(recipe), "--copies", "6", "--splits", "all", "--seed", "2",
            "--pack", pack]
    reference = tmp_path / "reference"
    assert CliRunner().invoke(cli, [*args, "--out", str(reference)]).exit_code == 0

    out = tmp_path / "out"
    (tmp_path / "tmp").mkdir()  # what the killed process cannot clean up (multiprocessing's folder) stays here,
    short = Path(tempfile.mkdtemp(prefix="aug-")) / "tmp"  # reached by a short path: the fork server's socket
    short.symlink_to(tmp_path / "tmp")  # lives there, and a socket's path has at most 107 bytes
    request.addfinalizer(lambda: shutil.rmtree(short.parent))
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "TMPDIR": str(short)}
    records = tmp_path / ".out.augment-state" / "records"
    with open(tmp_path / "stderr.txt", "wb") as stderr:  # (a pipe nobody reads could fill and stall the run)
        proc = subprocess.Popen([sys.executable, "-c", PAUSED_CLI, str(records), *args, "--out", str(out),
                                 "--workers", "2"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
        said = proc.stdout.readline()  # the run has logged 10 samples and waits there (or it ended: no line)
    assert said == b"paused\n", ("the run ended before it could be interrupted: "
                                  + (tmp_path / "stderr.txt").read_text(errors="replace")[-2000:])
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, like kill -9 on the process group
    proc.wait()
    proc.stdout.close()
    assert not out.exists()
    done = _logged(records)
    assert 10 <= done < 120

    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    resumed = int(next(line for line in result.output.splitlines() if "resumed" in line).split()[1])
    assert resumed >= done - 2  # records written after the count above may also have been kept
    assert tree_bytes(out) == tree_bytes(reference)
    assert not list(out.rglob("*.tmp")) and not list(tmp_path.glob(".out.*"))
    assert bool(list(out.rglob("*.zip"))) == (pack == "auto")


def _interrupted(monkeypatch, det_data: Path, out: Path, at: tuple[object, str], *, copies: int, seed: int,
                 workers: int = 1) -> None:
    """A packed run of the detection recipe that dies (KeyboardInterrupt) when `at` (an object
    and the name of its method) is called, leaving its work and state folders behind; with two
    workers, both the worker process and the writing process make copies (`_writer_waits_for_workers`)."""

    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        if workers > 1:
            _writer_waits_for_workers(m)
        m.setattr(*at, crash)
        with pytest.raises(KeyboardInterrupt):
            run_augment(det_data, RECIPES / "detection.yaml", out, copies=copies, seed=seed, pack="always",
                        workers=workers)


def test_a_rerun_takes_copies_from_the_workers_spool_and_from_the_kept_packs(det_data, tmp_path, monkeypatch,
                                                                              tree_bytes):
    """Copies the worker processes made wait in their spool files, copies the writing process made
    go straight into its pack; after a crash the rerun takes both back (the run's packs are kept
    in the state folder) and equals an uninterrupted run."""

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=4, seed=8, pack="always")
    out = tmp_path / "out"  # dies with the records, spool and pack in place:
    _interrupted(monkeypatch, det_data, out, (Spools, "discard"), copies=4, seed=8, workers=2)
    heads = _heads(tmp_path / ".out.augment-state")
    assert any(h.spool is not None for h in heads) and any(h.pack is not None for h in heads)
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=4, seed=8, pack="always", workers=2)
    train = [s for s in load_dataset(det_data).samples if s.split == "train"]
    assert figures["resumed"] == len(heads) == len(train)
    assert tree_bytes(out) == tree_bytes(reference)


def _writer_waits_for_workers(monkeypatch) -> None:
    """The writing process starts its first batch only once the worker process is up, so both
    make copies: the worker takes the tasks handed out then, the writing process the first one
    and any the pool has not taken (workers from the fork server import `runner` afresh: the
    patched `work_batch` runs in the writing process only)."""
    from pipeline.augment import runner

    up = threading.Event()
    starts: list[threading.Thread] = []
    real_create, real_batch = runner.Workers._create, runner.work_batch

    def create(self, ctx, augmenter):
        starts.append(threading.current_thread())
        try:
            real_create(self, ctx, augmenter)
        finally:
            up.set()

    def batch(context, task):
        up.wait()
        for thread in starts:  # the start is over: the pool is ready for the next hand-out
            if thread is not threading.current_thread():
                thread.join()
        return real_batch(context, task)

    monkeypatch.setattr(runner, "single_threaded", lambda: False)  # workers from the fork server
    monkeypatch.setattr(runner.Workers, "_create", create)
    monkeypatch.setattr(runner, "work_batch", batch)


def _heads(state: Path) -> list:
    """The records logged in a run's state folder."""
    return [r for p in sorted((state / "records").glob("*.jsonl")) for r in read_records(p.read_text("utf-8"))]


def test_a_crash_after_the_spool_is_emptied_redoes_only_the_spooled_samples(det_data, tmp_path, monkeypatch,
                                                                             tree_bytes):
    """The spool is emptied before the final sync; a run that dies between that and the commit
    leaves the worker's logged samples without their images: the rerun redoes them, takes the
    writing process's own copies from its kept pack, and equals a clean run."""
    from pipeline.core.dataset import DatasetWriter

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=2, seed=4, pack="always")
    out = tmp_path / "out"
    _interrupted(monkeypatch, det_data, out, (DatasetWriter, "finish"), copies=2, seed=4, workers=2)
    state = tmp_path / ".out.augment-state"
    heads = _heads(state)
    assert any(h.spool is not None for h in heads) and not list((state / "spool").glob("*"))
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=2, seed=4, pack="always")
    assert figures["resumed"] == sum(h.pack is not None for h in heads) > 0
    assert tree_bytes(out) == tree_bytes(reference)


@pytest.mark.parametrize("limit", [1000, 2])
def test_copies_written_as_files_reach_the_disk_before_the_commit(det_data, tmp_path, monkeypatch, limit):
    """A few copies written as files are each fsynced from the writer's sync thread while the run
    goes on; past FSYNC_FILES_MAX, one sync covers the rest."""
    from pipeline.augment import stage

    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(stage, "FSYNC_FILES_MAX", limit)
    monkeypatch.setattr(os, "fsync",
                        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1])
    monkeypatch.setattr(os, "sync", lambda: synced.append("sync"))
    run_augment(det_data, RECIPES / "detection.yaml", tmp_path / "out", copies=2, seed=1, pack="never")
    copies = [s.image for s in load_dataset(tmp_path / "out").samples if "~aug" in s.id]
    work = tmp_path / ".out.augment-work"
    files = [name for name in synced if name.startswith(str(work / "images" / "augmented"))]
    if limit > len(copies):
        assert sorted(files) == sorted(str(work / c) for c in copies) and "sync" not in synced
    else:
        assert len(files) == limit and "sync" in synced


def test_a_pack_goes_to_the_disk_while_it_fills(det_data, tmp_path, monkeypatch, tree_bytes):
    """Every SYNC_EVERY bytes, what a pack holds so far is flushed from the sync thread; the last
    sync after its close covers the rest; the bytes are those of a run without the early syncs."""
    from pipeline.augment import stage

    run_augment(det_data, RECIPES / "detection.yaml", tmp_path / "reference", copies=3, seed=2, pack="always")
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(stage, "SYNC_EVERY", 4096)
    monkeypatch.setattr(os, "fsync",
                        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1])
    run_augment(det_data, RECIPES / "detection.yaml", tmp_path / "out", copies=3, seed=2, pack="always")
    assert sum(name.endswith("augment-00000.zip") for name in synced) > 3
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "reference")


def test_a_rerun_interrupted_in_turn_still_ends_equal_to_a_clean_run(det_data, tmp_path, monkeypatch, tree_bytes):
    """Interrupted twice (the second run's packs replace the first run's kept ones), the third run
    takes back what still hashes right and equals a clean run."""

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=2, seed=9, pack="always")
    out = tmp_path / "out"
    for workers in (1, 2):
        _interrupted(monkeypatch, det_data, out, (Spools, "discard"), copies=2, seed=9, workers=workers)
    assert list((tmp_path / ".out.augment-state" / PACKS_KEPT).glob("*.zip"))
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=2, seed=9, pack="always")
    assert figures["resumed"] > 0
    assert tree_bytes(out) == tree_bytes(reference)


def test_a_log_torn_by_a_kill_redoes_only_the_torn_sample(det_data, tmp_path, monkeypatch, tree_bytes):
    """Each sample's record is a head line and its copies' lines; a record cut anywhere (here in
    the middle of its last copy line, and a stray half line after it) is redone, the others are
    taken from the log and the kept pack as they are."""

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=3, seed=6, pack="always")
    out = tmp_path / "out"  # dies with the records and the pack in place:
    _interrupted(monkeypatch, det_data, out, (Spools, "discard"), copies=3, seed=6)
    (log,) = (tmp_path / ".out.augment-state" / "records").glob("*.jsonl")
    text = log.read_bytes()
    heads = len(list(read_records(text.decode("utf-8"))))
    log.write_bytes(text[:-40] + b'\n{"id":"half a line')  # the last record cut, then a torn line
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=3, seed=6, pack="always")
    assert figures["resumed"] == heads - 1 > 0
    assert tree_bytes(out) == tree_bytes(reference)


def test_cli_help_has_an_example_and_preview_renders(cls_data, det_data, tmp_path):
    from PIL import Image

    from pipeline.augment.preview import render_recipe_preview

    result = CliRunner().invoke(cli, ["augment", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output
    for data, recipe in ((cls_data, "photos"), (det_data, "detection")):
        png = render_recipe_preview(load_dataset(data), RECIPES / f"{recipe}.yaml", tmp_path / f"{recipe}.png", n=4)
        with Image.open(png) as im:
            assert im.size[0] > 200 and im.size[1] > 200


def test_the_source_class_ids_are_kept(tmp_path):
    import json

    from tests.helpers import make_detection_dataset

    src = make_detection_dataset(tmp_path / "det", n=4)
    info = json.loads((src / "dataset.json").read_text())
    (src / "dataset.json").write_text(json.dumps({**info, "class_ids": {"red": 5, "green": 1}}))
    run_augment(src, RECIPES / "detection.yaml", tmp_path / "aug", copies=1, seed=0, workers=1)
    ds = load_dataset(tmp_path / "aug")
    assert ds.classes == ["red", "green"] and ds.info.class_ids == {"red": 5, "green": 1}
