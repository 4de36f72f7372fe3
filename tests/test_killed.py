"""Killed at any point: every writing stage, SIGKILLed at named points (`pipeline.core.failpoints`),
then run again, gives the bytes of a clean run (recorded times aside), and its input is untouched.

One case = (stage, kill point). For each: a clean run in this process, its output kept as bytes
and removed; the same command in a child process with ``PIPELINE_FAILPOINT`` set, which must die
by SIGKILL at that point; the same command again in this process; then the output must equal the
clean run's, nothing may be left beside it, and the input must hash as before. Cases marked
``replace`` start with the clean output in place and run with ``--overwrite`` (the kill falls
between moving the earlier output aside and renaming the new one in).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.core.failpoints import ENV
from tests.helpers import digit_png, make_classification_dataset, make_detection_dataset, run_cli, zipped
from tests.sources.servers import LocalServer, Route

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "augment" / "digits.yaml"
TIMES = {"time", "started", "finished", "resumed", "elapsed_train_seconds", "samples_per_second", "train_seconds",
         "train_cpu_seconds", "elapsed_train_cpu_seconds", "cache_seconds", "cache_build_seconds", "threads"}  # what a rerun records anew (a rerun finds the cache)
SKIP = {"tensorboard"}  # event files are named by time and host


@dataclass(frozen=True)
class Case:
    stage: str
    point: str  # PIPELINE_FAILPOINT for the killed run
    replace: bool = False  # an earlier output in place, and --overwrite


CASES = [
    Case("import", "writer.add:2"), Case("import", "writer.commit"), Case("import", "replace_dir", replace=True),
    Case("export", "export.written"), Case("export", "replace_dir", replace=True),
    Case("crop", "writer.add:3"), Case("crop", "writer.commit"), Case("crop", "replace_dir", replace=True),
    Case("augment", "journal.records"), Case("augment", "writer.commit"), Case("augment", "replace_dir", replace=True),
    Case("split", "rewrite.samples"), Case("split", "rewrite.info"),
    Case("fetch", "http.chunk"), Case("fetch", "writer.add:3"), Case("fetch", "replace_dir", replace=True),
    Case("train", "train.epoch:1"),
]


def _normal(value):
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` by relative path: its bytes, JSON with recorded times left out."""
    files = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or SKIP & set(rel.parts):
            continue
        data = p.read_bytes()
        if p.suffix == ".json":
            data = json.dumps(_normal(json.loads(data)), sort_keys=True).encode()
        elif p.name == "resume.pt":  # a training run's state: its history records times too
            data = _state_bytes(data)
        files[rel.as_posix()] = data
    return files


def _state_bytes(data: bytes) -> bytes:
    import io

    import torch

    state = torch.load(io.BytesIO(data), weights_only=True)
    state["history"], state["best"] = _normal(state["history"]), _normal(state["best"])
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + (p.read_bytes() if p.is_file() else b"/"))
    return h.hexdigest()


class World:
    """The inputs every case reads, made once, and the command of each stage."""

    def __init__(self, root: Path, server: LocalServer) -> None:
        self.root = root
        self.det = make_detection_dataset(root / "in" / "det", n=4)
        self.cls = make_classification_dataset(root / "in" / "cls", classes=2, per_class=3, splits=None)
        self.pristine = make_classification_dataset(root / "pristine", classes=2, per_class=4, splits=None)
        self.voc = root / "in" / "voc"
        assert run_cli(["export", str(self.det), "--format", "voc", "--out", str(self.voc)]) == 0
        tree = {f"digits/{c}/{i}.png": digit_png(c, i + 10 * c) for c in (0, 1) for i in range(3)}
        blob = zipped(tree)
        server.routes["/digits.zip"] = Route(blob, content_type="application/zip", chunk=1024)
        self.url, self.sha = server.url("/digits.zip"), hashlib.sha256(blob).hexdigest()
        self.work = root / "work"
        self.work.mkdir()

    def command(self, stage: str) -> tuple[list[str], Path, Path | None]:
        """The stage's arguments, its output folder, and its input folder (None: split works in place)."""
        out = self.work / stage
        if stage == "import":
            return ["import", "voc", str(self.voc), "--out", str(out)], out, self.root / "in"
        if stage == "export":
            return ["export", str(self.det), "--format", "yolo", "--out", str(out)], out, self.root / "in"
        if stage == "crop":
            return ["crop", str(self.det), "--out", str(out), "--pad", "0.1"], out, self.root / "in"
        if stage == "augment":
            return (["augment", str(self.cls), "--recipe", str(RECIPE), "--copies", "1", "--splits", "all",
                     "--seed", "3", "--out", str(out)], out, self.root / "in")
        if stage == "split":
            return ["split", str(out), "--val", "0.25", "--test", "0.25", "--seed", "1"], out, None
        if stage == "fetch":
            return (["fetch", "url", self.url, "--sha256", self.sha, "--out", str(out), "--allow-private",
                     "--rate", "0", "--raw", str(self.work / "fetch-raw")], out, self.root / "in")
        if stage == "train":
            return (["train", str(self.cls), "--out", str(out), "--epochs", "2", "--batch-size", "2",
                     "--set", "threads=1", "--set", "log_images=0", "--device", "cpu"], out, self.root / "in")
        raise AssertionError(stage)

    def reset(self, stage: str) -> None:
        """Nothing of an earlier case left in the work folder (split: a fresh unsplit dataset)."""
        shutil.rmtree(self.work)
        self.work.mkdir()
        if stage == "split":
            shutil.copytree(self.pristine, self.work / "split")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("killed")
    with pytest.MonkeyPatch.context() as mp, LocalServer() as server:
        mp.setenv("PIPELINE_CACHE_DIR", str(root / "cache"))
        mp.delenv(ENV, raising=False)
        yield World(root, server)


@pytest.fixture(scope="module")
def clean(world):
    """Each stage's clean output, as `snapshot` bytes (computed on first use)."""
    done: dict[str, dict[str, bytes]] = {}

    def get(stage: str) -> dict[str, bytes]:
        if stage not in done:
            world.reset(stage)
            args, out, _ = world.command(stage)
            assert run_cli(args) == 0
            done[stage] = snapshot(out)
        return done[stage]

    return get


def killed_run(args: list[str], point: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, ENV: point, "PIPELINE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline", "--quiet", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, start_new_session=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.stage}-{c.point}")
def test_killed_then_rerun_gives_a_clean_runs_output(world, clean, case):
    expected = clean(case.stage)
    world.reset(case.stage)
    args, out, inputs = world.command(case.stage)
    if case.replace:
        assert run_cli(args) == 0
        args = [*args, "--overwrite"]
    before = tree_hash(inputs) if inputs is not None else None

    died = killed_run(args, case.point, world.root / "cache")
    assert died.returncode == -signal.SIGKILL, f"not killed at {case.point}: {died.returncode}\n{died.stderr}"
    assert run_cli(args) == 0

    got = snapshot(out)
    assert sorted(got) == sorted(expected)
    assert [k for k in got if got[k] != expected[k]] == []
    beside = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))
    assert beside == []  # no temporary, old or state folder left
    inside = sorted(p.name for p in out.rglob(".*") if p.name != ".pipeline-export")
    assert inside == []
    if inputs is not None:
        assert tree_hash(inputs) == before
