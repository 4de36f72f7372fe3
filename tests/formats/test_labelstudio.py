"""Label Studio JSON: the shared contract, golden full and JSON-MIN exports (two annotators, a
cancelled annotation, predictions, per-region choices, rotation, polygons, keypoints, every URL
style), the round trip Label Studio -> pipeline -> Label Studio, and hostile input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import DatasetWriter, load_dataset
from pipeline.core.errors import DataError
from pipeline.formats import labelstudio as ls
from pipeline.formats.base import ImportContext, ImportOptions, ImportReport
from pipeline.formats.ingest import detect_format, export_dataset, import_dataset
from tests import helpers
from tests.formats.contract import BOXES, EMPTY, POLYGONS, SPLITS, FormatContract

W, H = 200, 100  # every golden image


def png(i: int) -> bytes:
    return helpers.png(W, H, (10 * i, 200 - 10 * i, 7 * i))  # images differ, so samples match by content


def rect(rid: str, label: str, x: float, y: float, w: float, h: float, rotation: float = 0, **extra) -> dict:
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": W,
            "original_height": H, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                                            "rectanglelabels": [label]}, **extra}


CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="dog"/><Label value="cat"/></RectangleLabels>
  <PolygonLabels name="polygon" toName="image"><Label value="bird"/></PolygonLabels>
  <Choices name="quality" toName="image" perRegion="true"><Choice value="sharp"/><Choice value="blurry"/></Choices>
  <Choices name="choice" toName="image"><Choice value="dog"/><Choice value="cat"/></Choices>
</View>
"""

FULL = [
    {"id": 1, "data": {"image": "/data/upload/1/0a1b2c3d-a.png"},  # the hash prefix Label Studio adds
     "annotations": [
         {"id": 11, "completed_by": 1, "was_cancelled": False, "created_at": "2026-01-01T10:00:00Z",
          "updated_at": "2026-01-01T10:00:00Z", "result": [rect("r1", "dog", 10, 20, 30, 40)]},
         {"id": 12, "completed_by": {"id": 2, "email": "b@example.org"}, "was_cancelled": False,
          "created_at": "2026-01-01T11:00:00Z", "updated_at": "2026-01-02T10:00:00.000000Z",
          "result": [
              rect("r2", "cat", 50, 50, 10, 20, rotation=90),  # 20x20 px turned about (100, 50)
              {"id": "r2", "type": "choices", "from_name": "quality", "to_name": "image",
               "value": {"choices": ["sharp"]}},  # per region: linked by the region's id
              {"id": "r3", "type": "polygonlabels", "from_name": "polygon", "to_name": "image",
               "original_width": W, "original_height": H,
               "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["bird"]}},
              {"id": "t1", "type": "textarea", "from_name": "note", "to_name": "image",
               "value": {"text": ["check"]}},
          ]},
         {"id": 13, "completed_by": 3, "was_cancelled": True, "updated_at": "2026-01-03T10:00:00Z", "result": []},
     ],
     "predictions": [{"id": 5, "model_version": "yolo-v3", "score": 0.8,
                      "result": [rect("p1", "dog", 10, 20, 30, 40, score=0.9)]}]},
    {"id": 2, "data": {"image": "/data/local-files/?d=sub/b.png"},
     "annotations": [{"id": 21, "completed_by": 1, "result": [
         {"id": "k1", "type": "keypointlabels", "from_name": "kp", "to_name": "image", "original_width": W,
          "original_height": H, "value": {"x": 50, "y": 50, "width": 1, "keypointlabels": ["cat"]}},
         {"id": "c1", "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["dog"]}},
     ]}]},
    {"id": 3, "data": {"image": "http://example.com/imgs/c.png?token=1"},
     "annotations": [{"id": 31, "completed_by": 1, "result": [
         {"id": "c2", "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": ["cat"]}}]}]},
    {"id": 4, "data": {"image": "/d.png"}, "annotations": [], "predictions": []},  # unlabelled
    {"id": 5, "data": {"image": "s3://bucket/e.png"}, "annotations": [{"id": 51, "result": [
        {"id": "x1", "type": "rectangle", "from_name": "box", "to_name": "image",
         "value": {"x": 0, "y": 0, "width": 50, "height": 50}},
        {"id": "x1", "type": "labels", "from_name": "lab", "to_name": "image", "value": {"labels": ["bird"]}}]}]},
]

MIN = [
    {"image": "/data/upload/2/deadbeef-a.png", "id": 1, "annotator": "b@example.org", "annotation_id": 21,
     "created_at": "2026-01-01T10:00:00Z", "updated_at": "2026-01-01T10:00:00Z", "lead_time": 3.2,
     "label": [{"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["dog"],
                "original_width": W, "original_height": H}],
     "choice": "cat"},
    {"image": "/data/local-files/?d=sub%2Fb.png", "id": 2, "annotator": "c@example.org", "annotation_id": 22,
     "poly": [{"points": [[0, 0], [100, 0], [100, 100]], "polygonlabels": ["bird"], "original_width": W,
               "original_height": H}],
     "kp": [{"x": 25, "y": 75, "width": 1, "keypointlabels": ["cat"], "original_width": W, "original_height": H}]},
]


def write_golden(folder: Path, doc: list | None = None, config: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("a.png", "sub/b.png", "c.png", "d.png", "e.png")):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(png(i + 1))
    (folder / "project-1-at-2026-01-05.json").write_text(json.dumps(FULL if doc is None else doc), encoding="utf-8")
    if config:
        (folder / "label_config.xml").write_text(CONFIG, encoding="utf-8")
    return folder


class TestLabelStudioContract(FormatContract):
    FORMAT = "labelstudio"
    CAN = {BOXES, POLYGONS, SPLITS, EMPTY}
    OTHERS = ("coco",)  # every pair runs in test_round_trips.py

    def golden(self, folder: Path) -> dict:
        write_golden(folder)
        return {
            "a": [("cat", [80.0, 50.0, 100.0, 70.0]), ("bird", [0.0, 0.0, 100.0, 50.0])],  # the newest annotation
            "b": [("cat", None)],  # a keypoint
            "c": [],  # an image-level choice
            "d": [],  # unlabelled
            "e": [("bird", [0.0, 0.0, 100.0, 50.0])],  # a rectangle with a labels result of its id
        }


def by_stem(ds) -> dict:
    return {Path(s.source["image"]).stem: s for s in ds.samples}


def test_golden_full_export_in_detail(tmp_path: Path) -> None:
    ds, report = import_dataset("labelstudio", write_golden(tmp_path / "src"), tmp_path / "ds")
    assert not report.problems, [str(p) for p in report.problems]
    assert ds.classes == ["dog", "cat", "bird"]  # the labelling config's order, not sorted
    assert report.skipped["cancelled annotations left out"] == 1
    assert report.skipped["results of type textarea (not labels)"] == 1
    assert report.skipped["tasks without annotations (imported unlabelled)"] == 1
    s = by_stem(ds)
    a = s["a"]
    assert a.source["annotator"] == "b@example.org" and a.source["annotation"] == 12 and a.source["task"] == 1
    assert a.annotations is None  # only with --annotations all
    cat, bird = a.objects
    assert cat.polygon == [[[100.0, 50.0], [100.0, 70.0], [80.0, 70.0], [80.0, 50.0]]]
    assert cat.attributes == {"rotation": 90.0, "region_id": "r2", "choices": {"quality": ["sharp"]}}
    assert bird.polygon == [[[0.0, 0.0], [100.0, 0.0], [100.0, 50.0]]] and bird.attributes == {"region_id": "r3"}
    (pred,) = a.predictions
    assert (pred.model_version, pred.score, pred.source_id) == ("yolo-v3", 0.8, 5)
    assert pred.objects[0].bbox == [20.0, 20.0, 80.0, 60.0] and pred.objects[0].score == 0.9
    b = s["b"]
    assert b.label == "dog" and b.objects[0].keypoints == [[100.0, 50.0, 2]]
    assert s["c"].label == "cat" and s["c"].objects == []
    assert s["d"].label is None and s["d"].objects is None
    assert ds.task == "detection" and report.counts["predictions"] == 1


def test_all_annotations_keep_each_annotator(tmp_path: Path) -> None:
    ds, _ = import_dataset("labelstudio", write_golden(tmp_path / "src"), tmp_path / "ds", extra={"annotations": "all"})
    a = by_stem(ds)["a"]
    assert [(x.annotator, x.source_id, x.time) for x in a.annotations] == [
        ("1", 11, "2026-01-01T10:00:00Z"), ("b@example.org", 12, "2026-01-02T10:00:00.000000Z")]  # oldest first
    assert a.annotations[0].objects[0].bbox == [20.0, 20.0, 80.0, 60.0]
    assert [o.to_json() for o in a.objects] == [o.to_json() for o in a.annotations[1].objects]  # the newest
    assert load_dataset(ds.root).samples == ds.samples  # valid on disk, read back the same


def test_round_trip_label_studio_pipeline_label_studio(tmp_path: Path) -> None:
    """Labels, annotators, predictions, shapes and result ids survive LS -> pipeline -> LS -> pipeline."""
    first, _ = import_dataset("labelstudio", write_golden(tmp_path / "src"), tmp_path / "ds", extra={"annotations": "all"})
    _, report = export_dataset(first.root, "labelstudio", tmp_path / "out")
    assert not report.dropped, report.dropped
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text(encoding="utf-8"))
    task = next(t for t in tasks if t["data"]["sample_id"] == "a")
    assert [(x["id"], x.get("completed_by")) for x in task["annotations"]] == [(11, 1), (12, "b@example.org")]
    results = task["annotations"][1]["result"]
    assert [(r["id"], r["type"]) for r in results] == [("r2", "rectanglelabels"), ("r2", "choices"),
                                                       ("r3", "polygonlabels")]
    assert results[0]["value"] == {"x": 50.0, "y": 50.0, "width": 10.0, "height": 20.0, "rotation": 90.0,
                                   "rectanglelabels": ["cat"]}
    assert results[1]["from_name"] == "quality" and results[1]["value"] == {"choices": ["sharp"]}
    assert task["predictions"][0]["model_version"] == "yolo-v3" and task["predictions"][0]["result"][0]["score"] == 0.9
    assert all(r["original_width"] == W and r["original_height"] == H for r in results)
    config = (tmp_path / "out" / "label_config.xml").read_text(encoding="utf-8")
    assert '<Choices name="quality" toName="image" perRegion="true">' in config
    back, report = import_dataset("labelstudio", tmp_path / "out", tmp_path / "back", extra={"annotations": "all"})
    assert not report.problems, [str(p) for p in report.problems]
    assert back.classes == first.classes

    def labels(ds) -> dict:
        return {s.id: {k: v for k, v in s.to_json().items() if k in ("split", "label", "objects", "annotations",
                                                                      "predictions")} for s in ds.samples}

    assert labels(back) == labels(first)
    assert [s.id for s in back.samples] == [s.id for s in first.samples]  # ids kept through data.sample_id


def test_json_min(tmp_path: Path) -> None:
    src = write_golden(tmp_path / "src", config=False)
    (src / "project-1-at-2026-01-05.json").write_text(json.dumps(MIN), encoding="utf-8")
    ds, report = import_dataset("auto", src, tmp_path / "ds")
    assert not report.problems, [str(p) for p in report.problems]
    assert report.detected.startswith("labelstudio: Label Studio JSON JSON-MIN")
    assert ds.classes == ["dog", "cat", "bird"]  # first-seen order without a config
    s = by_stem(ds)
    assert s["a"].label == "cat" and s["a"].objects[0].bbox == [20.0, 20.0, 80.0, 60.0]
    assert s["a"].source["annotator"] == "b@example.org" and s["a"].source["annotation"] == 21
    assert s["b"].objects[0].polygon == [[[0.0, 0.0], [200.0, 0.0], [200.0, 100.0]]]
    assert s["b"].objects[1].keypoints == [[50.0, 75.0, 2]]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/data/upload/1/0a1b2c3d-dog.jpg", (None, ["0a1b2c3d-dog.jpg", "dog.jpg"])),  # as stored, then unhashed
        ("/data/upload/1/dog.jpg", (None, ["dog.jpg"])),  # no hash prefix
        ("/data/local-files/?d=photos/sub/dog.jpg", ("photos/sub/dog.jpg", ["dog.jpg"])),
        ("/data/local-files/?d=photos%2Fdög%201.jpg", ("photos/dög 1.jpg", ["dög 1.jpg"])),  # percent-encoded
        ("https://example.com/a/b/dog.jpg?X-Amz=1#f", (None, ["dog.jpg"])),
        ("http://example.com/a/d%C3%B6g.jpg", (None, ["dög.jpg"])),
        ("/dog.jpg", (None, ["dog.jpg"])),  # bare
        ("gs://bucket/x/dog.jpg", (None, ["dog.jpg"])),
        ("https://example.com/", (None, [])),  # no file name
    ],
)
def test_url_candidates(url: str, expected: tuple) -> None:
    assert ls.url_candidates(url) == expected


def test_rotated_rectangle_corners_invert() -> None:
    ring = ls.rect_corners(10.0, 20.0, 30.0, 40.0, 30.0)
    x, y, w, h, rot = ls.corners_to_rect(ring)
    assert [round(v, 9) for v in (x, y, w, h, rot)] == [10.0, 20.0, 30.0, 40.0, 30.0]
    assert ls.rect_corners(0.0, 0.0, 2.0, 1.0, 90.0)[2] == pytest.approx([-1.0, 2.0])  # clockwise, y down


def _task(tid: int, url: str, results: list | None = None) -> dict:
    return {"id": tid, "data": {"image": url}, "annotations": [{"id": tid * 10, "result": results or []}]}


def test_missing_ambiguous_and_escaping_images_are_problems_of_their_task(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "one").mkdir(parents=True)
    (src / "two").mkdir()
    (src / "one" / "twin.png").write_bytes(png(1))
    (src / "two" / "twin.png").write_bytes(png(2))
    (src / "ok.png").write_bytes(png(3))
    (tmp_path / "secret.png").write_bytes(png(4))
    (src / "link.png").symlink_to(tmp_path / "secret.png")
    doc = [_task(1, "/data/upload/1/ok.png"), _task(2, "/data/upload/1/twin.png"), _task(3, "/missing.png"),
           _task(4, "/data/local-files/?d=../secret.png"), _task(5, "/link.png")]
    (src / "tasks.json").write_text(json.dumps(doc))
    ds, report = import_dataset("labelstudio", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["ok"]
    msgs = sorted(str(p) for p in report.problems)
    assert msgs[0].startswith("tasks.json: task 2: [1].data.image: ambiguous image name")
    assert "twin.png" in msgs[0]
    assert msgs[1].startswith("tasks.json: task 3: [2].data.image: image not found") and "/missing.png" in msgs[1]
    assert msgs[2].startswith("tasks.json: task 4: [3].data.image: image not found")  # never outside
    assert msgs[3].startswith("tasks.json: task 5: [4].data.image: image not found")  # the link is never followed
    assert report.skipped["links pointing outside the import folder"] == 1
    assert any(w.startswith("link.png: a link to") for w in report.warnings), report.warnings


def test_images_folder_option(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "media" / "upload" / "1").mkdir(parents=True)
    (tmp_path / "media" / "upload" / "1" / "0a1b2c3d-a.png").write_bytes(png(1))  # as Label Studio stores it
    (tmp_path / "labels" / "export.json").write_text(json.dumps(
        [_task(1, "/data/upload/1/0a1b2c3d-a.png", [rect("r", "dog", 0, 0, 10, 10)])]))
    result = helpers.invoke("import", "labelstudio", tmp_path / "labels" / "export.json", "--images",
                            tmp_path / "media", "--out", tmp_path / "ds")
    assert result.exit_code == 0, result.output
    ds = load_dataset(tmp_path / "ds")
    assert ds.samples[0].objects[0].bbox == [0.0, 0.0, 20.0, 10.0]
    assert ds.info.lineage[-1]["params"]["images"] == str(tmp_path / "media")


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (rect("r", "dog", float("nan"), 0, 1, 1), "result[0].value.x: expected a finite number"),
        (rect("r", "dog", True, 0, 1, 1), "result[0].value.x: expected a finite number"),
        (rect("r", "dog", 0, 0, -1, 1), "negative size"),
        (rect("r", "dog", 90, 0, 50, 10), "box outside the image"),
        (rect("r", "x" * 300, 0, 0, 1, 1), "rectanglelabels[0]: expected a name of 1..256 characters"),
        (rect("r", "dog", 0, 0, 1, 1) | {"value": {"x": 0, "y": 0, "width": 1, "height": 1, "rectanglelabels": []}},
         "expected a non-empty list of names"),
        ({"id": "r", "type": "polygonlabels", "value": {"points": [[0, 0], [1, 1]], "polygonlabels": ["dog"]}},
         "value.points: expected 3..100000 [x, y] points"),
        ({"id": "r", "type": "brushlabels", "value": {"rle": [1, 2], "brushlabels": ["dog"]}},
         "result type not imported"),
        ({"id": "r", "type": "rectangle", "value": {"x": 0, "y": 0, "width": 1, "height": 1}},
         "a rectangle region without a class"),
        ({"id": "r", "type": "choices", "value": {"choices": ["dog", "cat"]}}, "several classes on one region or image"),
        ("text", "result[0]: expected a result object"),
    ],
)
def test_bad_results_name_task_and_field(tmp_path: Path, result: object, message: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png(1))
    (src / "b.png").write_bytes(png(2))
    (src / "tasks.json").write_text(json.dumps([_task(7, "/a.png", [result]), _task(8, "/b.png")]))
    ds, report = import_dataset("labelstudio", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["b"]  # the other task still imports
    (err,) = report.problems
    assert str(err).startswith("tasks.json: task 7: [0].annotations[0].result") and message in str(err), str(err)


def test_on_invalid_clip_and_skip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png(1))
    (src / "tasks.json").write_text(json.dumps([_task(1, "/a.png", [rect("r", "dog", 90, 0, 50, 10),
                                                                   rect("s", "cat", 0, 0, 10, 10)])]))
    ds, _ = import_dataset("labelstudio", src, tmp_path / "clip", on_invalid="clip")
    assert ds.samples[0].objects[0].bbox == [180.0, 0.0, 200.0, 10.0]
    ds, report = import_dataset("labelstudio", src, tmp_path / "skip", on_invalid="skip")
    assert [o.label for o in ds.samples[0].objects] == ["cat"] and sum(report.counts.values()) >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"data": {"image": "/a.png"}, "annotations": [}', "not valid JSON"),
        ('[{"data": {"image": "/a.png"}, "annotations": ' + "[" * 100_000, "not valid JSON|nested too deeply"),
        ('[{"data": {"image": "/a.png"}, "annotations": {}}]', "[0].annotations: expected a list"),
        ('[{"data": {"image": 3}, "annotations": []}]', "[0].data.image: expected an image URL"),
    ],
)
def test_malformed_documents_are_problems_never_crashes(tmp_path: Path, text: str, message: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png(1))
    (src / "bad.json").write_text(text)
    (src / "good.json").write_text(json.dumps([_task(1, "/a.png")]))
    ds, report = import_dataset("labelstudio", src, tmp_path / "ds")
    assert len(ds.samples) == 1
    assert any(re.search(message.replace("[", r"\[").replace("]", r"\]"), str(p)) for p in report.problems), [
        str(p) for p in report.problems]


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ls, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.json"
    path.write_text(json.dumps([_task(i, f"/{i}.png") for i in range(10)]))
    with pytest.raises(DataError, match="big.json: file too large: expected at most 100 bytes"):
        ls.load_document(str(path), "big.json")


def test_export_of_other_formats_counts_annotations_and_predictions(tmp_path: Path) -> None:
    first, _ = import_dataset("labelstudio", write_golden(tmp_path / "src"), tmp_path / "ds", extra={"annotations": "all"})
    _, report = export_dataset(first.root, "coco", tmp_path / "coco")
    assert report.dropped["per-annotator annotations (coco holds the sample's own labels only)"] == 5
    assert report.dropped["predictions (coco holds none)"] == 1


def test_split_keeps_annotations_and_predictions(tmp_path: Path) -> None:
    from pipeline.core.dataset import rewrite_samples
    from pipeline.split import split_dataset

    first, _ = import_dataset("labelstudio", write_golden(tmp_path / "src"), tmp_path / "ds", extra={"annotations": "all"})
    before = {s.id: (s.annotations, s.predictions) for s in first.samples}
    samples, _report = split_dataset(first, val=0.2, test=0.2, seed=0)
    rewrite_samples(first, samples, stage="split")
    after = load_dataset(first.root)
    assert {s.id: (s.annotations, s.predictions) for s in after.samples} == before
    assert all(s.split for s in after.samples)


def test_detect_own_export_beats_createml(tmp_path: Path) -> None:
    write_golden(tmp_path / "src")
    assert detect_format(tmp_path / "src")[0] == "labelstudio"


# -- fuzzing -------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_number = st.integers(-200, 200) | st.floats(-1e3, 1e3) | st.sampled_from([float("nan"), True, None, "1"])
_value = st.fixed_dictionaries({}, optional={
    "x": _number, "y": _number, "width": _number, "height": _number, "rotation": _number,
    "points": st.lists(st.lists(_number, max_size=3), max_size=5) | _json,
    "rectanglelabels": st.lists(st.text(max_size=5), max_size=2) | _json,
    "polygonlabels": st.lists(st.text(max_size=5), max_size=2),
    "keypointlabels": st.lists(st.text(max_size=5), max_size=2),
    "choices": st.lists(st.text(max_size=5), max_size=2) | _json,
    "labels": st.lists(st.text(max_size=5), max_size=2),
})
_result = st.fixed_dictionaries(
    {"type": st.sampled_from([*ls.REGION_TYPES, "choices", "labels", "textarea", "brushlabels"]) | _json},
    optional={"id": st.sampled_from(["a", "b", 1]) | _json, "parent_id": st.sampled_from(["a", "b"]),
              "value": _value | _json, "score": _number, "from_name": st.text(max_size=4) | _json},
) | _json


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results=st.lists(_result, max_size=6) | _json, on_invalid=st.sampled_from(["error", "clip", "skip"]))
def test_fuzzed_results_give_objects_or_a_data_error(tmp_path_factory, results, on_invalid: str) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    ctx = ImportContext(root, DatasetWriter(root / "out", task="detection", stage="test"),
                        ImportOptions(on_invalid=on_invalid), ImportReport())
    reader = ls.ResultReader(ctx, ls.Labels(ctx), (W, H))
    try:
        parsed = reader.read(results, "x.json", "result", scores=True)
    except DataError as err:
        assert str(err).startswith("x.json")
        return
    for o in parsed.objects:
        assert o.label and (o.bbox is not None or o.keypoints is not None)
        if o.bbox is not None:
            assert 0 <= o.bbox[0] <= o.bbox[2] <= W and 0 <= o.bbox[1] <= o.bbox[3] <= H


@settings(max_examples=200, deadline=None)
@given(doc=_json | st.lists(st.fixed_dictionaries({}, optional={
    "data": _json | st.fixed_dictionaries({"image": st.sampled_from(["/a.png", "/data/upload/1/x.png"]) | _json}),
    "annotations": _json, "predictions": _json, "id": _json, "annotator": _json, "annotation_id": _json,
    "image": _json}), max_size=4))
def test_fuzzed_documents_give_tasks_or_data_errors(doc) -> None:
    kind = ls.kind_of(doc)
    if kind is None:
        return
    for task in ls.tasks_of(doc, kind, "x.json"):
        assert isinstance(task, (ls.Task, DataError))


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_fuzzed_bytes_load_or_raise_data_error(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "x.json"
    path.write_bytes(data)
    try:
        ls.load_document(str(path), "x.json")
    except DataError as err:
        assert str(err).startswith("x.json")


def test_hostile_config_is_not_read(tmp_path: Path) -> None:
    """A labelling config with an entity is refused by defusedxml; the import goes on in first-seen order."""
    src = write_golden(tmp_path / "src", config=False)
    (src / "label_config.xml").write_text('<?xml version="1.0"?><!DOCTYPE v [<!ENTITY e "dog">]>'
                                          '<View><RectangleLabels><Label value="&e;"/></RectangleLabels></View>')
    ds, report = import_dataset("labelstudio", src, tmp_path / "ds")
    assert ds.classes == ["dog", "cat", "bird"]  # first seen, every annotation and prediction in file order
    assert any("label_config.xml: not read as a labelling config" in w for w in report.warnings)
    assert os.path.isfile(tmp_path / "ds" / "dataset.json")


def test_augment_keeps_reviews_on_originals_and_leaves_them_off_copies(tmp_path: Path) -> None:
    from pipeline.augment.stage import run_augment
    from pipeline.core.dataset import Annotation, Prediction, rewrite_samples

    root = helpers.make_detection_dataset(tmp_path / "det", n=3)
    ds = load_dataset(root)
    for s in ds.samples:
        s.annotations = [Annotation(annotator="1", objects=[o.copy() for o in s.objects], source_id=1)]
        s.predictions = [Prediction(model_version="m", score=0.5, objects=[o.copy() for o in s.objects])]
    rewrite_samples(ds, ds.samples, stage="test")
    recipe = Path(__file__).resolve().parents[2] / "configs" / "augment" / "detection.yaml"
    run_augment(root, recipe, tmp_path / "aug", copies=1, seed=0)
    out = load_dataset(tmp_path / "aug")
    originals = [s for s in out.samples if "~aug" not in s.id]
    copies = [s for s in out.samples if "~aug" in s.id]
    assert copies and all(s.annotations is None and s.predictions is None for s in copies)
    assert [(s.annotations, s.predictions) for s in originals] == [(s.annotations, s.predictions) for s in ds.samples]


def test_export_results_match_the_labelling_config(tmp_path: Path) -> None:
    """Every result names a control of label_config.xml of its kind, with a value that control lists:
    what Label Studio checks when it imports tasks into a project made with that config."""
    import defusedxml.ElementTree as DET

    first, _ = import_dataset("labelstudio", write_golden(tmp_path / "src"), tmp_path / "ds", extra={"annotations": "all"})
    export_dataset(first.root, "labelstudio", tmp_path / "out")
    config = DET.fromstring((tmp_path / "out" / "label_config.xml").read_bytes())
    assert config.tag == "View" and config.find("Image").get("name") == "image"
    controls = {el.get("name"): (el.tag, [c.get("value") for c in el]) for el in config if el.tag != "Image"}
    kinds = {"rectanglelabels": "RectangleLabels", "polygonlabels": "PolygonLabels",
             "keypointlabels": "KeyPointLabels", "choices": "Choices"}
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text(encoding="utf-8"))
    n = 0
    for task in tasks:
        assert task["data"]["image"].startswith("/data/local-files/?d=images/")
        assert (tmp_path / "out" / task["data"]["image"].split("?d=", 1)[1]).is_file()
        for entry in (*task["annotations"], *task.get("predictions", [])):
            for r in entry["result"]:
                tag, values = controls[r["from_name"]]
                assert tag == kinds[r["type"]] and r["to_name"] == "image"
                assert set(r["value"][r["type"]]) <= set(values), (r, values)
                n += 1
    assert n == 9  # a: 1 + 3 + 1 prediction, b: keypoint + choice, c: choice, e: rectangle


def test_a_classification_dataset_round_trips_as_choices(tmp_path: Path) -> None:
    src = helpers.make_classification_dataset(tmp_path / "cls", classes=3, per_class=2)
    export_dataset(src, "labelstudio", tmp_path / "out")
    config = (tmp_path / "out" / "label_config.xml").read_text(encoding="utf-8")
    assert "<Choices name=\"choice\"" in config and "RectangleLabels" not in config
    back, report = import_dataset("labelstudio", tmp_path / "out", tmp_path / "back")
    assert not report.problems and back.task == "classification"
    want = load_dataset(src)
    assert back.classes == want.classes
    assert {s.id: (s.label, s.split) for s in back.samples} == {s.id: (s.label, s.split) for s in want.samples}


def test_classes_file_overrides_the_config(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("bird\ncat\ndog\n")
    ds, _ = import_dataset("labelstudio", write_golden(tmp_path / "src"), tmp_path / "ds",
                           classes_file=tmp_path / "classes.txt")
    assert ds.classes == ["bird", "cat", "dog"]


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ((4, 10), [0.0, 0.0, 2.0, 5.0]),  # declared upright (as Label Studio shows it): kept
        ((10, 4), [2.0, 0.0, 4.0, 5.0]),  # declared raw: turned into the stored upright frame
    ],
)
def test_exif_rotated_photos(tmp_path: Path, declared: tuple[int, int], expected: list[float]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "p.jpg").write_bytes(helpers.jpeg(10, 4, orientation=6))  # 10x4 stored, 4x10 upright
    box = rect("r", "dog", 0, 0, 50, 50) | {"original_width": declared[0], "original_height": declared[1]}
    (src / "t.json").write_text(json.dumps([{"id": 1, "data": {"image": "/p.jpg"},
                                             "annotations": [{"id": 1, "result": [box]}],
                                             "predictions": [{"result": [box]}]}]))
    ds, _ = import_dataset("labelstudio", src, tmp_path / "ds", extra={"annotations": "all"})
    (s,) = ds.samples
    assert (s.width, s.height) == (4, 10)
    assert s.objects[0].bbox == expected
    assert s.annotations[0].objects[0].bbox == expected and s.predictions[0].objects[0].bbox == expected


_annotation = st.fixed_dictionaries({}, optional={
    "id": _json, "completed_by": _json, "was_cancelled": st.booleans() | _json,
    "updated_at": st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", ""]) | _json, "created_at": _json,
    "result": st.lists(_result, max_size=4) | _json, "score": _number, "model_version": _json,
})
_task_doc = st.fixed_dictionaries({}, optional={
    "id": _json,
    "data": st.fixed_dictionaries({"image": st.sampled_from(
        ["/a.png", "/data/upload/1/0a1b2c3d-a.png", "/data/local-files/?d=../a.png", "/data/local-files/?d=a.png",
         "http://x/a.png?q", "/b.png"]) | _json}, optional={"split": _json, "sample_id": _json}) | _json,
    "annotations": st.lists(_annotation, max_size=3) | _json,
    "predictions": st.lists(_annotation, max_size=2) | _json,
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.lists(_task_doc, min_size=1, max_size=3), mode=st.sampled_from(["newest", "all"]))
def test_fuzzed_exports_import_or_report_problems(tmp_path_factory, doc, mode: str) -> None:
    """Whole documents through `read`: samples, or problems naming the file; never another exception."""
    src = tmp_path_factory.mktemp("src")
    (src / "a.png").write_bytes(png(1))
    (src / "t.json").write_text('[{"data": {}, "annotations": []}, ' + json.dumps(doc)[1:])
    out = tmp_path_factory.mktemp("out") / "ds"
    report = ImportReport()
    with DatasetWriter(out, task="detection", stage="test") as writer:
        ls.read(src, ImportContext(src, writer, ImportOptions(extra={"annotations": mode}), report))
        n = len(writer.samples)
        if n:
            writer.commit()
    assert all(str(p).startswith("t.json") for p in report.problems), [str(p) for p in report.problems]
    if n:
        assert len(load_dataset(out).samples) == n  # what was added is a valid dataset


@pytest.mark.parametrize(
    ("times", "newest"),
    [
        (["2026-01-01T10:00:00Z", "2026-01-02T09:00:00+02:00"], 1),
        (["2026-01-02T10:00:00.123456Z", "2026-01-02T10:00:00Z"], 0),  # fractions of a second count
        (["0001-01-01T00:00:00", "2026-01-01T00:00:00Z"], 1),  # out of a timestamp's range: still ordered, no crash
        (["not a time", None], 0),  # a time that is not ISO 8601 beats none; ties go to the later annotation
        ([None, None], 1),
    ],
)
def test_the_newest_annotation_is_chosen_by_time(tmp_path: Path, times: list, newest: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png(1))
    anns = [{"id": i, "updated_at": t, "result": [rect(f"r{i}", ["dog", "cat"][i], 0, 0, 10, 10)]}
            for i, t in enumerate(times)]
    (src / "t.json").write_text(json.dumps([{"id": 1, "data": {"image": "/a.png"}, "annotations": anns}]))
    ds, report = import_dataset("labelstudio", src, tmp_path / "ds")
    assert not report.problems and ds.samples[0].source["annotation"] == newest


def test_an_earlier_import_inside_src_is_not_searched_for_images(tmp_path: Path) -> None:
    src = write_golden(tmp_path / "src")
    import_dataset("labelstudio", src, src / "ds")  # its images/ holds a.png, b.png, ... again
    ds, report = import_dataset("labelstudio", src, src / "ds", overwrite=True)
    assert not report.problems, [str(p) for p in report.problems]
    assert len(ds.samples) == 5


def test_predictions_listed_by_id_as_the_server_exports_them(tmp_path: Path) -> None:
    # Label Studio 1.23's project export (GET /api/projects/N/export) lists a task's predictions by
    # id; the prediction an annotation started from sits in that annotation's "prediction" key.
    (tmp_path / "a.png").write_bytes(png(1))
    doc = [{"id": 1, "data": {"image": "/data/local-files/?d=a.png", "sample_id": "train-00001"},
            "annotations": [{"id": 2, "completed_by": 1, "result": [
                {"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": ["7"]}}],
                "prediction": {"id": 2, "model_version": "run@abc", "score": 0.4, "result": []}}],
            "predictions": [2]}]
    (tmp_path / "export.json").write_text(json.dumps(doc))
    ds, report = import_dataset("labelstudio", tmp_path / "export.json", tmp_path / "out")
    (s,) = ds.samples
    assert s.id == "train-00001" and s.label == "7" and s.predictions is None
    assert report.counts["predictions listed by id only (not in the export)"] == 1 and not report.problems


def test_json_min_rows_keep_our_sample_id_and_split(tmp_path: Path) -> None:
    # JSON-MIN puts a task's data keys at the top of its row: data.sample_id and data.split of the
    # tasks export and prelabel write are read back, never taken for a control's choice.
    (tmp_path / "a.png").write_bytes(png(1))
    rows = [{"image": "/data/local-files/?d=a.png", "sample_id": "train-00001", "split": "val", "id": 1,
             "choice": "7", "annotator": 1, "annotation_id": 2, "created_at": "2026-12-06T22:00:00Z",
             "updated_at": "2026-12-06T22:00:00Z", "lead_time": 1.5}]
    (tmp_path / "min.json").write_text(json.dumps(rows))
    ds, report = import_dataset("labelstudio", tmp_path / "min.json", tmp_path / "out")
    (s,) = ds.samples
    assert (s.id, s.label, s.split) == ("train-00001", "7", "val") and ds.classes == ["7"]
