"""Links and special files through every importer (VOC, YOLO, CreateML, labelme, COCO, ImageFolder,
tables): nothing outside the import folder is opened, a link inside it is followed and stored as
a real file, a FIFO never hangs the import, and each skipped path is counted and warned about."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.core.paths import LINK_LOOP, LINK_OUTSIDE, SPECIAL_FILE
from pipeline.formats.ingest import import_any, import_dataset
from tests.helpers import invoke, png

W, H = 20, 10


def _voc(root: Path, name: str) -> None:
    (root / f"{name}.xml").write_text(
        f"<annotation><filename>{name}.png</filename><size><width>{W}</width><height>{H}</height><depth>3</depth>"
        "</size><object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>6</xmax><ymax>6</ymax></bndbox>"
        "</object></annotation>")


def _yolo(root: Path, name: str) -> None:
    (root / "classes.txt").write_text("cat\n")
    (root / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.2\n")


def _createml(root: Path, name: str) -> None:
    entry = {"image": f"{name}.png", "annotations": [
        {"label": "cat", "coordinates": {"x": 5, "y": 5, "width": 4, "height": 4}}]}
    (root / f"{name}.json").write_text(json.dumps([entry]))


def _labelme(root: Path, name: str) -> None:
    doc = {"version": "5.0.1", "flags": {}, "imagePath": f"{name}.png", "imageData": None,
           "imageHeight": H, "imageWidth": W,
           "shapes": [{"label": "cat", "points": [[2, 2], [6, 6]], "shape_type": "rectangle", "flags": {}}]}
    (root / f"{name}.json").write_text(json.dumps(doc))


def _coco(root: Path, name: str) -> None:
    path = root / "instances.json"
    doc = json.loads(path.read_text()) if path.exists() else {
        "images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}]}
    i = len(doc["images"]) + 1
    doc["images"].append({"id": i, "file_name": f"{name}.png", "width": W, "height": H})
    doc["annotations"].append({"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 4, 4], "area": 16,
                               "iscrowd": 0})
    path.write_text(json.dumps(doc))


def _cvat(root: Path, name: str) -> None:
    path = root / "annotations.xml"
    images = path.read_text().split("<meta/>")[1].split("</annotations>")[0] if path.exists() else ""
    images += (f'<image id="{len(images)}" name="{name}.png" width="{W}" height="{H}">'
               '<box label="cat" xtl="2" ytl="2" xbr="6" ybr="6" occluded="0" z_order="0"/></image>')
    path.write_text(f"<annotations><version>1.1</version><meta/>{images}</annotations>")


def _labelstudio(root: Path, name: str) -> None:
    path = root / "tasks.json"
    tasks = json.loads(path.read_text()) if path.exists() else []
    tasks.append({"id": len(tasks) + 1, "data": {"image": f"/data/local-files/?d={name}.png"}, "annotations": [
        {"id": len(tasks) + 1, "completed_by": 1, "was_cancelled": False, "result": [
            {"id": f"r{name}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": W, "original_height": H,
             "value": {"x": 20, "y": 20, "width": 40, "height": 40, "rotation": 0, "rectanglelabels": ["cat"]}}]}]})
    path.write_text(json.dumps(tasks))


def _images(root: Path, name: str) -> None:
    """Unlabelled images: nothing to write beside the image."""


def _imagefolder(root: Path, name: str) -> None:
    (root / "cat").mkdir(exist_ok=True)


def _tables(root: Path, name: str) -> None:
    with open(root / "metadata.jsonl", "a") as fh:
        fh.write(json.dumps({"file_name": f"{name}.png", "label": "cat"}) + "\n")


# format -> (write the annotation of image `name`, the folder its image goes in)
FORMATS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "voc": (_voc, "."), "yolo": (_yolo, "."), "createml": (_createml, "."), "labelme": (_labelme, "."),
    "coco": (_coco, "."), "imagefolder": (_imagefolder, "cat"), "tables": (_tables, "."), "cvat": (_cvat, "."),
    "labelstudio": (_labelstudio, "."), "images": (_images, "."),
}


def test_every_format_is_covered() -> None:
    """A new format joins these cases (and the pixel-limit ones that reuse them). WebDataset's images
    live inside tar shards, not beside annotations: its shard files get the same checks in
    tests/formats/test_webdataset.py."""
    from pipeline import formats

    assert set(FORMATS) - {"tables"} == set(formats.available()) - {"webdataset"}


def _import(fmt: str, src: Path, out: Path):
    """Import `src` as `fmt`: (sample ids, skipped counts, warnings, problems as text)."""
    if fmt == "tables":
        outcome = import_any(src, out, stage="fetch", params={}, inputs={})
        ids = sorted(s.id for s in outcome.dataset.samples)
        return ids, dict(outcome.skipped), list(outcome.notes), [str(p) for p in outcome.problems]
    dataset, report = import_dataset(fmt, src, out)
    return (sorted(s.id for s in dataset.samples), dict(report.skipped), list(report.warnings),
            [str(p) for p in report.problems])


@pytest.fixture
def place(tmp_path: Path):
    """root/ holding image `a` (annotated); outside/ beside it holding a good image and annotations."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(png(W, H, (255, 0, 0)))
    return root, outside


def _setup(fmt: str, root: Path) -> Path:
    write, folder = FORMATS[fmt]
    write(root, "a")
    write(root, "b")
    d = root / folder
    d.mkdir(exist_ok=True)
    (d / "a.png").write_bytes(png(W, H))
    return d


def _stored_files_are_real(out: Path) -> None:
    for p in (out / "images").rglob("*"):
        assert not p.is_symlink(), p
    for s in load_dataset(out).samples:
        assert (out / s.image).is_file() and not (out / s.image).is_symlink()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_image_link_out_of_the_root_is_not_read(place, tmp_path: Path, fmt: str, absolute: bool) -> None:
    root, outside = place
    d = _setup(fmt, root)
    target = outside / "secret.png"
    (d / "b.png").symlink_to(target if absolute else os.path.relpath(target, d))
    ids, skipped, warnings, problems = _import(fmt, root, tmp_path / "out")
    assert all("b" not in i.rsplit("/", 1)[-1] for i in ids), ids  # the outside image never came in
    assert ids and skipped.get(LINK_OUTSIDE) == 1
    assert any("b.png: a link to" in w and "secret.png" in w and "outside the import folder" in w
               for w in warnings), warnings
    _stored_files_are_real(tmp_path / "out")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_image_link_inside_the_root_is_stored_as_a_real_file(place, tmp_path: Path, fmt: str,
                                                             absolute: bool) -> None:
    root, _ = place
    d = _setup(fmt, root)
    (root / "store").mkdir()
    (root / "store" / "real.png").write_bytes(png(W, H, (0, 255, 0)))
    target = root / "store" / "real.png"
    (d / "b.png").symlink_to(target if absolute else os.path.relpath(target, d))
    out = tmp_path / "out"
    ids, skipped, warnings, problems = _import(fmt, root, out)
    assert not problems and not skipped.get(LINK_OUTSIDE)
    dataset = load_dataset(out)
    b = next(s for s in dataset.samples if s.id.endswith("b"))
    stored = out / b.image
    assert stored.is_file() and not stored.is_symlink() and stored.read_bytes() == target.read_bytes()
    _stored_files_are_real(out)
    (root / "store" / "real.png").unlink()  # the dataset keeps its own copy
    assert stored.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.timeout(60)  # a FIFO that is opened blocks for ever
def test_fifo_named_like_an_image_never_hangs(place, tmp_path: Path, fmt: str) -> None:
    root, _ = place
    d = _setup(fmt, root)
    os.mkfifo(d / "b.png")
    ids, skipped, warnings, problems = _import(fmt, root, tmp_path / "out")
    assert [i.rsplit("/", 1)[-1] for i in ids] == ["a"]
    assert skipped.get(SPECIAL_FILE) == 1
    assert any("b.png: a FIFO, not a regular file" in w for w in warnings), warnings


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.timeout(60)
def test_fifo_named_like_an_annotation_never_hangs(place, tmp_path: Path, fmt: str) -> None:
    root, _ = place
    _setup(fmt, root)
    (root / "b.png").unlink(missing_ok=True)
    ext = {"voc": ".xml", "yolo": ".txt", "tables": ".csv"}.get(fmt, ".json")
    os.mkfifo(root / f"zz{ext}")
    ids, skipped, warnings, problems = _import(fmt, root, tmp_path / "out")
    assert [i.rsplit("/", 1)[-1] for i in ids] == ["a"]
    assert skipped.get(SPECIAL_FILE) == 1


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_folder_link_out_of_the_root_is_not_walked(place, tmp_path: Path, fmt: str) -> None:
    root, outside = place
    d = _setup(fmt, root)
    (d / "b.png").write_bytes(png(W, H, (0, 0, 255)))
    more = outside / "more"
    more.mkdir()
    write, folder = FORMATS[fmt]
    write(more, "c")  # a complete sample outside: annotation and image
    (more / folder).mkdir(exist_ok=True)
    (more / folder / "c.png").write_bytes(png(W, H))
    if fmt == "imagefolder":
        (root / "dog").symlink_to(more / "cat")  # a whole class folder outside
        (root / "cat" / "more").symlink_to(more / "cat")
    else:
        (root / "more").symlink_to(more)
    ids, skipped, warnings, problems = _import(fmt, root, tmp_path / "out")
    assert sorted(i.rsplit("/", 1)[-1] for i in ids) == ["a", "b"]
    assert skipped.get(LINK_OUTSIDE, 0) >= 1
    assert any("outside the import folder" in w for w in warnings)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.timeout(60)
def test_folder_link_loop_ends(place, tmp_path: Path, fmt: str) -> None:
    root, _ = place
    d = _setup(fmt, root)
    (d / "b.png").write_bytes(png(W, H, (0, 0, 255)))
    (root / "sub").mkdir()
    (root / "sub" / "loop").symlink_to("..")
    ids, skipped, warnings, problems = _import(fmt, root, tmp_path / "out")
    assert sorted(i.rsplit("/", 1)[-1] for i in ids) == ["a", "b"]
    assert skipped.get(LINK_LOOP) == 1


def test_annotation_link_out_of_the_root_is_not_read(place, tmp_path: Path) -> None:
    root, outside = place
    _setup("voc", root)
    (root / "b.xml").unlink()
    _voc(outside, "b")
    (root / "b.xml").symlink_to(outside / "b.xml")
    (root / "b.png").write_bytes(png(W, H))
    ids, skipped, warnings, problems = _import("voc", root, tmp_path / "out")
    assert ids == ["a"] and skipped.get(LINK_OUTSIDE) == 1


def test_summary_counts_and_warns(place, tmp_path: Path) -> None:
    root, outside = place
    d = _setup("imagefolder", root)
    (d / "b.png").symlink_to(outside / "secret.png")
    result = invoke("import", "imagefolder", root, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"skipped: {LINK_OUTSIDE}" in result.output
    assert "cat/b.png: a link to" in result.output and "secret.png" in result.output


def test_a_training_tree_with_a_broken_link_is_fingerprinted(tmp_path: Path) -> None:
    from pipeline.train import _tree_fingerprint

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(png(W, H))
    (tmp_path / "cat" / "gone.png").symlink_to("nowhere.png")
    os.mkfifo(tmp_path / "cat" / "pipe.png")
    assert len(_tree_fingerprint(tmp_path)) == 64  # stat only, never following or opening


def test_a_download_is_never_descended_through_a_link(tmp_path: Path) -> None:
    from pipeline.formats.tables import content_root

    (tmp_path / "elsewhere" / "cat").mkdir(parents=True)
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "data").symlink_to(tmp_path / "elsewhere")
    assert content_root(tmp_path / "dl") == tmp_path / "dl"


def test_fetch_summary_counts_refused_paths(tmp_path: Path, capsys) -> None:
    from pipeline.commands.common import report_import
    from pipeline.formats.tables import ImportOutcome

    rows: list = []
    outcome = ImportOutcome(kind="voc", imported=3, skipped={LINK_OUTSIDE: 2, "non-image files": 4})
    report_import(outcome, rows, tmp_path)
    assert (f"skipped: {LINK_OUTSIDE}", 2) in rows
    assert all("non-image" not in str(k) for k, _ in rows)  # the usual summary stays as it was


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.timeout(60)
def test_relative_source_paths(place, tmp_path: Path, monkeypatch, fmt: str) -> None:
    """The import root given relative to the working folder, as on a command line."""
    root, outside = place
    d = _setup(fmt, root)
    (d / "b.png").symlink_to(os.path.relpath(outside / "secret.png", d))
    os.mkfifo(d / "c.png")
    (root / "loop").symlink_to(".")
    monkeypatch.chdir(tmp_path)
    ids, skipped, warnings, problems = _import(fmt, Path("root"), Path("out"))
    assert [i.rsplit("/", 1)[-1] for i in ids] == ["a"]
    assert skipped.get(LINK_OUTSIDE) == 1 and skipped.get(SPECIAL_FILE) == 1
    b = "cat/b.png" if fmt == "imagefolder" else "b.png"
    assert any(w.startswith(f"{b}: a link to ") for w in warnings), warnings


def test_a_dataset_card_linked_from_outside_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "dl"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        (root / name / "a.png").write_bytes(png(W, H))
    (tmp_path / "card.md").write_text("---\nsecret: yes\n---\n")
    (root / "README.md").symlink_to(tmp_path / "card.md")
    outcome = import_any(root, tmp_path / "out", stage="fetch", params={}, inputs={})
    assert outcome.imported == 2
    assert [n for n in outcome.notes if n.startswith("README.md: a link to")] != []  # (once, not twice)
    assert len([n for n in outcome.notes if "README.md" in n]) == 1 and outcome.skipped[LINK_OUTSIDE] == 1
