"""pipeline.augment.server: workers come from a fork server that has the stage's imports done."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.augment import server

ROOT = Path(__file__).resolve().parents[2]


def loaded(names: list[str]) -> list[bool]:
    """Which of `names` the calling process has imported (run in a worker)."""
    return [name in sys.modules for name in names]


@pytest.mark.skipif("forkserver" not in mp.get_all_start_methods(), reason="no fork server on this platform")
def test_workers_start_with_the_preloads_imported_and_the_command_without_them() -> None:
    code = textwrap.dedent("""
        import json, sys
        from pipeline.augment.server import PRELOAD, server_context, start_early
        from tests.augment.test_server import loaded
        start_early()  # returns at once: the imports happen in the server
        mine = loaded(["albumentations", *PRELOAD])
        with server_context().Pool(1) as pool:
            theirs = pool.apply(loaded, (["albumentations", *PRELOAD, "torch"],))
        print(json.dumps({"mine": mine, "theirs": theirs}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["mine"] == [False] * (1 + len(server.PRELOAD))
    assert got["theirs"] == [True] * (1 + len(server.PRELOAD)) + [False]  # torch stays out


def test_without_a_fork_server_workers_are_spawned_and_nothing_starts_early(monkeypatch) -> None:
    monkeypatch.setattr(server.mp, "get_all_start_methods", lambda: ["fork", "spawn"])
    assert server.server_context().get_start_method() == "spawn"
    from multiprocessing import forkserver

    monkeypatch.setattr(forkserver, "ensure_running", lambda: pytest.fail("a fork server was started"))
    server.start_early()

