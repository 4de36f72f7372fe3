"""Data-parallel training under torchrun: who this process is, and the few collectives the loop needs.

`pipeline train` runs unchanged under ``torchrun --nproc-per-node N`` (and on several machines
through torchrun's rendezvous). torchrun starts N copies of the command and tells each who it is
in the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``); `world()`
reads them, `start(device)` joins the process group (gloo on the CPU, NCCL on GPUs) and everything
else here is a no-op in a single process, so the single-process path is the one it always was.

How the loop uses it (`pipeline.train`):

- the tensor cache is built once per machine: local rank 0 builds it, the others wait at a
  barrier and then open it (`local_first`);
- every rank draws the same global permutation of the training rows from (seed, epoch), as a
  single process does, and takes its part of each global batch (`part`): the global batch is
  `batch_size`, a rank's batch is `batch_size / world size` (the first ranks take one more when it
  does not divide), and each rank's loss is scaled so that DDP's averaged gradient is exactly
  the single-process gradient of the whole batch;
- sums (losses, correct predictions, confusion matrices) are added across ranks (`all_sum`);
- rank 0 alone writes the run folder (checkpoints, TensorBoard, ``resume.pt``), and reads
  ``resume.pt`` on ``--resume`` and hands it to the others (`broadcast`), so on several machines
  only rank 0's needs the run folder.

A lost rank (killed, out of memory, its machine gone) makes the next collective fail on the
others: `collective_errors` turns that into one `RankLost` line (exit 2) naming the epoch the run
can be resumed after; torchrun then stops the job and prints its own failure report.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import PipelineError, UsageError

ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
TIMEOUT = datetime.timedelta(minutes=30)  # a barrier waits this long for a rank that builds the cache


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (1 of 1 outside torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run folder and prints progress."""
        return self.rank == 0

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.size}"


class RankLost(PipelineError):
    """Another training process stopped (or this one was told to stop) in the middle of a run."""


def world() -> World:
    """Who this process is, from torchrun's environment; 1 of 1 when it is not set."""
    if "WORLD_SIZE" not in os.environ:
        return World()
    try:
        values = {name: int(os.environ[name]) for name in ENV_VARS if name in os.environ}
    except ValueError as exc:
        raise UsageError(f"torchrun's environment is not numbers ({exc})",
                         fix="start the command with torchrun, or unset WORLD_SIZE/RANK/LOCAL_RANK") from None
    size = values["WORLD_SIZE"]
    rank = values.get("RANK", 0)
    local_rank = values.get("LOCAL_RANK", rank)
    local_size = values.get("LOCAL_WORLD_SIZE", size)
    if size < 1 or not 0 <= rank < size or not 0 <= local_rank < local_size:
        raise UsageError(f"torchrun's environment is inconsistent (WORLD_SIZE={size}, RANK={rank}, "
                         f"LOCAL_RANK={local_rank}, LOCAL_WORLD_SIZE={local_size})",
                         fix="start the command with torchrun, or unset WORLD_SIZE/RANK/LOCAL_RANK")
    return World(rank=rank, size=size, local_rank=local_rank, local_size=local_size)


def backend(device) -> str:
    """The process-group backend for `device`: NCCL between GPUs, gloo on the CPU."""
    return "nccl" if getattr(device, "type", str(device)) == "cuda" else "gloo"


def start(here: World, device) -> None:
    """Join the process group (no-op in a single process). SIGTERM, which torchrun sends to the
    surviving ranks when one fails, ends this one with a `RankLost` line instead of silently."""
    if not here.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend(device), "timeout": TIMEOUT}
        if backend(device) == "nccl":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)

    def stopped(signum, _frame) -> None:
        _stopping()
        raise RankLost(f"{here}: stopped by torchrun (signal {signal.Signals(signum).name}): another rank failed",
                       fix="see torchrun's report for the rank that failed, then continue the run with --resume")

    signal.signal(signal.SIGTERM, stopped)


def _stopping() -> None:
    """This rank is already ending on a `RankLost`: torchrun's SIGTERM, which follows when another
    rank has failed, is ignored from now on, so the line that says why is the only one and the
    run's state is written out before the process ends (torchrun kills it if that takes too long)."""
    with contextlib.suppress(ValueError):  # signal handlers are set from the main thread only
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stop(here: World) -> None:
    """Leave the process group (no-op in a single process)."""
    if not here.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def device_for(here: World, device):
    """Under torchrun each rank of a machine takes its own GPU (``cuda:LOCAL_RANK``); CPU stays CPU."""
    import torch

    if not here.distributed or device.type != "cuda":
        return device
    if here.local_rank >= torch.cuda.device_count():
        raise UsageError(f"{here}: local rank {here.local_rank} but only {torch.cuda.device_count()} GPUs here",
                         fix="start at most one process per GPU (torchrun --nproc-per-node <= the GPU count)")
    torch.cuda.set_device(here.local_rank)
    return torch.device("cuda", here.local_rank)


def barrier(here: World) -> None:
    if here.distributed:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def local_first(here: World) -> Iterator[None]:
    """Run the body on local rank 0 first, then on the machine's other ranks (which wait at a
    barrier meanwhile): what it builds (the tensor cache, an imported tree) is built once."""
    if here.distributed and here.local_rank != 0:
        barrier(here)
    yield
    if here.distributed and here.local_rank == 0:
        barrier(here)


def all_sum(here: World, tensor):
    """`tensor` summed over every rank (in place; returned). No-op in a single process."""
    if here.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(here: World, obj: Any) -> Any:
    """Rank 0's `obj` on every rank (pickled; tensors come back on the CPU)."""
    if not here.distributed:
        return obj
    import torch.distributed as dist

    box = [obj if here.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(here: World, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not here.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * here.size
    dist.all_gather_object(out, obj)
    return out


def part(here: World, idx):
    """This rank's part of a global batch of row positions: contiguous, sizes differing by at most
    one (the first ranks take the extra rows; a rank may get none from a last batch smaller than
    the world)."""
    if not here.distributed:
        return idx
    return idx.tensor_split(here.size)[here.rank]


def shards_for(here: World, items: list, what: str = "shards") -> list:
    """This rank's share of `items` (every `size`-th, from its rank); an error when some rank would get none."""
    if len(items) < here.size:
        raise UsageError(f"{len(items)} {what} for {here.size} training processes: each needs at least one",
                         fix=f"write smaller shards (pipeline export --format webdataset --shard-size N), "
                             f"or start at most {len(items)} processes")
    return items[here.rank::here.size]


@contextlib.contextmanager
def collective_errors(here: World, after_epoch: int) -> Iterator[None]:
    """Turn a failed collective (a rank gone: the connection closed, a timeout) into one `RankLost`
    line naming the last finished epoch, the one ``--resume`` continues after."""
    if not here.distributed:
        yield
        return
    try:
        yield
    except RankLost:
        raise
    except RuntimeError as exc:  # torch.distributed.DistError and gloo/NCCL failures are RuntimeErrors
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        done = f"after epoch {after_epoch}" if after_epoch else "before its first epoch finished"
        _stopping()
        raise RankLost(f"{here}: lost contact with another training process ({first}); the run stopped {done}",
                       fix="see torchrun's report for the rank that failed, then continue the run with --resume"
                       ) from exc
