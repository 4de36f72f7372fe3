"""Fixtures shared by the command tests: a private tensor cache, the real entry point in this
process, and one small trained run for the commands that read a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import invoke, make_classification_dataset


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


@dataclass
class Done:
    """What one `pipeline ...` run in this process did: exit status and captured output."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def main(capsys):
    """The real console entry point (`pipeline.cli.main`: one-line errors, exit codes), in this process."""
    from pipeline.cli import main as entry

    def run(*args: str) -> Done:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            entry([str(a) for a in args])
        out = capsys.readouterr()
        return Done(exit_.value.code, out.out, out.err)

    return run


@dataclass
class TrainedRun:
    """A run trained for one epoch on a 3-class dataset (`data`), in `run`."""

    data: Path
    run: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedRun:
    root = tmp_path_factory.mktemp("trained")
    data = make_classification_dataset(root / "ds", classes=3, per_class=12)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_CACHE_DIR", str(root / "cache"))
        result = invoke("train", data, "--out", root / "run", "--epochs", "1", "--batch-size", "8",
                        "--set", "threads=1", "--set", "log_images=0", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return TrainedRun(data=data, run=root / "run")
