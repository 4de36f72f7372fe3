"""Test helpers shared by every test package: synthetic datasets and images, the shared data path."""

from __future__ import annotations

import io
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.dataset import DatasetWriter, Obj, Sample
from pipeline.core.images import encode_png

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{'/'.join(parts)} (real third-party files; absent in a plain clone)")
    return path


def digit_like(label: int, seed: int, size: int = 28) -> Image.Image:
    """A grayscale image whose bright bar position encodes `label` (learnable, MNIST-like: white on black)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 40, size=(size, size), dtype=np.uint8)
    col = 2 + (label * (size - 6)) // 9
    arr[4 : size - 4, col : col + 3] = 230
    return Image.fromarray(arr, mode="L")


def png(w: int = 64, h: int = 48, color: tuple[int, int, int] = (90, 20, 200)) -> bytes:
    """A solid-colour RGB PNG of `w` x `h` pixels."""
    return encode_png(Image.new("RGB", (w, h), color))


def digit_png(label: int, seed: int, size: int = 28) -> bytes:
    """`digit_like(label, seed, size)` as PNG bytes."""
    return encode_png(digit_like(label, seed, size))


def zipped(files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive holding `files` (member name -> bytes), in the given order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def jpeg(w: int, h: int, orientation: int = 1, mode: str = "RGB") -> bytes:
    """A solid JPEG of `w` x `h` stored pixels; an EXIF orientation tag (0x0112) unless `orientation` is 1."""
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.new(mode, (w, h), 128 if mode == "L" else (10, 200, 30)).save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def make_classification_dataset(
    root: Path, *, classes: int = 3, per_class: int = 8, size: int = 28,
    splits: tuple[float, float] | None = (0.25, 0.25), seed: int = 0, overwrite: bool = False,
) -> Path:
    """Write a small canonical classification dataset of synthetic digit-like images."""
    with DatasetWriter(root, task="classification", stage="test-fixture",
                       classes=[str(c) for c in range(classes)], overwrite=overwrite) as w:
        for c in range(classes):
            for i in range(per_class):
                split = None
                if splits is not None:
                    r = i / per_class
                    split = "test" if r < splits[1] else "val" if r < splits[0] + splits[1] else "train"
                img = digit_like(c, seed * 1000 + c * 100 + i, size)
                w.add(Sample(id=f"{c}-{i:03d}", label=str(c), split=split, width=size, height=size),
                      data=encode_png(img), ext="png")
    return root


def make_detection_dataset(root: Path, *, n: int = 6, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """Write a small detection dataset: coloured rectangles on noise, boxes exact."""
    rng = np.random.default_rng(seed)
    classes = ["red", "green"]
    with DatasetWriter(root, task="detection", stage="test-fixture", classes=classes) as w:
        for i in range(n):
            arr = rng.integers(0, 60, size=(size[1], size[0], 3), dtype=np.uint8)
            objs = []
            for k in range(2):
                x1, y1 = int(rng.integers(0, size[0] - 16)), int(rng.integers(0, size[1] - 16))
                x2, y2 = x1 + int(rng.integers(6, 16)), y1 + int(rng.integers(6, 16))
                c = k % 2
                arr[y1:y2, x1:x2] = (220, 30, 30) if c == 0 else (30, 220, 30)
                objs.append(Obj(label=classes[c], bbox=[float(x1), float(y1), float(x2), float(y2)]))
            split = "train" if i < n - 2 else "val"
            w.add(Sample(id=f"img-{i:03d}", width=size[0], height=size[1], split=split, objects=objs),
                  data=encode_png(Image.fromarray(arr)), ext="png")
    return root


def invoke(*args: object):
    """`pipeline ARGS` through Click's test runner (output captured, exceptions raised); returns its Result."""
    from click.testing import CliRunner

    from pipeline.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 at a port nothing listens on (taken free from the system, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def run_cli(args: list[str]) -> int:
    """`pipeline ARGS` in this process, through the real entry point (its --debug/--quiet handling
    and exit codes); returns the exit status."""
    from pipeline.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


class FakeClock:
    """A `pipeline.sources.http.Clock` in which time stands still unless told to move.

    Every sleep is recorded (in `sleeps`, thread-safe) and returns at once; `monotonic()` advances
    by `tick` on each call (0: never), so a deadline can expire on the next read without waiting.
    `time()` is the epoch time matching `monotonic()` (`epoch` at the start).
    """

    def __init__(self, *, tick: float = 0.0, epoch: float = 1_700_000_000.0) -> None:
        self.tick = tick
        self.epoch = epoch
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        """Epoch seconds: `epoch` plus the monotonic time elapsed so far."""
        with self._lock:
            return self.epoch + self.now

    def monotonic(self) -> float:
        """The current time, then one `tick` later for the next call."""
        with self._lock:
            now = self.now
            self.now += self.tick
            return now

    def sleep(self, seconds: float) -> None:
        """Record the wait; return at once without moving the clock."""
        with self._lock:
            self.sleeps.append(seconds)
