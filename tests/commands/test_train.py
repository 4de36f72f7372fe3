"""`pipeline train` on the command line: outputs and saved config, config and data errors (exit 2,
one line), kill -9 and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.failpoints import ENV
from tests.helpers import invoke, make_classification_dataset, make_detection_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_train_writes_the_run_and_its_resolved_config(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=12)
    run = tmp_path / "run"
    result = invoke("train", str(data), "--out", str(run), "--epochs", "2", "--batch-size", "8", "--lr", "0.005",
                    "--seed", "3", "--set", "threads=1", "--set", "log_images=2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "trained standard NumberModel" in result.output and str(run) in result.output
    config = (run / "config.yaml").read_text()
    assert "batch_size: 8" in config and "lr: 0.005" in config and "seed: 3" in config and "threads: 1" in config
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and [h["epoch"] for h in metrics["history"]] == [1, 2]


def test_seed_recipe_and_config_file(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=8)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nthreads: 1\nlog_images: 0\n")
    result = invoke("train", str(data), "--out", str(tmp_path / "run"), "--recipe", "seed", "--config", str(cfg))
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "batch_size: 32" in saved and "schedule: none" in saved and "epochs: 1" in saved


@pytest.mark.parametrize("setup,args,message", [
    # bad YAML: names the file and line
    ("bad-yaml", ["--config", "{tmp}/bad.yaml"], "bad.yaml:2: not valid YAML"),
    # unknown key: lists the valid ones
    ("unknown-key", ["--config", "{tmp}/unknown.yaml"], "unknown config key 'learning_rate'"),
    # --set with an unknown key
    ("none", ["--set", "colour=blue"], "unknown config key 'colour'"),
    # a value of the wrong type
    ("none", ["--set", "batch_size=many"], "batch_size: expected an integer"),
])
def test_config_errors_exit_2_in_one_line(tmp_path, main, setup, args, message):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=4)
    (tmp_path / "bad.yaml").write_text("epochs: 2\n  lr: 0.1\n")
    (tmp_path / "unknown.yaml").write_text("learning_rate: 0.1\n")
    proc = main("train", str(data), "--out", str(tmp_path / "run"), *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _one_class(tmp: Path) -> Path:
    return make_classification_dataset(tmp / "ds", classes=1, per_class=4)


def _empty(tmp: Path) -> Path:
    from pipeline.core.dataset import DatasetWriter

    with DatasetWriter(tmp / "ds", task="classification", stage="t", classes=["a", "b"]):
        pass
    return tmp / "ds"


@pytest.mark.parametrize("make,message", [
    (_one_class, "only one class"),
    (_empty, "the dataset is empty"),
    (lambda tmp: make_detection_dataset(tmp / "ds"), "pipeline crop"),
    (lambda tmp: tmp / "missing", "no such dataset folder"),
])
def test_data_errors_exit_2_in_one_line(tmp_path, main, make, message):
    proc = main("train", str(make(tmp_path)), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Fix:" in lines[0], proc.stderr


def test_resume_without_a_run(tmp_path, main):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=4)
    proc = main("train", str(data), "--out", str(tmp_path / "nothing"), "--resume")
    assert proc.returncode == 2 and "no run to resume" in proc.stderr


def test_help_has_a_runnable_example():
    result = invoke("train", "--help")
    assert result.exit_code == 0 and "Example" in result.output and "pipeline train " in result.output


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_completes(tmp_path):
    """SIGKILL a training process once its second epoch is saved, then --resume: the run completes."""
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=150, seed=1)
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--epochs", "5", "--batch-size", "2",
            "--set", "threads=1", "--set", "log_images=0"]
    env = {**os.environ, "PIPELINE_CACHE_DIR": str(tmp_path / "cache")}
    # killed once the second epoch's checkpoints and metrics.json are written (pipeline.core.failpoints)
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env={**env, ENV: "train.epoch:2"},
                          capture_output=True, text=True, timeout=300, start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "running"
    done = len(json.loads((run / "metrics.json").read_text())["history"])
    assert done == 2

    resumed = subprocess.run([sys.executable, "-m", "pipeline", *args, "--resume"], capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} after epoch {done}" in resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4, 5]
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert metrics["history"][-1]["val_accuracy"] >= 0.9
