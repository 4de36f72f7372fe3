"""The per-sample stages on Ray write the same bytes as on this machine, with 1 and 2 Ray workers.

One real Ray per module: a head started by `ray start --head --block` on a free port (2 CPUs, no
dashboard), which this process joins; the commands find it joined and use it, and the test of
``--address`` leaves it and lets the command join it by its address. Compared with the local run
of the same command: samples.jsonl, every image and pack (every file but dataset.json), and
dataset.json but for the time of each lineage entry. The data: a part of the real raccoon VOC set
(../shared/data, skipped when absent) and the embedded MNIST subset.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.dataset import load_dataset
from pipeline.engines import make_engine
from tests.helpers import ROOT, invoke, shared_data

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'pipeline[ray]' or the test extra)")

pytestmark = pytest.mark.slow  # a Ray head takes seconds to start
RECIPES = ROOT / "configs" / "augment"
VOC_IMAGES = 24  # of the raccoon set's 200: enough for several chunks per worker


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (taken from the system, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dataset_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a dataset folder by relative path; dataset.json without the lineage's times."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "dataset.json":
                info = json.loads(data)
                for entry in info.get("lineage", []):
                    entry.pop("time", None)
                data = json.dumps(info, sort_keys=True).encode()
            out[str(p.relative_to(root))] = data
    return out


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """``ray start --head`` on 127.0.0.1 at a free port, its workers importing this checkout; joined
    by this process. Stopped (SIGTERM to the blocking process, which stops its own) after the module."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           # a throwaway cluster of this test: no token (this process may have loaded another Ray's)
           "RAY_AUTH_MODE": "disabled"}
    log = open(tmp_path_factory.mktemp("ray") / "head.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false",
         "--disable-usage-stats", "--object-store-memory", str(200 << 20), "--temp-dir", temp],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # (only a head that never comes up waits this long)
        while "Ray runtime started" not in Path(log.name).read_text():  # (the head's own words once it is up)
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not start ({proc.poll()}): {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        os.killpg(proc.pid, signal.SIGTERM)  # the head's own session: it and the processes it started
        try:
            proc.wait(timeout=10)  # (a head drains its node for up to 30 s: nothing here needs it)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def joined(head: str) -> str:
    """This process joined to the head (a test of --address leaves it)."""
    if not ray.is_initialized():
        ray.init(address=head, include_dashboard=False, log_to_driver=False)
    return head


@pytest.fixture(scope="module")
def voc_src(tmp_path_factory) -> Path:
    """The first `VOC_IMAGES` of the real raccoon VOC set (annotations/ and images/, linked)."""
    src = shared_data("raccoon-voc")
    out = tmp_path_factory.mktemp("raccoon") / "raccoon"
    (out / "annotations").mkdir(parents=True)
    (out / "images").mkdir()
    for i in range(1, VOC_IMAGES + 1):
        os.link(src / "annotations" / f"raccoon-{i}.xml", out / "annotations" / f"raccoon-{i}.xml")
        os.link(src / "images" / f"raccoon-{i}.jpg", out / "images" / f"raccoon-{i}.jpg")
    return out


@pytest.fixture(scope="module")
def voc(voc_src: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("voc") / "voc"
    assert invoke("import", "voc", voc_src, "--out", out).exit_code == 0
    return out


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> Path:
    from pipeline.fetch import fetch_mnist

    out = tmp_path_factory.mktemp("mnist") / "mnist"
    fetch_mnist(out, embedded=True)
    return out


def _augment(data: Path, recipe: str, out: Path, *extra: object) -> None:
    result = invoke("augment", data, "--recipe", RECIPES / recipe, "--out", out, "--seed", "3", *extra)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("workers", "pack"), [
    (1, "auto"),  # copies packed, originals beside them
    (2, "auto"),
    (2, "never"),  # every copy a file: made on a worker, written here
])
def test_augment_of_real_voc_photos_on_ray_is_byte_identical(joined, voc: Path, tmp_path: Path, workers: int,
                                                             pack: str) -> None:
    _augment(voc, "detection.yaml", tmp_path / "local", "--splits", "all", "--copies", "2", "--pack", pack)
    _augment(voc, "detection.yaml", tmp_path / "ray", "--splits", "all", "--copies", "2", "--pack", pack,
             "--engine", "ray", "--workers", workers)
    local = dataset_bytes(tmp_path / "local")
    assert dataset_bytes(tmp_path / "ray") == local
    assert len(load_dataset(tmp_path / "ray").samples) == 3 * VOC_IMAGES
    assert any("augmented/" in name for name in local) == (pack == "never")
    assert not list(tmp_path.glob(".*"))  # no work or state folder left behind


def test_augment_of_mnist_on_ray_is_byte_identical_to_local_workers(joined, mnist: Path, tmp_path: Path) -> None:
    _augment(mnist, "digits.yaml", tmp_path / "local", "--workers", "2")
    result = invoke("augment", mnist, "--recipe", RECIPES / "digits.yaml", "--out", tmp_path / "ray", "--seed", "3",
                    "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "ray (2 workers on the Ray this process had joined)" in result.output
    assert dataset_bytes(tmp_path / "ray") == dataset_bytes(tmp_path / "local")


def test_augment_resumes_a_local_run_on_ray(joined, voc: Path, tmp_path: Path) -> None:
    # the journal is the same whoever made the copies: a local run killed half-way (its state
    # folder as a kill leaves it), continued on Ray, writes the bytes of an uninterrupted run
    _augment(voc, "detection.yaml", tmp_path / "whole", "--splits", "all", "--pack", "never")
    env = {**os.environ, "PIPELINE_FAILPOINT": "journal.records:2", "PYTHONPATH": str(ROOT)}  # 2 of 4 batches
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--quiet", "augment", str(voc), "--recipe",
                           str(RECIPES / "detection.yaml"), "--out", str(tmp_path / "cut"), "--seed", "3",
                           "--splits", "all", "--pack", "never"], env=env, capture_output=True,
                          start_new_session=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    result = invoke("augment", voc, "--recipe", RECIPES / "detection.yaml", "--out", tmp_path / "cut", "--seed", "3",
                    "--splits", "all", "--pack", "never", "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.output
    resumed = next(line for line in result.output.splitlines() if line.strip().startswith("resumed"))
    assert int(resumed.split()[1]) >= VOC_IMAGES // 4
    assert dataset_bytes(tmp_path / "cut") == dataset_bytes(tmp_path / "whole")


@pytest.mark.parametrize("workers", [1, 2])
def test_crop_on_ray_is_byte_identical(joined, voc: Path, tmp_path: Path, workers: int) -> None:
    from pipeline.crop import crop_dataset

    dataset = load_dataset(voc)
    crop_dataset(dataset, tmp_path / "local", pad=0.1, square=True)
    _, report = crop_dataset(dataset, tmp_path / "ray", pad=0.1, square=True,
                             engine=make_engine("ray", workers=workers))
    assert report.written == sum(len(s.objects) for s in dataset.samples)
    assert dataset_bytes(tmp_path / "ray") == dataset_bytes(tmp_path / "local")


@pytest.mark.parametrize("workers", [1, 2])
def test_import_on_ray_is_byte_identical(joined, voc_src: Path, tmp_path: Path, workers: int) -> None:
    from pipeline.formats.ingest import _probe_tree, import_dataset

    import_dataset("voc", voc_src, tmp_path / "local")
    import_dataset("voc", voc_src, tmp_path / "ray", engine=make_engine("ray", workers=workers))
    assert dataset_bytes(tmp_path / "ray") == dataset_bytes(tmp_path / "local")
    with make_engine("ray", workers=workers) as engine:  # every image was read and hashed by a worker
        probes = _probe_tree(engine, [voc_src])
    assert len(probes) == VOC_IMAGES and all(p.sha256 and not p.data for p in probes.values())


def test_import_on_ray_leaves_the_odd_files_to_the_reader(joined, tmp_path: Path) -> None:
    # rotated by EXIF, cut short, undecodable: read again by the importer, with its own messages
    from pipeline.formats.ingest import import_dataset
    from tests.helpers import jpeg

    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "upright.jpg").write_bytes(jpeg(40, 30))
    (src / "a" / "rotated.jpg").write_bytes(jpeg(40, 30, orientation=6))
    (src / "a" / "cut.jpg").write_bytes(jpeg(64, 64)[:-200])
    (src / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    _, local = import_dataset("images", src, tmp_path / "local")
    _, remote = import_dataset("images", src, tmp_path / "ray", engine=make_engine("ray", workers=2))
    assert dataset_bytes(tmp_path / "ray") == dataset_bytes(tmp_path / "local")
    assert [str(p) for p in remote.problems] == [str(p) for p in local.problems]
    assert {str(p).split(":")[0] for p in local.problems} == {"a/broken.png", "a/cut.jpg"}
    assert remote.warnings == local.warnings and remote.counts == local.counts
    assert len(load_dataset(tmp_path / "ray").samples) == 2  # upright, and rotated (stored upright)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_tensor_cache_built_on_ray_is_byte_identical(joined, mnist: Path, tmp_path: Path, workers: int) -> None:
    from pipeline.tensor_cache import load_or_build

    dataset = load_dataset(mnist)
    local = load_or_build(dataset, root=tmp_path / "local")
    remote = load_or_build(dataset, root=tmp_path / "ray", engine=make_engine("ray", workers=workers))
    assert remote.build_seconds is not None  # built, not read
    for name in ("images.npy", "labels.npy", "splits.npy", "meta.json"):
        assert (remote.path / name).read_bytes() == (local.path / name).read_bytes(), name
    assert np.array_equal(np.asarray(remote.images), np.asarray(local.images))


def test_commands_join_the_cluster_at_address(head: str, voc: Path, tmp_path: Path) -> None:
    ray.shutdown()  # the command joins the head itself, by its address, and leaves it after
    _augment(voc, "detection.yaml", tmp_path / "local", "--splits", "all")
    result = invoke("augment", voc, "--recipe", RECIPES / "detection.yaml", "--out", tmp_path / "ray",
                    "--seed", "3", "--splits", "all", "--engine", "ray", "--address", head, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert f"ray (2 workers on the Ray cluster at {head})" in result.output
    assert not ray.is_initialized()
    assert dataset_bytes(tmp_path / "ray") == dataset_bytes(tmp_path / "local")
    result = invoke("crop", voc, "--out", tmp_path / "crops", "--engine", "ray", "--address", head)
    assert result.exit_code == 0, result.output
    assert f"ray (2 workers on the Ray cluster at {head})" in result.output  # every CPU of the cluster


def test_train_builds_its_tensor_cache_on_ray(joined, tmp_path: Path, monkeypatch) -> None:
    from tests.helpers import make_classification_dataset

    data = make_classification_dataset(tmp_path / "data", classes=3, per_class=10)
    runs = {}
    for engine in ("local", "ray"):
        monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / f"cache-{engine}"))
        result = invoke("train", data, "--out", tmp_path / f"run-{engine}", "--epochs", "1", "--batch-size", "8",
                        "--engine", engine)
        assert result.exit_code == 0, result.output
        runs[engine] = result.output
        (cache,) = (tmp_path / f"cache-{engine}" / "tensors").iterdir()
        runs[engine + "-images"] = (cache / "images.npy").read_bytes()
    assert "built in" in runs["ray"] and "on ray (2 workers on the Ray this process had joined)" in runs["ray"]
    assert " on ray" not in runs["local"]
    assert runs["ray-images"] == runs["local-images"]
