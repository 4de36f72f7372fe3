"""Named kill points: nothing unless the environment names one; then SIGKILL at the Nth hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core import failpoints

ROOT = Path(__file__).resolve().parents[2]

# hits `a` three times and `b` once, printing before each hit, so the output shows where it died
PROGRAM = """
from pipeline.core import failpoints
for name in ["a", "a", "b", "a"]:
    print(name, flush=True)
    failpoints.hit(name)
print("done", flush=True)
"""


def _run(spec: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != failpoints.ENV}
    if spec is not None:
        env[failpoints.ENV] = spec
    return subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, start_new_session=True)


@pytest.mark.parametrize(("spec", "printed", "killed"), [
    (None, "a a b a done", False),  # unset: every hit is a no-op
    ("a", "a", True),  # the first hit
    ("a:2", "a a", True),  # the second
    ("b", "a a b", True),
    ("a:9", "a a b a done", False),  # never reached
    ("c, b:1", "a a b", True),  # several, one of them never hit
])
def test_the_process_dies_at_the_named_hit(spec, printed, killed):
    done = _run(spec)
    assert done.stdout.split() == printed.split()
    assert done.returncode == (-signal.SIGKILL if killed else 0), done.stderr


def test_arm_in_this_process_counts_from_zero(monkeypatch):
    killed = []
    monkeypatch.setattr(failpoints, "kill", lambda: killed.append(True))
    failpoints.arm("x:2")
    try:
        failpoints.hit("x")
        failpoints.hit("y")
        assert not killed
        failpoints.hit("x")
        assert killed == [True]
    finally:
        failpoints.arm("")
    failpoints.hit("x")
    assert killed == [True]


@pytest.mark.parametrize(("spec", "rank", "armed"), [
    ("train.epoch:1@1", "1", {"train.epoch": 1}),  # the rank named: armed
    ("train.epoch:1@1", "0", {}),  # another rank: not armed
    ("a@0, b:3", "0", {"a": 1, "b": 3}),  # a point without a rank is armed in every process
    ("a@1", None, {}),  # outside torchrun (no RANK) a process is rank 0
])
def test_a_point_may_name_the_rank_it_kills(spec, rank, armed, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert failpoints._parse(spec, rank) == armed


def test_rank_comes_from_torchruns_environment():
    env = {k: v for k, v in os.environ.items() if k != failpoints.ENV}
    for rank, killed in (("0", False), ("1", True)):
        done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**env, failpoints.ENV: "b@1", "RANK": rank}, start_new_session=True)
        assert done.returncode == (-signal.SIGKILL if killed else 0), done.stderr
