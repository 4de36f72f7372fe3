"""Named kill points, so tests can SIGKILL a stage at an exact step instead of racing a timer.

A writing stage calls ``hit("name")`` at the steps where a kill matters (an image written, the
output complete but not yet renamed, between two renames). Nothing happens unless the
environment variable ``PIPELINE_FAILPOINT`` names that point when the process starts::

    PIPELINE_FAILPOINT=writer.add:3 pipeline import voc raccoon/ --out ds   # killed at the 3rd image

``NAME`` kills at the first hit, ``NAME:N`` at the Nth (each process counts its own hits); several
are separated by commas. ``NAME[:N]@R`` arms the point only in the process whose ``RANK`` (set by
torchrun) is R, so a test can kill one rank of a data-parallel run: ``train.epoch:1@1``. The process SIGKILLs its whole process group, as ``kill -9`` on a job
would, so a stage's worker processes die with it: start the command in a session of its own
(``setsid``, or ``start_new_session=True`` in a test). Unset, `hit` is one dictionary test.

Points (where they are hit):

- ``writer.add``: `DatasetWriter.add`, after a sample's image is in the temporary folder
- ``writer.commit``: `DatasetWriter.finish`, everything written and synced, before the rename
- ``replace_dir``: an earlier output moved aside, the new one not yet renamed into place
- ``rewrite.samples`` / ``rewrite.info``: an in-place update (`split`), before the new
  samples.jsonl is renamed into place / between it and the new dataset.json
- ``export.written``: every exported file written, before the folder is renamed into place
- ``journal.records`` / ``journal.spool``: `augment` logged a sample's records / spooled an image
- ``train.epoch``: an epoch's checkpoints and metrics written
- ``http.chunk``: a downloaded chunk written to the partial file
"""

from __future__ import annotations

import os
import signal

ENV = "PIPELINE_FAILPOINT"


def _parse(text: str, rank: str | None = None) -> dict[str, int]:
    """`text`'s points armed in this process (`rank`: its torchrun ``RANK``; default the environment's)."""
    rank = os.environ.get("RANK", "0") if rank is None else rank
    points: dict[str, int] = {}
    for item in text.split(","):
        item, at, only = item.strip().partition("@")
        if at and only.strip() != rank:
            continue
        name, _, nth = item.strip().partition(":")
        if name:
            points[name] = int(nth) if nth.strip().isdigit() and int(nth) > 0 else 1
    return points


_ARMED = _parse(os.environ.get(ENV, ""))  # point -> hits left before the kill
_HITS: dict[str, int] = {}


def hit(name: str) -> None:
    """Count a hit of the point `name`; SIGKILL this process at the hit the environment names."""
    if not _ARMED or name not in _ARMED:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    if _HITS[name] >= _ARMED[name]:
        kill()


def kill() -> None:
    """SIGKILL this process's group (this process and its workers), like ``kill -9`` on the job."""
    os.killpg(os.getpgid(0), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)  # (not reached)


def arm(text: str) -> None:
    """Arm points as the environment variable would (for tests in this process)."""
    _ARMED.clear()
    _ARMED.update(_parse(text))
    _HITS.clear()
