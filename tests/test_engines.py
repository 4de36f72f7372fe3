"""The engines of per-sample work: choosing one, the local engine, and a local Ray the engine starts.

Without Ray installed the Ray tests skip (with the reason); the commands still refuse `--engine ray`
in one line that names the extra. The stages on Ray (byte-identical outputs) are tested in
tests/test_ray_stages.py, against a Ray head started by that module.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import DataError, UsageError
from pipeline.engines import IN_FLIGHT, RAY_FIX, Engine, RayEngine, chunks, given, make_engine
from tests.helpers import run_cli

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'pipeline[ray]' or the test extra)")


def _scaled(context: int, chunk: list[int]) -> list[int]:
    return [context * x for x in chunk]


def _pid(context: object, chunk: list[int]) -> list[int]:
    return [os.getpid()] * len(chunk)


def _bad_image(context: object, chunk: list[int]) -> list[int]:
    raise DataError(f"image-{chunk[0]}.png", "cannot be decoded", fix="replace the file")


@pytest.mark.parametrize(("items", "size", "expected"), [
    ([1, 2, 3, 4, 5], 2, [[1, 2], [3, 4], [5]]),  # the last chunk shorter
    ([1, 2], 2, [[1, 2]]),  # exactly one chunk
    ([], 3, []),  # nothing: no empty chunk
])
def test_chunks(items: list[int], size: int, expected: list[list[int]]) -> None:
    assert list(chunks(iter(items), size)) == expected


def test_chunks_are_taken_lazily() -> None:
    pulled = []

    def items():
        for i in range(100):
            pulled.append(i)
            yield i

    stream = chunks(items(), 10)
    assert next(stream) == list(range(10)) and len(pulled) == 10


def test_the_local_engine_runs_the_chunks_here_in_order() -> None:
    engine = make_engine("local")
    assert type(engine) is Engine and engine.is_local and engine.describe() == "local"
    with engine:
        assert list(engine.map(given, 3, _scaled, [[1, 2], [3]])) == [[3, 6], [9]]
        # a context already built here is used as it is
        assert list(engine.map(given, 3, _scaled, [[1]], local=5)) == [[5]]


@pytest.mark.parametrize(("args", "message"), [
    (("spark",), "--engine 'spark': expected one of local, ray"),
    (("local", "10.0.0.1:6379"), "--address 10.0.0.1:6379: only used with --engine ray"),
    (("ray", None, 0), "--workers must be >= 1, got 0"),
])
def test_make_engine_refuses(args: tuple, message: str) -> None:  # (with or without Ray installed)
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        make_engine(*args)


@needs_ray
def test_make_engine_starts_nothing() -> None:
    engine = make_engine("ray", "127.0.0.1:1", 2)
    assert isinstance(engine, RayEngine) and not engine.is_local
    assert (engine.address, engine.workers) == ("127.0.0.1:1", 2)


@pytest.mark.parametrize("command", [
    ["augment", "DATA", "--recipe", "configs/augment/digits.yaml", "--out", "OUT"],
    ["crop", "DATA", "--out", "OUT"],
    ["import", "voc", "DATA", "--out", "OUT"],
    ["train", "DATA", "--out", "OUT"],
])
def test_without_ray_the_commands_say_how_to_install_it(command: list[str], monkeypatch, capsys, tmp_path: Path,
                                                        embedded_mnist: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as where it is not installed
    data = Path(__file__).resolve().parent / "corpus" / "voc" if command[0] == "import" else embedded_mnist
    args = [str(data) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    assert run_cli([*args, "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --engine ray needs Ray, which is not installed. Fix: {RAY_FIX}\n"
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_address_without_the_ray_engine_is_refused(capsys, tmp_path: Path, embedded_mnist: Path) -> None:
    assert run_cli(["crop", str(embedded_mnist), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:6379"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --address 127.0.0.1:6379: only used with --engine ray. Fix: add --engine ray, or drop --address\n"


@pytest.fixture(scope="module")
def embedded_mnist(tmp_path_factory) -> Path:
    from pipeline.fetch import fetch_mnist

    out = tmp_path_factory.mktemp("mnist") / "mnist"
    fetch_mnist(out, embedded=True)
    return out


def _ray_checks() -> dict:
    """What the Ray tests look at, measured in a process of its own (`local_ray`): the engine
    starts a local Ray there, runs maps on it, and shuts it down."""
    import ray

    out: dict = {}
    with make_engine("ray", workers=2) as engine:
        out["initialized"] = ray.is_initialized()
        out["cpus"] = ray.cluster_resources().get("CPU")
        out["describe"] = engine.describe()
        work = [[i, i + 1] for i in range(0, 40, 2)]
        out["ordered"] = list(engine.map(given, 3, _scaled, work)) == [[3 * x for x in c] for c in work]
        pids = {p for block in engine.map(given, None, _pid, [[0]] * 6) for p in block}
        out["pids"] = len(pids)
        out["pid_here"] = os.getpid() in pids
        pulled = []

        def stream():
            for i in range(50):
                pulled.append(i)
                yield [i]

        results = engine.map(given, 1, _scaled, stream())
        first = next(results)
        out["pulled_before_first"] = len(pulled)
        out["in_flight_results"] = [first[0]] + [r[0] for r in results]
        try:
            list(engine.map(given, None, _bad_image, [[7], [8]]))
        except DataError as err:
            out["error"] = [type(err).__name__, str(err)]
        out["after_error"] = list(engine.map(given, 2, _scaled, [[1]]))
    out["initialized_after"] = ray.is_initialized()
    return out


@pytest.fixture(scope="module")
def local_ray() -> dict:
    """`_ray_checks` in a fresh process (a local Ray the engine starts itself: ``ray.init(num_cpus=2)``,
    no dashboard; this process's own Ray state stays untouched for the other modules)."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'pipeline[ray]')")
    import json
    import subprocess

    root = Path(__file__).resolve().parents[1]
    code = "import json; from tests.test_engines import _ray_checks; print(json.dumps(_ray_checks()))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_ray
@pytest.mark.slow  # starts a Ray
def test_the_engine_starts_a_local_ray_and_shuts_it_down(local_ray: dict) -> None:
    assert local_ray["initialized"] and local_ray["cpus"] == 2
    assert local_ray["describe"] == "ray (2 workers on a local Ray)"
    assert local_ray["initialized_after"] is False  # the engine shut down the Ray it started


@needs_ray
@pytest.mark.slow
def test_ray_runs_the_chunks_on_its_workers_in_order(local_ray: dict) -> None:
    assert local_ray["ordered"]
    assert local_ray["pids"] == 2 and not local_ray["pid_here"]  # both actors worked, neither is the driver


@needs_ray
@pytest.mark.slow
def test_ray_keeps_a_bounded_number_of_chunks_in_flight(local_ray: dict) -> None:
    # the first result is yielded once IN_FLIGHT chunks per worker are under way, and no sooner
    assert local_ray["pulled_before_first"] == IN_FLIGHT * 2 + 1
    assert local_ray["in_flight_results"] == list(range(50))


@needs_ray
@pytest.mark.slow
def test_a_workers_error_comes_back_as_the_same_typed_error(local_ray: dict) -> None:
    assert local_ray["error"] == ["DataError", "image-7.png: cannot be decoded. Fix: replace the file"]
    assert local_ray["after_error"] == [[2]]  # the engine still works after a failed map
