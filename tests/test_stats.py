"""Dataset statistics: counts per class and split, box sizes, and the PNG."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.geometry import object_box
from pipeline.core.images import encode_png
from pipeline.stats import compute_stats, plot_stats, public, render_table
from tests.helpers import make_classification_dataset


def _det(root: Path) -> Path:
    png = encode_png(Image.new("RGB", (100, 50)))
    with DatasetWriter(root, task="detection", stage="test", classes=["a", "b", "c"]) as w:
        w.add(Sample(id="1", width=100, height=50, split="train",
                     objects=[Obj("a", bbox=[0, 0, 10, 40]), Obj("a", bbox=[0, 0, 50, 50])]), data=png)
        w.add(Sample(id="2", width=100, height=50, split="val",
                     objects=[Obj("b", polygon=[[[0, 0], [20, 0], [20, 5]]]), Obj("a", keypoints=[[1, 1, 2]])]),
              data=png)
        w.add(Sample(id="3", width=100, height=50, split="train", objects=[]), data=png)
    return root


def test_counts_per_class_and_split(tmp_path: Path) -> None:
    stats = compute_stats(load_dataset(_det(tmp_path / "d")))
    assert stats["splits"] == {"train": 2, "val": 1}
    assert stats["objects_per_class"] == {"a": {"train": 2, "val": 1, "total": 3},
                                          "b": {"train": 0, "val": 1, "total": 1},
                                          "c": {"train": 0, "val": 0, "total": 0}}
    assert stats["images_per_class"]["a"] == {"train": 1, "val": 1, "total": 2}
    assert stats["objects"] == 4
    assert stats["objects_per_image"]["max"] == 2 and stats["objects_per_image"]["min"] == 0
    # boxes: the two bboxes and the polygon's bounds (keypoints have no box)
    assert sorted(stats["_boxes"]["w"]) == [10, 20, 50]
    assert stats["box_width"]["median"] == 20
    assert stats["geometry"] == {"bbox": 2, "keypoints": 1, "polygon": 1}
    text = render_table(stats)
    assert "objects per class and split" in text and "(images)" in text
    assert "_boxes" not in public(stats)


def test_object_box() -> None:
    assert object_box(Obj("a", polyline=[[1, 2], [5, 0]])) == [1, 0, 5, 2]
    assert object_box(Obj("a", mask={"size": [1, 1], "counts": [1]})) is None  # no pixel set
    assert object_box(Obj("a", mask={"size": [2, 2], "counts": [1, 2, 1]})) == [0, 0, 2, 2]


def test_plot_detection_and_classification(tmp_path: Path) -> None:
    out = plot_stats(compute_stats(load_dataset(_det(tmp_path / "d"))), tmp_path / "det.png")
    with Image.open(out) as im:
        assert im.size == (1200, 900)
        assert len(im.convert("RGB").getcolors(1 << 20)) > 50  # drawn, not blank
    ds = load_dataset(make_classification_dataset(tmp_path / "c", classes=3, per_class=4))
    out = plot_stats(compute_stats(ds), tmp_path / "cls.png")
    with Image.open(out) as im:
        assert im.size == (1200, 450)
