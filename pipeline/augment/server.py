"""Where the offline stage's worker processes come from, and starting that early.

Workers are forked from a fork server: a clean process that imports numpy, OpenCV and
albumentations once (about 1-2 s) and forks each worker from there. Forking the command's own
process instead is unsafe once thread pools have run in it (a child that touches OpenCV's or
torch's pool can hang). `start_early` boots the server in the background as the command begins,
so its imports overlap with the command's own instead of following them.
"""

from __future__ import annotations

import multiprocessing as mp

# imported once by the server (albumentations with them), inherited by every worker it forks
PRELOAD = ["pipeline.augment.stage", "pipeline.augment.albu"]


def server_context():
    """The fork-server context with the preloads set (spawn where there is no fork server)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start_early() -> None:
    """Start the fork server now and return at once (it keeps importing in its own process)."""
    if server_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
