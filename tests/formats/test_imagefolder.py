"""ImageFolder import/export: layouts, ordering, junk, every image mode, EXIF, bad files, bombs, real MNIST PNGs.

Exports are checked with an independent reader: torchvision's `datasets.ImageFolder`.
"""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.core.errors import DataError, UsageError
from pipeline.core.paths import sha256_file
from pipeline.formats import imagefolder
from pipeline.formats.ingest import export_dataset, import_dataset
from tests.helpers import shared_data


def _save(path: Path, img: Image.Image, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, **kw)
    return path


def _gray(seed: int, size: tuple[int, int] = (12, 10)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, size=(size[1], size[0]), dtype=np.uint8), mode="L")


def _rgb(seed: int, size: tuple[int, int] = (12, 10)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8), mode="RGB")


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _bomb_png() -> bytes:
    """A valid PNG header claiming 20000 x 20000 pixels (4e8, over twice Pillow's limit): refused at open."""
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def _exif_rotated_jpeg(path: Path) -> Image.Image:
    """A 30x20 JPEG whose EXIF says 'rotate 90 CW to display' (orientation 6); returns the upright view."""
    img = _rgb(5, (30, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(path, img, "JPEG", exif=exif.tobytes(), quality=95)
    with Image.open(path) as im:
        from PIL import ImageOps

        return ImageOps.exif_transpose(im).copy()


@pytest.fixture
def tree(tmp_path) -> Path:
    """A class-per-folder tree with every image mode, junk files and bad files."""
    root = tmp_path / "photos"
    good = {
        "2/img10.png": _gray(1),
        "2/img2.png": _gray(2),
        "2/img1.png": _gray(3),
        "2/sub/deeper.png": _gray(4),  # recursive, as torchvision's ImageFolder
        "10/rgb.png": _rgb(5),
        "10/palette.png": _rgb(6).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "10/rgba.png": _rgb(7).convert("RGBA"),
        "10/la.png": _gray(8).convert("LA"),
        "10/bilevel.png": _gray(9).convert("1"),
        "10/gray.jpg": _gray(10),
        "10/cmyk.jpg": _rgb(11).convert("CMYK"),
        "10/pic.bmp": _rgb(12),
        "10/anim.gif": _rgb(13).convert("P"),
        "10/scan.tif": _rgb(14),
        "10/photo.webp": _rgb(15),
        "café/thé.png": _gray(16),  # non-ASCII class and file names
        "café/a.png": _gray(17),
        "café/a.jpg": _rgb(18),  # same stem as a.png: both keep their extension in the id
    }
    for rel, img in good.items():
        _save(root / rel, img)
    deep16 = Image.fromarray(np.arange(120, dtype=np.uint16).reshape(10, 12) * 500)  # 16-bit grayscale
    _save(root / "10" / "deep16.png", deep16)
    # junk: skipped and counted
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "2" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "2" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "2" / "._img1.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (root / "10" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("about these photos")
    (root / "__MACOSX" / "2").mkdir(parents=True)
    (root / "__MACOSX" / "2" / "._img1.png").write_bytes(b"\x00\x05\x16\x07")
    (root / "2" / ".thumbnails").mkdir()
    _save(root / "2" / ".thumbnails" / "t.png", _gray(30))
    # bad files: listed and left out
    png = io.BytesIO()
    _rgb(19, (40, 40)).save(png, format="PNG")
    (root / "2" / "truncated.png").write_bytes(png.getvalue()[:30])  # cut in its header (cut later: kept)
    (root / "2" / "text.png").write_text("this is not a png")
    (root / "2" / "empty.jpg").write_bytes(b"")
    (root / "2" / "bomb.png").write_bytes(_bomb_png())
    return root


def _import(src: Path, out: Path, **kw):
    return import_dataset("imagefolder", src, out, **kw)


def test_import_tree(tree, tmp_path) -> None:
    ds, report = _import(tree, tmp_path / "ds")
    ids = [s.id for s in ds.samples]
    assert ds.classes == ["2", "10", "café"]  # natural order, not "10" < "2"
    assert len(ids) == 4 + 12 + 3 and report.imported == 19
    assert "café/a.jpg" in ids and "café/a.png" in ids and "café/thé" in ids and "2/sub/deeper" in ids
    by_id = {s.id: s for s in ds.samples}
    assert by_id["2/img10"].label == "2" and by_id["2/img10"].split is None
    assert by_id["2/img10"].source == {"file": "2/img10.png"}
    for s in ds.samples:  # every image kept byte for byte, size recorded
        assert sha256_file(ds.image_path(s)) == sha256_file(tree / s.source["file"]) == s.sha256
        with Image.open(ds.image_path(s)) as im:
            assert im.size == (s.width, s.height)
    with Image.open(ds.image_path(by_id["10/deep16"])) as im:
        assert im.mode.startswith("I") and np.asarray(im).max() == 119 * 500
    assert report.skipped == Counter({
        imagefolder.SYSTEM_FILES: 4,  # .DS_Store x2, Thumbs.db, ._img1.png
        imagefolder.NON_IMAGES: 1,  # notes.txt
        imagefolder.OUTSIDE: 1,  # README.md
        imagefolder.SKIPPED_DIRS: 2,  # __MACOSX, .thumbnails
    })
    bad = sorted(e.where for e in report.problems)
    assert bad == ["2/bomb.png", "2/empty.jpg", "2/text.png", "2/truncated.png"]
    text = {e.where: str(e) for e in report.problems}
    assert "decompression bomb" in text["2/bomb.png"] and "not an image Pillow can read" in text["2/truncated.png"]
    assert "not an image" in text["2/text.png"]


def test_import_is_deterministic(tree, tmp_path) -> None:
    _import(tree, tmp_path / "a")
    _import(tree, tmp_path / "b")
    assert (tmp_path / "a" / "samples.jsonl").read_bytes() == (tmp_path / "b" / "samples.jsonl").read_bytes()


def test_on_error_stops_at_the_first_bad_file(tree, tmp_path) -> None:
    import gc
    import threading

    gc.disable()  # the readers must stop when the import does, not when a collection finds them
    try:
        with pytest.raises(DataError, match="2/bomb.png"):  # natural order: bomb < empty < text < truncated
            _import(tree, tmp_path / "ds", on_error="error")
        assert not [t for t in threading.enumerate() if t.name.startswith("imagefolder-read")]
    finally:
        gc.enable()
    assert not (tmp_path / "ds").exists()


def test_exif_orientation_applied_once(tmp_path) -> None:
    src = tmp_path / "src"
    upright = _exif_rotated_jpeg(src / "cat" / "rotated.jpg")
    _save(src / "cat" / "plain.png", _gray(1))
    ds, report = _import(src, tmp_path / "ds")
    s = next(s for s in ds.samples if s.id == "cat/rotated")
    assert (s.width, s.height) == (20, 30) and s.meta == {"exif_orientation": 6}
    assert s.image.endswith(".png") and report.counts["EXIF-rotated images stored upright"] == 1
    with Image.open(ds.image_path(s)) as im:
        assert im.size == (20, 30) and not im.getexif().get(0x0112)
        diff = np.abs(np.asarray(im.convert("RGB"), dtype=int) - np.asarray(upright.convert("RGB"), dtype=int))
        assert diff.mean() < 1  # the same pixels as the upright view (the PNG is lossless)
    # export then import again: no second rotation
    export_dataset(ds.root, "imagefolder", tmp_path / "exp")
    again, report2 = _import(tmp_path / "exp", tmp_path / "ds2")
    s2 = next(x for x in again.samples if x.id == "cat/rotated")
    assert (s2.width, s2.height) == (20, 30) and not s2.meta and s2.sha256 == s.sha256
    assert report2.counts["EXIF-rotated images stored upright"] == 0


def test_cmyk_jpeg_with_exif_rotation_is_stored_as_rgb_png(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 3
    _save(tmp_path / "src" / "a" / "c.jpg", _rgb(1).convert("CMYK"), "JPEG", exif=exif.tobytes())
    ds, report = _import(tmp_path / "src", tmp_path / "ds")
    assert not report.problems
    with Image.open(ds.image_path(ds.samples[0])) as im:
        assert im.format == "PNG" and im.mode == "RGB"


def test_split_layout_with_aliases_and_leftovers(tmp_path) -> None:
    root = tmp_path / "src"
    for split, n in (("training", 3), ("valid", 2), ("test", 1)):
        for c in ("cat", "dog"):
            for i in range(n):
                _save(root / split / c / f"{i}.png", _gray(i))
    (root / "training" / ".DS_Store").write_bytes(b"x")  # inside a split folder, as in MNIST's archive
    _save(root / "unlabelled" / "x" / "0.png", _gray(0))  # not a split folder
    _save(root / "val" / "loose.png", _gray(1))  # a split folder without class folders
    ds, report = _import(root, tmp_path / "ds")
    assert ds.splits() == {"train": 6, "val": 4, "test": 2}
    assert {s.id for s in ds.samples if s.split == "val"} >= {"valid/cat/0", "valid/dog/1"}
    assert ds.classes == ["cat", "dog"]
    assert report.skipped[imagefolder.SYSTEM_FILES] == 1
    assert any("unlabelled/" in w and "left out" in w for w in report.warnings)
    assert any(w.startswith("val/") and "no class folders" in w for w in report.warnings)


def test_split_named_class_without_split_layout(tmp_path) -> None:
    # 'test' holding images directly is a class folder, not a split
    _save(tmp_path / "src" / "test" / "0.png", _gray(0))
    _save(tmp_path / "src" / "prod" / "0.png", _gray(1))
    ds, _ = _import(tmp_path / "src", tmp_path / "ds")
    assert ds.classes == ["prod", "test"] and ds.splits() == {None: 2}


def test_empty_class_folder_is_reported(tmp_path) -> None:
    _save(tmp_path / "src" / "a" / "0.png", _gray(0))
    (tmp_path / "src" / "b").mkdir()
    (tmp_path / "src" / "b" / "notes.txt").write_text("x")
    ds, report = _import(tmp_path / "src", tmp_path / "ds")
    assert ds.classes == ["a"] and any("b/: no images" in w for w in report.warnings)


def test_output_inside_the_tree_is_not_a_class(tmp_path) -> None:
    src = tmp_path / "src"
    _save(src / "a" / "0.png", _gray(0))
    _import(src, src / "ds")
    again, report = _import(src, src / "ds", overwrite=True)  # re-import: the first output sits inside the tree
    assert again.classes == ["a"] and len(again.samples) == 1
    assert any("ds/: a pipeline dataset" in w for w in report.warnings)
    assert imagefolder.SKIPPED_DIRS not in report.skipped  # the writer's own temp folder is not counted


def test_no_known_layout(tmp_path) -> None:
    (tmp_path / "flat").mkdir()
    _save(tmp_path / "flat" / "0.png", _gray(0))  # images but no class folders
    assert imagefolder.detect(tmp_path / "flat") is None
    with pytest.raises(UsageError, match="not an ImageFolder tree"):
        _import(tmp_path / "flat", tmp_path / "ds")


def test_export_round_trip_read_by_torchvision(tree, tmp_path) -> None:
    from torchvision.datasets import ImageFolder

    ds, _ = _import(tree, tmp_path / "ds")
    _, report = export_dataset(ds.root, "imagefolder", tmp_path / "exp")
    assert report.written == len(ds.samples)
    tv = ImageFolder(str(tmp_path / "exp"), loader=lambda p: p,
                     is_valid_file=lambda p: Path(p).suffix.lower() in imagefolder.IMAGE_EXTS)
    got = Counter((tv.classes[t], sha256_file(p)) for p, t in tv.samples)
    assert got == Counter((s.label, s.sha256) for s in ds.samples)
    back, _ = _import(tmp_path / "exp", tmp_path / "back")
    assert Counter((s.label, s.sha256) for s in back.samples) == got and back.classes == ds.classes


def test_export_with_splits_and_unsafe_class_names(tmp_path) -> None:
    from pipeline.core.dataset import DatasetWriter, Sample
    from pipeline.core.images import encode_png

    with DatasetWriter(tmp_path / "ds", task="classification", stage="test",
                       classes=["..", "a/b", "ok"]) as w:
        for i, (label, split) in enumerate([("..", "train"), ("a/b", "val"), ("ok", "test"), ("ok", None)]):
            w.add(Sample(id=f"s{i}", label=label, split=split, width=12, height=10),
                  data=encode_png(_gray(i)), ext="png")
    _, report = export_dataset(tmp_path / "ds", "imagefolder", tmp_path / "exp")
    files = sorted(p.relative_to(tmp_path / "exp").as_posix() for p in (tmp_path / "exp").rglob("*.png"))
    assert files == ["test/ok/s2.png", "train/_../s0.png", "unsplit/ok/s3.png", "val/a_b/s1.png"]
    assert not any(p.name == "s0.png" for p in tmp_path.glob("*.png"))  # nothing escaped the export folder
    assert report.converted["samples without a split -> unsplit/"] == 1
    assert len(report.warnings) == 2


def test_folder_name() -> None:
    assert imagefolder.folder_name("cat") == "cat"
    assert imagefolder.folder_name("..") == "_.."
    assert imagefolder.folder_name(".hidden") == "_hidden"
    assert imagefolder.folder_name("a\\b:c") == "a_b_c"


def test_cli_import_summary(tree, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["import", "imagefolder", str(tree), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "imported 19 samples" in result.output and "left out (bad files)" in result.output
    assert "2/bomb.png" in result.output and "skipped: non-image files" in result.output


@pytest.mark.shared
@pytest.mark.slow
def test_real_mnist_pngs(tmp_path) -> None:
    archive = shared_data("mnist", "mnist-train-png.tar.gz")
    root = tmp_path / "mnist"
    per_digit: Counter = Counter()
    with tarfile.open(archive) as tar:
        members = []
        for m in tar:
            parts = m.name.split("/")
            if m.isfile() and (parts[-1] == ".DS_Store" or (len(parts) == 3 and per_digit[parts[1]] < 30)):
                if parts[-1] != ".DS_Store":
                    per_digit[parts[1]] += 1
                members.append(m)
            if len(members) >= 301 and all(per_digit[str(d)] >= 30 for d in range(10)):
                break
        tar.extractall(root, members=members, filter="data")
    ds, report = _import(root, tmp_path / "ds")
    assert len(ds.samples) == 300 and ds.classes == [str(d) for d in range(10)]
    assert ds.splits() == {"train": 300}  # "training/" is recognised as the train split
    assert report.skipped[imagefolder.SYSTEM_FILES] == 1 and not report.problems
    s = ds.samples[0]
    assert s.id.startswith("training/0/") and (s.width, s.height) == (28, 28)


def test_truncated_but_decodable_image_is_kept_restored(tmp_path: Path) -> None:
    from pipeline.formats.common import TRUNCATED

    root = tmp_path / "tree"
    (root / "cat").mkdir(parents=True)
    buf = io.BytesIO()
    _rgb(5, (40, 30)).save(buf, format="JPEG", quality=90)
    (root / "cat" / "whole.jpg").write_bytes(buf.getvalue())
    (root / "cat" / "noeoi.jpg").write_bytes(buf.getvalue()[:-2])  # no end marker: every row decodes
    ds, report = import_dataset("imagefolder", root, tmp_path / "ds")
    kept = next(s for s in ds.samples if s.id == "cat/noeoi")
    assert kept.meta == {"truncated": True} and kept.image.endswith(".png") and (kept.width, kept.height) == (40, 30)
    assert report.counts[TRUNCATED] == 1 and not report.problems
    assert any("cat/noeoi.jpg" in w for w in report.warnings)


def test_import_export_import_keeps_sample_ids(tmp_path: Path) -> None:
    from tests.helpers import png

    for rel, color in (("train/cat/a 1.png", (1, 2, 3)), ("train/dog/b.png", (4, 5, 6)),
                       ("val/dog/ünï (2).png", (7, 8, 9))):
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(png(20, 10, color))
    first, _ = import_dataset("imagefolder", tmp_path / "src", tmp_path / "first")
    export_dataset(first.root, "imagefolder", tmp_path / "out")
    back, report = import_dataset("imagefolder", tmp_path / "out", tmp_path / "back")
    assert not report.problems
    assert {s.sha256: (s.id, s.label, s.split) for s in back.samples} == {
        s.sha256: (s.id, s.label, s.split) for s in first.samples}
    assert (tmp_path / "out" / "train" / "cat" / "a 1.png").is_file()  # the source's own file name
