"""Where the per-sample work of a stage runs: in this process (`local`) or on Ray workers (`ray`).

`augment`, `crop`, `import` and the tensor-cache build hand their per-sample work to an engine as
an ordered stream of chunks (a few dozen samples each, so a task's overhead is paid once per
chunk) and a pure function of one chunk. The process that runs the command keeps everything that
decides the output's bytes: the order of the samples, the seeds (derived from (seed, stage,
sample id, copy), never from a worker), and every write. Workers only read inputs and compute.

- ``local``: today's code path (`Engine.map` runs the chunks here, one after the other; `augment`
  keeps its own pool of worker processes, `pipeline.augment.runner`).
- ``ray``: `RayEngine` starts a local Ray (``num_cpus`` = the workers asked for, else every CPU,
  no dashboard) or joins the cluster at ``--address``, starts one actor per worker (one CPU each,
  built once with the stage's context: the loaded dataset, the recipe), sends chunk i to actor
  i mod W, and yields the results in chunk order with at most `IN_FLIGHT` chunks per worker under
  way, so memory stays bounded whatever the size of the dataset.

Ray is imported only when ``--engine ray`` is used; without it that option is a `UsageError`
naming the extra (``pip install 'pipeline[ray]'``). Workers on other machines read the inputs
from the same paths as this process (a shared volume; see docs/ray.md) and run the same code:
this package travels with the job when it joins a cluster (Ray's ``py_modules``).
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.errors import PipelineError, UsageError

ENGINES = ("local", "ray")
IN_FLIGHT = 2  # chunks per worker sent ahead: one computing, one waiting, while the results are written
RAY_MISSING = "--engine ray needs Ray, which is not installed"
RAY_FIX = "pip install 'pipeline[ray]'"

C = TypeVar("C")  # a worker's context, built once per worker by `setup(spec)`
T = TypeVar("T")  # a chunk of work
R = TypeVar("R")  # a chunk's result


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), lazily."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def given(spec: C) -> C:
    """A `setup` for work whose context is the spec itself, as sent (a dataset's root and info)."""
    return spec


@dataclass
class Engine:
    """The local engine: the per-sample work runs in this process, chunk after chunk."""

    name: str = "local"
    address: str | None = None
    workers: int | None = None

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    def describe(self) -> str:
        """One line for a summary: where the work ran."""
        return "local"

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, setup: Callable[[Any], C], spec: Any, fn: Callable[[C, T], R], work: Iterable[T],
            *, local: C | None = None) -> Iterator[R]:
        """``fn(context, chunk)`` for every chunk of `work`, in order; the context is `local` when
        given (this process's, already built), else ``setup(spec)``."""
        context = local if local is not None else setup(spec)
        for chunk in work:
            yield fn(context, chunk)


def make_engine(name: str = "local", address: str | None = None, workers: int | None = None) -> Engine:
    """The engine named by ``--engine`` (``--address``: a Ray cluster to join; `workers`: how many
    Ray workers, default every CPU). Nothing is started until the engine is entered."""
    if name not in ENGINES:
        raise UsageError(f"--engine {name!r}: expected one of {', '.join(ENGINES)}")
    if address and name != "ray":
        raise UsageError(f"--address {address}: only used with --engine ray", fix="add --engine ray, or drop --address")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if name == "ray":
        if importlib.util.find_spec("ray") is None:  # refused before any work (Ray itself is imported on use)
            raise UsageError(RAY_MISSING, fix=RAY_FIX)
        return RayEngine(name, address or None, workers)
    return Engine(name, None, workers)


def ray_module():
    """`ray`, imported now; a one-line `UsageError` naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING, fix=RAY_FIX) from None
    return ray


class _Worker:
    """One Ray worker (an actor): the stage's context, built once, and the chunks sent to it."""

    def __init__(self, setup: Callable, spec: Any, max_pixels: int | None) -> None:
        from pipeline.core.images import set_max_pixels

        set_max_pixels(max_pixels)  # `--max-pixels` of the command, as in its own process
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.context = setup(spec)

    def run(self, fn: Callable, chunk: Any) -> Any:
        return fn(self.context, chunk)


@dataclass
class RayEngine(Engine):
    """Per-sample work on Ray actors (see the module docstring)."""

    _ray: Any = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)  # ray.init here: shut down on leaving
    _joined: bool = field(default=False, init=False, repr=False)  # Ray was running in this process already
    _actors: list = field(default_factory=list, init=False, repr=False)

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
        if self._joined:
            where = "the Ray this process had joined"
        return f"ray ({self.workers} worker{'s' if self.workers != 1 else ''} on {where})"

    def __enter__(self) -> RayEngine:
        ray = ray_module()
        self._ray = ray
        self._joined = ray.is_initialized()
        if not self._joined:
            import pipeline

            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "logging_level": logging.ERROR}  # the command prints its own lines
            if self.address:
                options["address"] = self.address
                # the same code on every node of a cluster: this package travels with the job (a
                # local Ray's workers run in this environment already)
                options["runtime_env"] = {"py_modules": [str(Path(pipeline.__file__).parent)]}
            else:
                options["num_cpus"] = self.workers or os.cpu_count() or 1
            try:
                ray.init(**options)
            except Exception as exc:  # noqa: BLE001 - Ray's reasons vary (no answer, authentication); one line
                if not self.address:
                    raise
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UsageError(f"--address {self.address}: could not join a Ray cluster there ({first})",
                                 fix="start one with `ray start --head` and pass the address it prints") from None
            self._started = True
        if self.workers is None:
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return self

    def __exit__(self, *exc: object) -> None:
        ray, actors = self._ray, self._actors
        self._actors = []
        for actor in actors:
            ray.kill(actor)
        if self._started:
            ray.shutdown()
            self._started = False

    def map(self, setup: Callable[[Any], C], spec: Any, fn: Callable[[C, T], R], work: Iterable[T],
            *, local: C | None = None) -> Iterator[R]:
        """``fn(context, chunk)`` for every chunk of `work` on the actors, in order (`local` is
        not used: each actor builds its context with ``setup(spec)``)."""
        if self._ray is None:
            raise RuntimeError("use the engine as a context manager")
        ray = self._ray
        from pipeline.core.images import max_pixels

        remote = ray.remote(num_cpus=1)(_Worker)
        actors = [remote.remote(setup, spec, max_pixels()) for _ in range(self.workers or 1)]
        self._actors.extend(actors)
        pending: collections.deque = collections.deque()
        try:
            for i, chunk in enumerate(work):
                if len(pending) >= IN_FLIGHT * len(actors):
                    yield self._get(pending.popleft())
                pending.append(actors[i % len(actors)].run.remote(fn, chunk))
            while pending:
                yield self._get(pending.popleft())
        finally:  # (done, failed or abandoned: the actors and what they still hold go)
            for actor in actors:
                ray.kill(actor)
                self._actors.remove(actor)

    def _get(self, ref) -> Any:
        """A chunk's result; a worker's own error (a bad image) is raised as it was raised there."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, PipelineError):
                raise cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            reason = next((line for line in lines if "exit detail" in line.lower()), lines[0])  # Ray's why, if given
            raise UsageError(f"a Ray worker died ({reason})",
                             fix="check the cluster (`ray status`) and run the command again") from None
