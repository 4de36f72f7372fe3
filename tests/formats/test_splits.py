"""One split rule: `split_from_path`'s table and rule, and one tree read by every format that takes
splits from folders (YOLO, VOC, CreateML, COCO, ImageFolder) giving the same split to every image."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline import formats
from pipeline.core.dataset import DatasetWriter
from pipeline.core.images import encode_png
from pipeline.formats import splits
from pipeline.formats.base import ImportContext, ImportOptions, ImportReport
from pipeline.formats.splits import SPLIT_WORDS, split_from_path


@pytest.mark.parametrize(
    ("rel", "split"),
    [
        ("train", "train"),  # a split folder
        ("images/train", "train"),  # Ultralytics: below images/
        ("train/images", "train"),  # Roboflow: above images/
        ("valid", "val"),  # Roboflow's alias
        ("Validation/labels", "val"),  # another alias, any case
        ("dev", "val"),  # Hugging Face's dev split
        ("TESTING", "test"),  # upper case
        ("test/train", "train"),  # two folders name splits: the innermost wins
        ("train/x/val/y", "val"),  # the innermost split folder wins, whatever lies between
        ("val2017", "val"),  # digits end a word (COCO's image folders)
        ("annotations/instances_val2017.json", "val"),  # the file name beats the folders above it
        ("train/_annotations.coco.json", "train"),  # the file name names none: its folder decides
        ("data/train-00000-of-00001.parquet", "train"),  # Hugging Face parquet shards
        ("fashion-mnist_test.csv", "test"),  # Kaggle tables
        ("train/train_test_split.csv", "test"),  # within a name too, the last split word wins
        ("contest/latest/unittest", None),  # whole words only: no split hides inside a word
        ("images", None),  # nothing names a split
        ("", None),  # the import root itself
    ],
)
def test_split_from_path(rel: str, split: str | None) -> None:
    assert split_from_path(rel) == split


def test_os_separators_and_the_table() -> None:
    assert split_from_path("a\\valid\\b") == "val"  # Windows separators are no letters either
    assert set(SPLIT_WORDS.values()) == {"train", "val", "test"}
    assert all(word == word.casefold() and word.isalpha() for word in SPLIT_WORDS)


def test_docstring_examples() -> None:
    result = doctest.testmod(splits)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------------------------
# One tree, every format
# --------------------------------------------------------------------------------------------

W, H = 16, 12
# Folders holding images, and the split every format must read from them.
FOLDERS = {
    "train": "train",
    "valid": "val",
    "Testing": "test",
    "test/train": "train",  # two components name splits: the innermost wins
    "val2017/batch": "val",  # a split word with digits, a folder below it naming none
    "extra": None,  # no split
}
IMAGES = {"train": ["test_1", "p2"], "valid": ["p3"], "Testing": ["p4"], "test/train": ["p5"],
          "val2017/batch": ["p6"], "extra": ["p7"]}  # test_1: the image's own name never counts


def _png(i: int) -> bytes:
    return encode_png(Image.new("RGB", (W, H), (20 * i, 100, 50)))


def _write(fmt: str, root: Path, folders: list[str]) -> None:
    """The tree in `fmt`'s layout: one image with one box [2, 2, 10, 8] per name in IMAGES."""
    for n, folder in enumerate(folders):
        names = IMAGES[folder]
        if fmt == "yolo":  # Roboflow's YOLO layout: <folder>/images, <folder>/labels
            for i, stem in enumerate(names):
                (root / folder / "images").mkdir(parents=True, exist_ok=True)
                (root / folder / "labels").mkdir(parents=True, exist_ok=True)
                (root / folder / "images" / f"{stem}.png").write_bytes(_png(n + i))
                (root / folder / "labels" / f"{stem}.txt").write_text("0 0.375 0.416667 0.5 0.5\n")
        elif fmt == "voc":  # Roboflow's VOC layout: each XML beside its image
            for i, stem in enumerate(names):
                (root / folder).mkdir(parents=True, exist_ok=True)
                (root / folder / f"{stem}.png").write_bytes(_png(n + i))
                (root / folder / f"{stem}.xml").write_text(
                    f"<annotation><filename>{stem}.png</filename><size><width>{W}</width><height>{H}</height>"
                    "<depth>3</depth></size><object><name>a</name><bndbox><xmin>3</xmin><ymin>3</ymin>"
                    "<xmax>10</xmax><ymax>8</ymax></bndbox></object></annotation>")
        elif fmt == "createml":  # one annotations file per folder
            (root / folder).mkdir(parents=True, exist_ok=True)
            entries = []
            for i, stem in enumerate(names):
                (root / folder / f"{stem}.png").write_bytes(_png(n + i))
                entries.append({"image": f"{stem}.png", "annotations": [
                    {"label": "a", "coordinates": {"x": 6, "y": 5, "width": 8, "height": 6}}]})
            (root / folder / "_annotations.createml.json").write_text(json.dumps(entries))
        elif fmt == "coco":  # Roboflow's COCO layout: one _annotations.coco.json per folder
            (root / folder).mkdir(parents=True, exist_ok=True)
            doc: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
            for i, stem in enumerate(names):
                (root / folder / f"{stem}.png").write_bytes(_png(n + i))
                doc["images"].append({"id": i + 1, "file_name": f"{stem}.png", "width": W, "height": H})
                doc["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [2, 2, 8, 6]})
            (root / folder / "_annotations.coco.json").write_text(json.dumps(doc))
        elif fmt == "imagefolder":  # <split>/<class>/<image>
            for i, stem in enumerate(names):
                (root / folder / "a").mkdir(parents=True, exist_ok=True)
                (root / folder / "a" / f"{stem}.png").write_bytes(_png(n + i))
        else:
            raise AssertionError(f"no layout for {fmt}")


def _splits_read(fmt: str, root: Path, out: Path) -> dict[str, str | None]:
    """Image stem -> split, as `fmt`'s reader gives them."""
    module = formats.get(fmt)
    with DatasetWriter(out, task=module.TASK, stage="import") as writer:
        module.read(root, ImportContext(root, writer, ImportOptions(), ImportReport()))
        dataset = writer.commit()
    return {Path(s.source.get("image") or s.source.get("file") or s.id).stem: s.split for s in dataset.samples}


@pytest.mark.parametrize("fmt", ["yolo", "voc", "createml", "coco"])
def test_every_format_reads_the_same_splits(tmp_path: Path, fmt: str) -> None:
    _write(fmt, tmp_path / "src", list(FOLDERS))
    expected = {stem: FOLDERS[folder] for folder, stems in IMAGES.items() for stem in stems}
    assert _splits_read(fmt, tmp_path / "src", tmp_path / "ds") == expected


def test_imagefolder_reads_the_same_splits(tmp_path: Path) -> None:
    # ImageFolder takes the split from the top folder only (the folders below are classes), so
    # its tree holds the top-level split folders of the others.
    top = [f for f in FOLDERS if "/" not in f and FOLDERS[f] is not None]
    _write("imagefolder", tmp_path / "src", top)
    expected = {stem: FOLDERS[folder] for folder in top for stem in IMAGES[folder]}
    assert _splits_read("imagefolder", tmp_path / "src", tmp_path / "ds") == expected
