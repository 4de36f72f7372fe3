"""Readers for pixel tables, Hub parquet files, metadata folders and loose images (`formats.tables`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core.dataset import DatasetWriter, load_dataset
from pipeline.formats.tables import (
    ImportOutcome,
    card_class_names,
    content_root,
    parquet_columns,
    pixel_table_header,
    read_images,
    read_metadata_folder,
    read_pixel_csv,
)
from tests.helpers import digit_png as png


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("header, expected", [
    ("label,pixel0,pixel1,pixel2,pixel3", (0, [1, 2, 3, 4], 2)),  # Kaggle digit-recognizer
    ("label,pixel1,pixel2,pixel3,pixel4", (0, [1, 2, 3, 4], 2)),  # Fashion-MNIST counts from 1
    ("pixel_3,pixel_1,pixel_2,pixel_0,Class", (4, [3, 1, 2, 0], 2)),  # pixel order, not column order
    ("pixel0,pixel1,pixel2,pixel3", (None, [0, 1, 2, 3], 2)),  # no label column
    ("label,pixel0,pixel1,pixel2", None),  # 3 pixels: not a square
    ("label,x,y", None),
    ("", None),
])
def test_pixel_table_header(tmp_path, header, expected):
    assert pixel_table_header(write(tmp_path / "t.csv", header + "\n")) == expected


def test_pixel_table_header_of_a_missing_or_binary_file(tmp_path):
    assert pixel_table_header(tmp_path / "missing.csv") is None
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00label")
    assert pixel_table_header(tmp_path / "bin.csv") is None


def test_read_pixel_csv_rows_and_bad_rows(tmp_path):
    path = write(tmp_path / "train.csv", "label,pixel0,pixel1,pixel2,pixel3\n"
                 "7,0,64,128,255\n\n8,0,0,x,0\n9,0,0,0,256\n,0,0,0,0\n7,1,2,3\n")
    outcome = ImportOutcome(kind="pixel-csv")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t") as w:
        assert read_pixel_csv(path, w, outcome, rel="train.csv") == 1
        w.commit()
    assert [(p.line, p.field) for p in outcome.problems] == [(4, "pixel"), (5, "pixel"), (6, "column 1"), (7, "pixel")]
    sample = load_dataset(tmp_path / "ds").samples[0]
    assert (sample.id, sample.label, sample.split, sample.source) == ("train/000001", "7", "train",
                                                                      {"file": "train.csv", "row": 1})
    pixels = np.asarray(Image.open(tmp_path / "ds" / "images" / "train" / "000001.png"))
    assert pixels.tolist() == [[0, 64], [128, 255]]


CARD = """---
dataset_info:
- config_name: a
  features:
  - name: label
    dtype:
      class_label:
        names:
          '1': one
          '0': zero
- config_name: b
  features:
  - name: kind
    dtype:
      class_label:
        names: [x, y]
---
text
"""


def test_card_class_names(tmp_path):
    assert card_class_names(write(tmp_path / "README.md", CARD)) == {"label": ["zero", "one"], "kind": ["x", "y"]}
    assert card_class_names(write(tmp_path / "plain.md", "# no front matter\n")) == {}
    assert card_class_names(write(tmp_path / "bad.md", "---\n: [\n---\n")) == {}
    assert card_class_names(tmp_path / "missing.md") == {}


def parquet(path: Path, columns: dict, features: dict | None = None) -> Path:
    table = pa.table(columns)
    if features:
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def test_parquet_columns_from_metadata_card_or_column_name(tmp_path):
    images = pa.array([{"bytes": png(0, 1), "path": None}], type=IMAGE)
    meta = parquet(tmp_path / "m.parquet", {"img": images, "digit": pa.array([0])},
                   {"img": {"_type": "Image"}, "digit": {"_type": "ClassLabel", "names": ["zero"]}})
    assert parquet_columns(meta, {}) == ("img", "digit", ["zero"])
    card = parquet(tmp_path / "c.parquet", {"image": images, "label": pa.array([0])})
    assert parquet_columns(card, {"label": ["zero", "one"]}) == ("image", "label", ["zero", "one"])
    named = parquet(tmp_path / "n.parquet", {"image": images, "Target": pa.array(["cat"])})
    assert parquet_columns(named, {}) == ("image", "Target", None)
    none = parquet(tmp_path / "x.parquet", {"text": pa.array(["a"])})
    assert parquet_columns(none, {}) is None


def test_read_metadata_folder_reports_what_it_cannot_use(tmp_path):
    root = tmp_path / "repo"
    (root / "train" / "cat").mkdir(parents=True)
    (root / "train" / "cat" / "a.png").write_bytes(png(0, 1))
    (root / "train" / "b.png").write_bytes(png(1, 2))
    write(root / "train" / "metadata.csv", "file_name,label\ncat/a.png,\nb.png,dog\nmissing.png,x\n../../out.png,x\n,x\n")
    outcome = ImportOutcome(kind="metadata")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t") as w:
        assert read_metadata_folder(root, w, outcome) == 2
        w.commit()
    problems = [(p.line, str(p)) for p in outcome.problems]
    assert [line for line, _ in problems] == [4, 5, 6]
    for (_, text), reason in zip(problems, ("no such image", "file outside the dataset", "no file_name"), strict=True):
        assert reason in text
    ds = load_dataset(tmp_path / "ds")
    labels = {s.source["file"]: s.label for s in ds.samples}
    assert labels == {"train/cat/a.png": "cat", "train/b.png": "dog"}  # the class folder when no label is given
    assert {s.source["metadata"] for s in ds.samples} == {"train/metadata.csv"}


def test_read_images_adds_provenance(tmp_path):
    (tmp_path / "a.png").write_bytes(png(0, 1))
    (tmp_path / "b.txt").write_text("no")
    outcome = ImportOutcome(kind="images")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t", classes=["x"]) as w:
        assert read_images([(tmp_path / "a.png", {"url": "u"}), (tmp_path / "b.txt", {})], w, outcome, "x") == 1
        w.commit()
    assert len(outcome.problems) == 1 and "unknown file signature" in str(outcome.problems[0])
    assert [(s.label, s.source) for s in load_dataset(tmp_path / "ds").samples] == [("x", {"url": "u"})]


def test_content_root_descends_through_wrapper_folders(tmp_path):
    (tmp_path / "a" / "b" / "c" / "one").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "two").mkdir()
    (tmp_path / "a" / ".DS_Store").write_text("")  # junk does not count as content
    (tmp_path / "a" / "README.md").write_text("")
    assert content_root(tmp_path) == tmp_path / "a" / "b" / "c"
    (tmp_path / "s" / "train" / "cat").mkdir(parents=True)
    assert content_root(tmp_path / "s") == tmp_path / "s"  # a lone split folder is kept: its name is the split
