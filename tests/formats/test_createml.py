"""CreateML JSON: the shared contract, centre/size conversion, bad entries reported one by one."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from pipeline.core.errors import DataError
from pipeline.formats import createml
from pipeline.formats.ingest import import_dataset
from tests import helpers
from tests.formats.contract import BOXES, EMPTY, SPLITS, FormatContract

png = partial(helpers.png, 80, 60)  # this module's images are 80x60


def ann(label: str, x: float, y: float, w: float, h: float) -> dict:
    return {"label": label, "coordinates": {"x": x, "y": y, "width": w, "height": h}}


class TestCreatemlContract(FormatContract):
    FORMAT = "createml"
    CAN = {BOXES, SPLITS, EMPTY}
    OTHERS = ("voc",)  # every pair runs in test_round_trips.py


    def golden(self, folder: Path) -> dict:
        (folder / "ünï.png").write_bytes(png())
        (folder / "b.PNG").write_bytes(png())
        doc = [{"image": "ünï.png", "annotations": [ann("cat", 40, 30, 20, 10), ann("dog", 40, 30, 80, 60)]},
               {"image": "b.png", "annotations": []}]
        (folder / "labels.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        return {"ünï": [("cat", [30.0, 25.0, 50.0, 35.0]), ("dog", [0.0, 0.0, 80.0, 60.0])], "b": []}


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"annotations": []}, r"\[0\].image: expected an image file name"),
        ({"image": "a.png", "annotations": {}}, r"\[0\].annotations: expected a list"),
        ({"image": "a.png", "annotations": [{"label": "", "coordinates": {}}]}, r"annotations\[0\].label"),
        ({"image": "a.png", "annotations": [ann("c", float("nan"), 1, 2, 3)]}, r"coordinates.x: expected a finite"),
        ({"image": "a.png", "annotations": [ann("c", 1, 1, -2, 3)]}, "negative size"),
        ({"image": "a.png", "annotations": [{"label": "c", "coordinates": [1, 2, 3, 4]}]}, "coordinates: expected"),
    ],
)
def test_parse_entry_errors(entry: dict, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        createml.parse_entry(entry, "x.json", 0)
    assert str(info.value).startswith("x.json")


def test_centre_size_conversion_round_trip() -> None:
    box = createml.to_xyxy({"x": 10.5, "y": 20, "width": 5, "height": 8}, "x", "c")
    assert box == [8.0, 16.0, 13.0, 24.0] and createml.from_xyxy(box) == {"x": 10.5, "y": 20, "width": 5, "height": 8}


def test_bad_entries_reported_others_imported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for n in ("a", "b"):
        (src / f"{n}.png").write_bytes(png())
    doc = [{"image": "a.png", "annotations": [ann("cat", 10, 10, 4, 4)]},
           {"image": "b.png", "annotations": [ann("cat", 10, 10, "4", 4)]},
           {"image": "missing.png", "annotations": []}]
    (src / "x.json").write_text(json.dumps(doc))
    (src / "broken.json").write_text('[{"image": "a.png", "annotations": [}')
    ds, report = import_dataset("createml", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["a"]
    msgs = sorted(str(e) for e in report.problems)
    assert msgs[0].startswith("broken.json:1: not valid JSON")
    assert any("x.json: [1].annotations[0].coordinates.width" in m for m in msgs)
    assert any("x.json: [2].image: image not found" in m for m in msgs)


def test_images_option_reads_images_only_there(tmp_path: Path) -> None:
    src, media = tmp_path / "json", tmp_path / "media"
    src.mkdir()
    (media / "train").mkdir(parents=True)
    (media / "train" / "a.jpg").write_bytes(png())
    (src / "b.jpg").write_bytes(png())  # under SRC: not read with --images
    doc = [{"image": "a.jpg", "annotations": [ann("cat", 20, 20, 10, 10)]},
           {"image": "b.jpg", "annotations": [ann("dog", 20, 20, 10, 10)]}]
    (src / "annotations.json").write_text(json.dumps(doc))
    ds, report = import_dataset("createml", src, tmp_path / "ds", images=media)
    assert [s.source["image"] for s in ds.samples] == ["train/a.jpg"]
    assert [o.label for o in ds.samples[0].objects] == ["cat"] and len(report.problems) == 1
