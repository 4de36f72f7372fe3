"""Unlabelled image folders: recursive, natural order, junk skipped and counted, never detected."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.dataset import load_dataset
from pipeline.formats import images
from pipeline.formats.ingest import detect_format, export_dataset, import_dataset
from tests import helpers


def make_tree(root: Path) -> Path:
    (root / "street" / "night").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "__MACOSX").mkdir()
    (root / "street" / "img10.png").write_bytes(helpers.png(8, 6, (1, 2, 3)))
    (root / "street" / "img2.png").write_bytes(helpers.png(8, 6, (4, 5, 6)))
    (root / "street" / "night" / "ünï.jpg").write_bytes(helpers.jpeg(10, 4, orientation=6))  # stored upright
    (root / "twin.png").write_bytes(helpers.png(5, 5, (7, 8, 9)))
    (root / "twin.jpg").write_bytes(helpers.jpeg(5, 5))
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "street" / "._img2.png").write_bytes(b"junk")
    (root / "notes.txt").write_text("not an image")
    (root / ".git" / "x.png").write_bytes(helpers.png())
    (root / "__MACOSX" / "y.png").write_bytes(helpers.png())
    return root


def test_a_folder_of_images_imports_unlabelled(tmp_path: Path) -> None:
    ds, report = import_dataset("images", make_tree(tmp_path / "src"), tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["street/img10", "street/img2", "street/night/ünï", "twin.jpg", "twin.png"]
    assert ds.task == "classification" and ds.classes == []
    assert all(s.label is None and s.objects is None for s in ds.samples)
    night = next(s for s in ds.samples if s.id == "street/night/ünï")
    assert (night.width, night.height) == (4, 10) and night.meta["exif_orientation"] == 6
    assert report.skipped == {images.SYSTEM_FILES: 2, images.NON_IMAGES: 1}
    assert load_dataset(ds.root).samples == ds.samples


def test_natural_order_and_junk_counts_without_a_context(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    assert images.list_images(root)[:2] == ["street/img2.png", "street/img10.png"]  # 2 before 10


def test_never_detected_only_named(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "src")
    assert images.detect(root) is None
    assert detect_format(root)[0] != "images"


def test_a_broken_image_follows_on_error(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "ok.png").write_bytes(helpers.png())
    (root / "bad.png").write_bytes(helpers.png()[:40])
    ds, report = import_dataset("images", root, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["ok"] and str(report.problems[0]).startswith("bad.png")


def test_export_writes_images_by_id_and_split_and_counts_labels(tmp_path: Path) -> None:
    src = helpers.make_detection_dataset(tmp_path / "det", n=3)
    ds, report = export_dataset(src, "images", tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")) == [
        "train/img-000.png", "val/img-001.png", "val/img-002.png"]
    assert report.dropped["objects (an image folder holds none)"] == sum(len(s.objects) for s in ds.samples)
    back, _ = import_dataset("images", tmp_path / "out", tmp_path / "back")
    assert {s.sha256: s.split for s in back.samples} == {s.sha256: s.split for s in ds.samples}


def test_cli_import_images(tmp_path: Path) -> None:
    result = helpers.invoke("import", "images", make_tree(tmp_path / "src"), "--out", tmp_path / "ds")
    assert result.exit_code == 0, result.output
    assert "imported 5 samples" in result.output


def test_import_export_import_keeps_sample_ids(tmp_path: Path) -> None:
    for rel, color in (("a 1.png", (1, 2, 3)), ("sub dir/ünï (2).png", (4, 5, 6)), ("val/c.png", (7, 8, 9))):
        (tmp_path / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / rel).write_bytes(helpers.png(20, 10, color))
    first, _ = import_dataset("images", tmp_path / "src", tmp_path / "first")
    export_dataset(first.root, "images", tmp_path / "out")
    back, report = import_dataset("images", tmp_path / "out", tmp_path / "back")
    assert not report.problems
    assert {s.sha256: s.id for s in back.samples} == {s.sha256: s.id for s in first.samples}
    assert sorted(s.id for s in back.samples) == ["a 1", "sub dir/ünï (2)", "val/c"]
