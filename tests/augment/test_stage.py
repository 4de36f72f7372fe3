"""The offline `augment` stage: determinism across workers, resume after kill -9, records, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.augment.recipe import OPS
from pipeline.augment.stage import run_augment
from pipeline.cli import cli
from pipeline.core.dataset import load_dataset
from tests.helpers import make_classification_dataset, make_detection_dataset

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "augment"


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's bytes except dataset.json (whose lineage carries the time of the run)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "dataset.json"}


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory) -> Path:
    return make_classification_dataset(tmp_path_factory.mktemp("cls") / "data", classes=3, per_class=10)


@pytest.fixture(scope="module")
def det_data(tmp_path_factory) -> Path:
    return make_detection_dataset(tmp_path_factory.mktemp("det") / "data", n=10)


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
def test_same_seed_same_bytes_for_any_worker_count(det_data, tmp_path, pack):
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


@pytest.mark.slow
@pytest.mark.parametrize("pack", ["auto", "never"])  # copies in packs (96x96 images) or as files
def test_resume_after_kill_gives_identical_output(tmp_path, pack):
    data = make_classification_dataset(tmp_path / "data", classes=3, per_class=40, size=96, splits=None)
    recipe = tmp_path / "slow.yaml"
    recipe.write_text("ops:\n  - {op: elastic, alpha: 20, sigma: 4}\n  - {op: perspective}\n  - {op: sharpen}\n",
                      encoding="utf-8")
    args = ["augment", str(data), "--recipe", str(recipe), "--copies", "6", "--splits", "all", "--seed", "2",
            "--pack", pack]
    reference = tmp_path / "reference"
    assert CliRunner().invoke(cli, [*args, "--out", str(reference)]).exit_code == 0

    out = tmp_path / "out"
    (tmp_path / "tmp").mkdir()  # what the killed process cannot clean up (multiprocessing's folder) stays here
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "TMPDIR": str(tmp_path / "tmp")}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args, "--out", str(out), "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    records = tmp_path / ".out.augment-state" / "records"

    def logged() -> int:
        return sum(p.read_bytes().count(b'{"done":') for p in records.glob("*.jsonl")) if records.is_dir() else 0

    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if logged() >= 10:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, like kill -9 on the process group
    proc.wait()
    assert not out.exists()
    done = logged()
    assert 10 <= done < 120

    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    resumed = int(next(line for line in result.output.splitlines() if "resumed" in line).split()[1])
    assert resumed >= done - 2  # records written after the count above may also have been kept
    assert tree_bytes(out) == tree_bytes(reference)
    assert not list(out.rglob("*.tmp")) and not list(tmp_path.glob(".out.*"))
    assert bool(list(out.rglob("*.zip"))) == (pack == "auto")


def test_workers_that_come_up_late_or_not_at_all(det_data, tmp_path, monkeypatch):
    """The writing process works alone until the worker processes are up: the same bytes whether
    they join during the run or only after its last task; a failure to start them is raised."""
    from pipeline.augment import stage

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=3, seed=5, workers=1)
    real = stage.server_context

    class Late:
        def __init__(self, delay: float, error: bool = False) -> None:
            self.delay, self.error = delay, error

        def Pool(self, *args, **kwargs):  # noqa: N802 - multiprocessing's name
            time.sleep(self.delay)
            if self.error:
                raise OSError("no processes here")
            return real().Pool(*args, **kwargs)

    monkeypatch.setattr(stage, "_single_threaded", lambda: False)  # the fork server's path
    for name, delay in (("late", 0.2), ("after", 3.0)):
        monkeypatch.setattr(stage, "server_context", lambda d=delay: Late(d))
        run_augment(det_data, RECIPES / "detection.yaml", tmp_path / name, copies=3, seed=5, workers=2)
        assert tree_bytes(tmp_path / name) == tree_bytes(reference)
    monkeypatch.setattr(stage, "server_context", lambda: Late(0.0, error=True))
    with pytest.raises(OSError, match="no processes here"):
        run_augment(det_data, RECIPES / "detection.yaml", tmp_path / "failed", copies=20, seed=5, workers=2)
    assert not (tmp_path / "failed").exists()


def _interrupted(monkeypatch, det_data: Path, out: Path, at: tuple[object, str], *, copies: int, seed: int,
                 workers: int = 1) -> None:
    """A packed run of the detection recipe that dies (KeyboardInterrupt) when `at` (an object
    and the name of its method) is called, leaving its work and state folders behind; with two
    workers, the worker process makes most copies (`_slow_writer`)."""

    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        if workers > 1:
            _slow_writer(m)
        m.setattr(*at, crash)
        with pytest.raises(KeyboardInterrupt):
            run_augment(det_data, RECIPES / "detection.yaml", out, copies=copies, seed=seed, pack="always",
                        workers=workers)


def test_a_rerun_takes_copies_from_the_workers_spool_and_from_the_kept_packs(det_data, tmp_path, monkeypatch):
    """Copies the worker processes made wait in their spool files, copies the writing process made
    go straight into its pack; after a crash the rerun takes both back (the run's packs are kept
    in the state folder) and equals an uninterrupted run."""
    from pipeline.augment import stage

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=4, seed=8, pack="always")
    out = tmp_path / "out"  # dies with the records, spool and pack in place:
    _interrupted(monkeypatch, det_data, out, (stage._Spools, "discard"), copies=4, seed=8, workers=2)
    heads = _heads(tmp_path / ".out.augment-state")
    assert any("spool" in h for h in heads) and any("pack" in h for h in heads)
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=4, seed=8, pack="always", workers=2)
    train = [s for s in load_dataset(det_data).samples if s.split == "train"]
    assert figures["resumed"] == len(heads) == len(train)
    assert tree_bytes(out) == tree_bytes(reference)


def test_workers_start_after_the_checks_and_are_stopped_before_a_failed_run_returns(cls_data, tmp_path,
                                                                                    monkeypatch):
    """A run that fails its checks starts no worker; one that fails while its workers are still
    starting stops them before it returns (a process that exits while the fork server spawns its
    workers would leave them failing)."""
    from pipeline.augment import stage
    from pipeline.core.errors import DataError, UsageError

    calls: list[str] = []

    class FakePool:
        def terminate(self) -> None:
            calls.append("terminate")

        def join(self) -> None:
            calls.append("join")

    class Slow:
        def Pool(self, *args, **kwargs):  # noqa: N802 - multiprocessing's name
            calls.append("start")
            time.sleep(0.5)  # still starting when the run fails
            return FakePool()

    monkeypatch.setattr(stage, "_single_threaded", lambda: False)
    monkeypatch.setattr(stage, "server_context", lambda: Slow())
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


def _slow_writer(monkeypatch) -> None:
    """The writing process takes 0.3 s more per batch of its own, so the worker process makes
    most copies (the pool sends `_work_batch` by name; workers import the module afresh)."""
    from pipeline.augment import stage

    real = stage._work_batch

    def slow(batch):
        time.sleep(0.3)
        return real(batch)

    slow.__module__, slow.__qualname__ = real.__module__, real.__qualname__
    monkeypatch.setattr(stage, "_single_threaded", lambda: False)  # workers from the fork server
    monkeypatch.setattr(stage, "_work_batch", slow)


def _heads(state: Path) -> list[dict]:
    text = b"".join(p.read_bytes() for p in (state / "records").glob("*.jsonl"))
    return [json.loads(line) for line in text.splitlines() if line.startswith(b'{"done":')]


def test_a_crash_after_the_spool_is_emptied_redoes_only_the_spooled_samples(det_data, tmp_path, monkeypatch):
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
    assert any("spool" in h for h in heads) and not list((state / "spool").glob("*"))
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=2, seed=4, pack="always")
    assert figures["resumed"] == sum("pack" in h for h in heads) > 0
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


def test_a_pack_goes_to_the_disk_while_it_fills(det_data, tmp_path, monkeypatch):
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


def test_a_rerun_interrupted_in_turn_still_ends_equal_to_a_clean_run(det_data, tmp_path, monkeypatch):
    """Interrupted twice (the second run's packs replace the first run's kept ones), the third run
    takes back what still hashes right and equals a clean run."""
    from pipeline.augment import stage

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=2, seed=9, pack="always")
    out = tmp_path / "out"
    for workers in (1, 2):
        _interrupted(monkeypatch, det_data, out, (stage._Spools, "discard"), copies=2, seed=9, workers=workers)
    assert list((tmp_path / ".out.augment-state" / stage.PACKS_KEPT).glob("*.zip"))
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=2, seed=9, pack="always")
    assert figures["resumed"] > 0
    assert tree_bytes(out) == tree_bytes(reference)


def test_a_log_torn_by_a_kill_redoes_only_the_torn_sample(det_data, tmp_path, monkeypatch):
    """Each sample's record is a head line and its copies' lines; a record cut anywhere (here in
    the middle of its last copy line, and a stray half line after it) is redone, the others are
    taken from the log and the kept pack as they are."""
    from pipeline.augment import stage

    reference = tmp_path / "reference"
    run_augment(det_data, RECIPES / "detection.yaml", reference, copies=3, seed=6, pack="always")
    out = tmp_path / "out"  # dies with the records and the pack in place:
    _interrupted(monkeypatch, det_data, out, (stage._Spools, "discard"), copies=3, seed=6)
    (log,) = (tmp_path / ".out.augment-state" / "records").glob("*.jsonl")
    text = log.read_bytes()
    heads = text.count(b'{"done":')
    log.write_bytes(text[:-40] + b'\n{"id":"half a line')  # the last record cut, then a torn line
    figures = run_augment(det_data, RECIPES / "detection.yaml", out, copies=3, seed=6, pack="always")
    assert figures["resumed"] == heads - 1 > 0
    assert tree_bytes(out) == tree_bytes(reference)


def test_cli_help_has_an_example_and_preview_renders(cls_data, det_data, tmp_path):
    from PIL import Image

    from pipeline.augment.preview import render_recipe_preview

    result = CliRunner().invoke(cli, ["augment", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    for data, recipe in ((cls_data, "photos"), (det_data, "detection")):
        png = render_recipe_preview(load_dataset(data), RECIPES / f"{recipe}.yaml", tmp_path / f"{recipe}.png", n=4)
        with Image.open(png) as im:
            assert im.size[0] > 200 and im.size[1] > 200


def test_params_recorded_regenerate_the_image(det_data, tmp_path):
    """The recorded seed regenerates a copy exactly (audit trail)."""
    from pipeline.augment.recipe import load_recipe
    from pipeline.augment.stage import Augmenter, encode, out_ext

    out = tmp_path / "aug"
    run_augment(det_data, RECIPES / "detection.yaml", out, copies=1, seed=9)
    ds = load_dataset(out)
    copy = next(s for s in ds.samples if "~aug" in s.id)
    aug = Augmenter(load_dataset(det_data), load_recipe(RECIPES / "detection.yaml"), seed=9)
    parent = aug.by_id[copy.source["parents"][0]]
    result = aug.augment(parent, 1)
    assert result.seed == copy.meta["augment"]["seed"]
    assert encode(result.item.image, out_ext(parent)) == ds.read_image_bytes(copy)
    assert json.dumps(result.item.params, sort_keys=True) == json.dumps(copy.meta["augment"]["ops"], sort_keys=True)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_works_on_classification_and_detection_or_refuses_clearly(op, cls_data, det_data):
    from pipeline.augment.recipe import parse_recipe
    from pipeline.augment.stage import Augmenter
    from pipeline.core.dataset import dumps_sample, parse_sample_line
    from pipeline.core.errors import ConfigError

    recipe = parse_recipe({"ops": [{"op": op, "p": 1.0}]}, f"{op}.yaml")
    for path in (cls_data, det_data):
        ds = load_dataset(path)
        try:
            aug = Augmenter(ds, recipe, seed=1)
        except ConfigError as exc:
            assert path == det_data and "cannot handle boxes" in str(exc)  # SamplePairing only
            continue
        for sample in ds.split("train")[:2]:
            result = aug.augment(sample, 1)
            new = aug.to_sample(sample, 1, result, image="images/x.png", sha256="0" * 64)
            parse_sample_line(dumps_sample(new), set(ds.classes))  # valid for the core (soft labels sum to 1)
            assert result.item.params and result.item.params[-1]["op"].split(".")[0] == op or op == "grayscale"
            for o in new.objects or ():
                assert 0 <= o.bbox[0] <= o.bbox[2] <= new.width and 0 <= o.bbox[1] <= o.bbox[3] <= new.height
