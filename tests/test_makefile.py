"""The Makefile: a target for every stage and source, each listed by `make help` with its variables,
and the commands the targets run (`make -n`, nothing executed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

STAGES = ["fetch", "fetch-mnist", "fetch-kaggle", "fetch-hf", "fetch-url", "crawl", "import", "export", "split",
          "train", "validate", "predict", "augment", "preview", "check", "stats", "crop", "model", "prelabel", "relabel",
          "view", "label-issues", "consensus"]


def make(*args: str, stamp: Path) -> str:
    """`make -n ARGS` with a fresh install stamp, so the dry run shows only the target's own commands."""
    proc = subprocess.run(["make", "-n", f"VENV={stamp.parent}", "PIPELINE=pipeline", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def stamp(tmp_path):
    path = tmp_path / "venv" / ".installed"
    path.parent.mkdir()
    path.touch()
    return path


def test_help_lists_every_target_of_the_makefile_with_its_variables():
    proc = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = re.findall(r"^  make ([a-z-]+) ", proc.stdout, flags=re.MULTILINE)
    defined = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert set(defined) <= set(listed) and set(STAGES) <= set(listed)
    lines = {m.group(1): m.group(2) for m in re.finditer(r"^  make ([a-z-]+)\s+(.*)$", proc.stdout, re.MULTILINE)}
    for target, variables in {"fetch-kaggle": ["REF", "COMPETITION", "FILE", "OUT"], "fetch-hf": ["REPO", "OUT"],
                              "fetch-url": ["URLS", "LIST", "OUT"], "crawl": ["URL", "OUT"],
                              "train": ["VARIANT", "AUGMENT", "CONFIG", "DATA", "RUN"],
                              "augment": ["SPLITS", "WORKERS", "RECIPE", "COPIES", "ENGINE", "ADDRESS"],
                              "crop": ["ENGINE", "ADDRESS"], "import": ["ENGINE", "ADDRESS"], "preview": ["RECIPE"],
                              "model": ["VARIANT", "GROUPS", "WIDTHS"]}.items():
        assert all(v in lines[target] for v in variables), (target, lines[target])
    assert "ImageFolder tree" in proc.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (["fetch-mnist"], "pipeline fetch mnist --out datasets/mnist"),
    (["fetch-kaggle", "REF=team/digits", "OUT=d"], "pipeline fetch kaggle team/digits  --out d"),
    (["fetch-kaggle", "COMPETITION=digit-recognizer", "FILE=train.csv", "OUT=d"],
     "pipeline fetch kaggle --competition digit-recognizer --file train.csv --out d"),
    (["fetch-hf", "REPO=ylecun/mnist", "INCLUDE=*.parquet", "OUT=d"],
     "pipeline fetch hf ylecun/mnist  --include '*.parquet' --out d"),
    (["fetch-url", "URLS=https://example.org/a.zip", "LABEL=cat", "OUT=d"],
     "pipeline fetch url https://example.org/a.zip  --label 'cat' --out d"),
    (["crawl", "URL=https://example.org/", "OUT=d"], "pipeline crawl https://example.org/ --depth 1 --max-images 100"),
    (["train", "DATA=photos", "VARIANT=autoencoder", "AUGMENT=r.yaml", "SET=groups=4 threads=1"],
     "--variant autoencoder --augment r.yaml --set groups=4 --set threads=1"),
    (["export", "FORMAT=webdataset", "OUT=shards", "SHARD_SIZE=500"],
     "pipeline export datasets/mnist-embedded --format webdataset --out shards --shard-size 500"),
    (["train", "NPROC=2"], "/bin/torchrun --standalone --nproc-per-node 2 -m pipeline train datasets/mnist-embedded"),
    (["augment", "DATA=photos", "OUT=o", "SPLITS=all", "WORKERS=2"],
     "--recipe configs/augment/digits.yaml --copies 2 --splits all --workers 2"),
    # the per-sample stages on Ray, a local one or a cluster's
    (["augment", "OUT=o", "ENGINE=ray", "WORKERS=2"], "--workers 2 --out o --seed 0 --engine ray \n"),
    (["crop", "OUT=o", "ENGINE=ray", "ADDRESS=10.0.0.5:6379"],
     "pipeline crop datasets/mnist-embedded --out o --engine ray --address 10.0.0.5:6379"),
    (["import", "SRC=voc", "OUT=o", "FORMAT=voc", "ENGINE=ray"], "pipeline import voc voc --out o  --engine ray"),
    (["import", "SRC=c", "OUT=o", "FORMAT=coco", "WORKERS=1"], "pipeline import coco c --out o  --workers 1  \n"),
    (["train", "ENGINE=ray"], "--engine ray \n"),
    (["crop", "OUT=o"], "pipeline crop datasets/mnist-embedded --out o  \n"),  # local: no engine option
    (["preview", "OUT=p.png", "RECIPE=r.yaml"], "pipeline preview datasets/mnist-embedded --out p.png --recipe r.yaml"),
    (["label-issues", "OUT=r"], "pipeline label-issues datasets/mnist-embedded --out r --folds 4 "
                                "--config configs/train/default.yaml"),
    (["label-issues", "OUT=r", "FOLDS=3", "TOP=100", "THRESHOLD=0.05", "EPOCHS=2"],
     "pipeline label-issues datasets/mnist-embedded --out r --folds 3 --config configs/train/default.yaml "
     "--epochs 2 --threshold 0.05 --top 100"),
    (["consensus", "OUT=a"], "pipeline consensus datasets/mnist-embedded --out a \n"),
    (["consensus", "OUT=a", "CONSENSUS_RUN=r"], "pipeline consensus datasets/mnist-embedded --out a --run r"),
    (["preview", "OUT=p.png"], "pipeline preview datasets/mnist-embedded --out p.png \n"),
    (["model", "VARIANT=grouped", "GROUPS=4"], "pipeline model summary --variant grouped --input 1x32x32 --groups 4"),
    (["model"], "pipeline model summary --variant all"),
    (["view", "DATA=d", "ISSUES=i", "VIEW_RUN=r"], "pipeline view d --port 8765 --host 127.0.0.1 --issues i --run r"),
    (["predict", "IMAGES=a.png", "OUT=rec"], "pipeline predict runs/mnist-embedded a.png --out rec"),
    (["prelabel", "FORMAT=labelme", "OUT=review", "ISSUES=issues"],
     "pipeline prelabel runs/mnist-embedded datasets/mnist-embedded --format labelme --out review --issues issues"),
    (["relabel", "FROM=export.json", "OUT=v2", "IMAGES_DIR=review"],
     "pipeline relabel datasets/mnist-embedded --from export.json --out v2 --format auto --images review"),
])
def test_targets_pass_their_variables(stamp, args, expected):
    out = make(*args, stamp=stamp)
    assert expected in re.sub(r"[ \t]*\\\n[ \t]*", " ", out + "\n"), out


@pytest.mark.parametrize("target", ["fetch-kaggle", "fetch-hf", "fetch-url", "crawl", "augment", "predict",
                                    "prelabel", "relabel"])
def test_targets_without_their_required_variables_print_usage(stamp, target):
    proc = subprocess.run(["make", f"VENV={stamp.parent}", "PIPELINE=false", target], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and f"usage: make {target}" in proc.stdout
