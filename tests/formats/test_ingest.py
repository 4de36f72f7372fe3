"""The ingest API: detect, import (one format, or whatever a download holds), export, and the lineage they record."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.dataset import DatasetWriter, Sample, load_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.formats import ingest
from pipeline.formats.base import ExportReport, ImportReport
from pipeline.formats.ingest import (
    ExportResult,
    ImportResult,
    detect_format,
    export_dataset,
    import_any,
    import_dataset,
    import_images,
)
from tests.helpers import digit_png as png

KEYS = {"stage": "fetch", "params": {"source": "test"}, "inputs": {"test://x": "0" * 64}}


def tree(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 2) -> Path:
    """An ImageFolder tree: root/<class>/<n>.png."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(png(c, 10 * c + i))
    return root


def pixel_csv(path: Path, rows: list[tuple[str | None, list[int]]]) -> Path:
    header = (["label"] if rows[0][0] is not None else []) + [f"pixel{i}" for i in range(4)]
    lines = [",".join(header)] + [",".join(([lab] if lab is not None else []) + [str(v) for v in px])
                                  for lab, px in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# detect_format / import_dataset
# ----------------------------------------------------------------------------------------------


def test_detect_format_finds_an_imagefolder_tree(tmp_path):
    fmt, description = detect_format(tree(tmp_path / "src"))
    assert (fmt, description) == ("imagefolder", "ImageFolder tree with 2 class folders")


def test_detect_format_names_every_layout_it_tried(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no known layout found \\(tried imagefolder, voc, yolo, createml, labelme, coco, cvat, labelstudio, webdataset\\)"):
        detect_format(tmp_path / "empty")


def test_import_returns_a_typed_result_that_unpacks(tmp_path):
    result = import_dataset("imagefolder", tree(tmp_path / "src"), tmp_path / "ds")
    assert isinstance(result, ImportResult) and isinstance(result.report, ImportReport)
    dataset, report = result
    assert dataset is result.dataset and report is result.report
    assert dataset.classes == ["cat", "dog"] and report.imported == 4 and report.detected is None


def test_import_records_params_and_one_hash_over_what_it_read(tmp_path):
    src = tree(tmp_path / "src")
    ds, _ = import_dataset("imagefolder", src, tmp_path / "a", class_map={"dog": "hound"}, stage_params={"extra": 1})
    entry = ds.info.lineage[-1]
    assert entry["stage"] == "import"
    assert entry["params"] == {"format": "imagefolder", "src": str(src), "classes": None, "map": {"dog": "hound"},
                               "on_error": "skip", "on_invalid": "error", "extra": 1}
    assert list(entry["inputs"]) == [str(src)] and len(entry["inputs"][str(src)]) == 64
    again, _ = import_dataset("imagefolder", src, tmp_path / "b", class_map={"dog": "hound"})
    assert again.info.lineage[-1]["inputs"] == entry["inputs"]  # the same files, the same hash
    (src / "cat" / "0.png").write_bytes(png(1, 99))
    changed, _ = import_dataset("imagefolder", src, tmp_path / "c")
    assert changed.info.lineage[-1]["inputs"] != entry["inputs"]  # one image's bytes changed


def test_import_takes_the_lineage_inputs_it_is_given(tmp_path):
    ds, _ = import_dataset("imagefolder", tree(tmp_path / "src"), tmp_path / "ds", lineage_inputs={"k": "v"})
    assert ds.info.lineage[-1]["inputs"] == {"k": "v"}


def test_auto_says_what_it_detected(tmp_path, capsys):
    _, report = import_dataset("auto", tree(tmp_path / "src"), tmp_path / "ds")
    assert report.detected.startswith("imagefolder: ")
    assert f"detected {report.detected}" in capsys.readouterr().err


def test_import_into_a_folder_inside_the_source(tmp_path):
    # the writer's temporary folder is dot-named, so the reader never sees the dataset being written
    src = tree(tmp_path / "src")
    ds, _ = import_dataset("imagefolder", src, src / "imported")
    assert len(ds.samples) == 4 and load_dataset(src / "imported").classes == ["cat", "dog"]


def test_import_errors_name_the_source(tmp_path):
    with pytest.raises(UsageError, match="no such file or folder"):
        import_dataset("imagefolder", tmp_path / "missing", tmp_path / "ds")
    (tmp_path / "junk" / "cat").mkdir(parents=True)
    (tmp_path / "junk" / "cat" / "a.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match="nothing imported as imagefolder \\(1 bad files; first: "):
        import_dataset("imagefolder", tmp_path / "junk", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    with pytest.raises(UsageError, match="unknown format 'tiff'"):
        import_dataset("tiff", tmp_path / "junk", tmp_path / "ds")


# ----------------------------------------------------------------------------------------------
# export_dataset
# ----------------------------------------------------------------------------------------------


def test_export_returns_a_typed_result_and_refuses_to_overwrite(tmp_path):
    ds, _ = import_dataset("imagefolder", tree(tmp_path / "src"), tmp_path / "ds")
    result = export_dataset(ds.root, "imagefolder", tmp_path / "out")
    assert isinstance(result, ExportResult) and isinstance(result.report, ExportReport)
    assert result.report.written == 4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".pipeline-export", "cat", "dog"]
    with pytest.raises(UsageError, match="already holds a pipeline export"):
        export_dataset(ds.root, "imagefolder", tmp_path / "out")
    assert export_dataset(ds.root, "yolo", tmp_path / "out", overwrite=True).report.written == 4
    with pytest.raises(UsageError, match="is an input of this command"):
        export_dataset(ds.root, "imagefolder", ds.root, overwrite=True)


def test_export_of_an_empty_dataset_is_refused(tmp_path):
    with DatasetWriter(tmp_path / "empty", task="classification", stage="t") as w:
        w.commit()
    with pytest.raises(UsageError, match="the dataset is empty"):
        export_dataset(tmp_path / "empty", "coco", tmp_path / "out")


def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
    ds, _ = import_dataset("imagefolder", tree(tmp_path / "src"), tmp_path / "ds")

    class Broken:
        @staticmethod
        def write(dataset, out, report, options):
            (out / "half.txt").write_text("half")
            raise RuntimeError("disk full")

    monkeypatch.setattr(ingest.formats, "get", lambda name: Broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_dataset(ds.root, "voc", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]


# ----------------------------------------------------------------------------------------------
# import_any: whatever a download holds
# ----------------------------------------------------------------------------------------------


def test_parquet_with_an_image_column_and_class_names(tmp_path):
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": png(i % 2, i), "path": None} for i in range(3)], type=image),
                      "label": pa.array([0, 1, 0], type=pa.int64())})
    features = {"image": {"_type": "Image"}, "label": {"names": ["zero", "one"], "_type": "ClassLabel"}}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    (tmp_path / "raw" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "raw" / "data" / "test-00000-of-00001.parquet")
    outcome = import_any(tmp_path / "raw", tmp_path / "ds", **KEYS)
    assert outcome.kind == "parquet" and outcome.imported == 3
    ds = load_dataset(tmp_path / "ds")
    assert ds.classes == ["zero", "one"] and ds.splits() == {"test": 3}
    assert ds.info.lineage[-1]["params"] == KEYS["params"] and ds.info.lineage[-1]["inputs"] == KEYS["inputs"]


def test_pixel_tables_skip_an_unlabelled_one_with_a_note(tmp_path):
    pixel_csv(tmp_path / "raw" / "train.csv", [("3", [0, 255, 0, 255]), ("4", [255, 0, 255, 0])])
    pixel_csv(tmp_path / "raw" / "test.csv", [(None, [0, 0, 0, 0])])
    outcome = import_any(tmp_path / "raw", tmp_path / "ds", **KEYS)
    assert outcome.kind == "pixel-csv" and outcome.imported == 2
    assert outcome.notes == ["test.csv: no label column (unlabelled rows); kept in the raw download only"]
    assert load_dataset(tmp_path / "ds").splits() == {"train": 2}


def test_a_bad_row_stops_the_import_with_on_error_error(tmp_path):
    pixel_csv(tmp_path / "raw" / "train.csv", [("3", [0, 255, 0, 255]), ("4", [0, 999, 0, 0])])
    outcome = import_any(tmp_path / "raw", tmp_path / "ds", **KEYS)
    assert outcome.imported == 1 and [p.field for p in outcome.problems] == ["pixel"]
    with pytest.raises(DataError, match="pixel out of range"):
        import_any(tmp_path / "raw", tmp_path / "strict", on_error="error", **KEYS)
    assert not (tmp_path / "strict").exists()


def test_metadata_folder(tmp_path):
    raw = tmp_path / "raw" / "wrapper"
    (raw / "train").mkdir(parents=True)
    (raw / "train" / "a.png").write_bytes(png(0, 1))
    (raw / "train" / "b.png").write_bytes(png(1, 2))
    (raw / "train" / "metadata.jsonl").write_text(
        '{"file_name": "a.png", "label": "zero"}\n{"file_name": "b.png", "label": "one"}\n', encoding="utf-8")
    outcome = import_any(tmp_path / "raw", tmp_path / "ds", **KEYS)
    assert outcome.kind == "metadata" and outcome.imported == 2
    assert load_dataset(tmp_path / "ds").classes == ["one", "zero"]


def test_anything_else_goes_to_the_annotation_formats(tmp_path):
    tree(tmp_path / "raw" / "only-folder" / "photos")
    outcome = import_any(tmp_path / "raw", tmp_path / "ds", **KEYS)
    assert outcome.kind == "imagefolder" and outcome.imported == 4
    assert outcome.notes[0].startswith("detected ") and outcome.dataset.classes == ["cat", "dog"]
    entry = load_dataset(tmp_path / "ds").info.lineage[-1]
    assert entry["params"]["source"] == "test" and entry["inputs"] == KEYS["inputs"]


def test_an_empty_download_is_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(UsageError, match="no known layout found"):
        import_any(tmp_path / "raw", tmp_path / "ds", **KEYS)


# ----------------------------------------------------------------------------------------------
# import_images
# ----------------------------------------------------------------------------------------------


def test_loose_images_keep_their_provenance_and_bad_files_are_reported(tmp_path):
    (tmp_path / "a.png").write_bytes(png(0, 1))
    (tmp_path / "bad.png").write_bytes(b"<html>")
    items = [(tmp_path / "a.png", {"url": "http://x/a.png"}), (tmp_path / "bad.png", {"url": "http://x/bad.png"})]
    outcome = import_images(items, tmp_path / "ds", label="digit", **KEYS)
    assert outcome.kind == "images" and outcome.imported == 1 and len(outcome.problems) == 1
    ds = load_dataset(tmp_path / "ds")
    assert ds.classes == ["digit"] and [s.source for s in ds.samples] == [{"url": "http://x/a.png"}]
    assert ds.info.lineage[-1]["stage"] == "fetch"


def test_no_importable_image_is_an_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"<html>")
    with pytest.raises(UsageError, match="no image could be imported \\(first problem: bad.png"):
        import_images([(tmp_path / "bad.png", {})], tmp_path / "ds", **KEYS)
    assert not (tmp_path / "ds").exists()


def test_sample_ids_of_loose_images_are_content_hashes(tmp_path):
    (tmp_path / "a.png").write_bytes(png(0, 1))
    import_images([(tmp_path / "a.png", {})], tmp_path / "ds", **KEYS)
    sample: Sample = load_dataset(tmp_path / "ds").samples[0]
    assert sample.id == sample.sha256[:16] and sample.label is None


# -- one real set in every layout the importers find on their own ----------------------------------


def _layouts(tmp_path: Path) -> dict[str, tuple[Path, Path | None]]:
    """The raccoon set (real labelImg VOC files) rebuilt as other tools lay it out: name ->
    (SRC, --images DIR or None)."""
    from tests.helpers import shared_data

    real = shared_data("raccoon-voc")
    base, _ = import_dataset("voc", real, tmp_path / "base")
    out: dict[str, tuple[Path, Path | None]] = {"voc labelImg": (real, None)}
    # VOC devkit: Annotations/, JPEGImages/, ImageSets/Main/<split>.txt
    dev = tmp_path / "VOCdevkit" / "VOC2012"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (dev / d).mkdir(parents=True)
    for xml in sorted((real / "annotations").glob("*.xml")):
        shutil.copy(xml, dev / "Annotations" / xml.name)
        os.link(real / "images" / f"{xml.stem}.jpg", dev / "JPEGImages" / f"{xml.stem}.jpg")
    (dev / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{s.id}\n" for s in base.samples))
    out["voc devkit"] = (tmp_path / "VOCdevkit", None)
    # COCO's own download: annotations/instances_train2017.json beside train2017/
    export_dataset(base.root, "coco", tmp_path / "coco-x")
    coco = tmp_path / "coco2017"
    (coco / "annotations").mkdir(parents=True)
    os.rename(tmp_path / "coco-x" / "_annotations.coco.json", coco / "annotations" / "instances_train2017.json")
    os.rename(tmp_path / "coco-x", coco / "train2017")
    out["coco standard"] = (coco, None)
    # darknet (CVAT's YOLO 1.1 export) with the images moved to a sibling images/ folder
    export_dataset(base.root, "yolo", tmp_path / "yolo-x")
    dark = tmp_path / "darknet"
    (dark / "obj_train_data").mkdir(parents=True)
    (dark / "images").mkdir()
    for label in sorted((tmp_path / "yolo-x" / "labels").rglob("*.txt")):
        os.rename(label, dark / "obj_train_data" / label.name)
    for image in sorted((tmp_path / "yolo-x" / "images").rglob("*.jpg")):
        os.rename(image, dark / "images" / image.name)
    (dark / "obj.names").write_text("raccoon\n")
    (dark / "obj.data").write_text("classes = 1\ntrain = data/train.txt\nnames = data/obj.names\n")
    (dark / "train.txt").write_text("".join(f"data/obj_train_data/{s.id}.jpg\n" for s in base.samples))
    out["darknet, images elsewhere"] = (dark, None)
    # the label files alone, the images named with --images
    export_dataset(base.root, "yolo", tmp_path / "yolo-y")
    labels = tmp_path / "yolo-y" / "labels"
    (labels / "obj.names").write_text("raccoon\n")
    out["yolo labels only, --images"] = (labels, real / "images")
    out["voc xml only, --images"] = (real / "annotations", real / "images")
    for fmt in ("cvat", "labelme"):
        export_dataset(base.root, fmt, tmp_path / f"{fmt}-x")
        out[fmt] = (tmp_path / f"{fmt}-x", None)
    return out


@pytest.fixture(scope="module")
def raccoon_layouts(tmp_path_factory) -> dict[str, tuple[Path, Path | None]]:
    return _layouts(tmp_path_factory.mktemp("layouts"))


def test_one_real_set_in_every_layout_imports_the_same(tmp_path: Path, raccoon_layouts: dict) -> None:
    layouts = raccoon_layouts
    first = None
    for k, (name, (src, images)) in enumerate(layouts.items()):
        ds, report = import_dataset("auto", src, tmp_path / f"ds{k}", images=images)
        assert not report.problems, (name, [str(p) for p in report.problems])
        boxes = {s.id: (s.sha256, sorted((o.label, tuple(round(v) for v in o.bbox)) for o in s.objects))
                 for s in ds.samples}
        assert (len(ds.samples), sum(len(b) for _, b in boxes.values()), ds.classes) == (200, 217, ["raccoon"]), name
        if first is None:
            first = boxes
        assert boxes == first, name  # each image with its id, its bytes and its boxes of the same class


def test_darknet_labels_whose_images_are_nowhere_are_an_error_not_an_empty_import(tmp_path: Path,
                                                                                    raccoon_layouts: dict) -> None:
    dark = tmp_path / "darknet"
    shutil.copytree(raccoon_layouts["darknet, images elsewhere"][0], dark, ignore=shutil.ignore_patterns("images"))
    with pytest.raises((DataError, UsageError)):
        import_dataset("auto", dark, tmp_path / "none")
    assert not (tmp_path / "none").exists()
