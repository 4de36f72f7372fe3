"""The dataset model: objects and samples as JSON, deep copies, images of a dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.dataset import Obj, Sample, dumps_sample, load_dataset
from pipeline.core.dataset.model import Annotation, Dataset, DatasetInfo, Prediction
from pipeline.core.errors import DataError
from tests.helpers import make_classification_dataset


def test_obj_copy_is_deep_and_equal():
    o = Obj(label="a", bbox=[1.0, 2.0, 3.0, 4.0], polygon=[[[1.0, 2.0], [3.0, 2.0], [3.0, 4.0]]],
            keypoints=[[1.0, 1.0, 2]], polyline=[[0.0, 0.0], [1.0, 1.0]], mask={"size": [2, 2], "counts": [1, 2, 1]},
            weight=0.5, attributes={"difficult": True, "tags": ["x"]})
    c = o.copy()
    assert c.to_json() == o.to_json()
    c.bbox[0] = 9
    c.polygon[0][0][0] = 9
    c.keypoints[0][0] = 9
    c.polyline[0][0] = 9
    c.mask["counts"][0] = 9
    c.attributes["tags"].append("y")
    assert o.to_json() == Obj(label="a", bbox=[1.0, 2.0, 3.0, 4.0], polygon=[[[1.0, 2.0], [3.0, 2.0], [3.0, 4.0]]],
                              keypoints=[[1.0, 1.0, 2]], polyline=[[0.0, 0.0], [1.0, 1.0]],
                              mask={"size": [2, 2], "counts": [1, 2, 1]}, weight=0.5,
                              attributes={"difficult": True, "tags": ["x"]}).to_json()


def test_sample_json_keeps_its_key_order_and_round_trips() -> None:
    sample = Sample(id="a", image="images/a.png", width=3, height=4, sha256="0" * 64, split="train", label="x",
                    objects=[Obj(label="x", bbox=[0.0, 0.0, 1.0, 1.0])], meta={"m": 1},
                    pack={"file": "images/packs/p.zip", "offset": 0, "length": 5})
    data = sample.to_json()
    assert list(data) == ["id", "image", "pack", "width", "height", "sha256", "split", "label", "objects", "meta"]
    assert list(sample.body_json()) == list(data)[3:]  # the body: every field after id, image and pack
    assert Sample.from_json(data) == sample
    sample.pack = None
    assert list(sample.to_json())[:3] == ["id", "image", "width"]


def test_dataset_reads_its_images_and_names_missing_ones(tmp_path: Path) -> None:
    ds = load_dataset(make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None))
    first = ds.samples[0]
    assert ds.read_image_bytes(first) == ds.image_path(first).read_bytes()
    assert ds.image_where(first) == str(ds.root / first.image) and len(ds) == 4
    assert ds.splits() == {None: 4} and ds.split(None) == ds.samples and ds.split("train") == []
    ds.image_path(first).unlink()
    with pytest.raises(DataError, match="image missing"):
        ds.read_image_bytes(first)
    packed = Dataset(root=tmp_path, info=DatasetInfo(task="classification", classes=[]),
                     samples=[Sample(id="p", pack={"file": "images/packs/p.zip", "offset": 7, "length": 1})])
    assert packed.image_where(packed.samples[0]) == f"{tmp_path / 'images/packs/p.zip'}:7"


def test_every_name_the_code_base_imports_is_in_the_package() -> None:
    """`from pipeline.core.dataset import X` keeps working for every name the modules split out."""
    import pipeline.core.dataset as package
    from pipeline.core.dataset import io, lines, model, validation, writer

    for module in (io, lines, model, validation, writer):
        public = {n for n in vars(module) if not n.startswith("_") and getattr(vars(module)[n], "__module__", None)
                  == module.__name__}
        assert public <= set(package.__all__), (module.__name__, public - set(package.__all__))
    assert all(getattr(package, n) is not None for n in package.__all__)
def _reviewed() -> Sample:
    return Sample(
        id="r", image="images/r.png", width=10, height=10, sha256="0" * 64, label=None,
        objects=[Obj(label="cat", bbox=[1.0, 1.0, 5.0, 5.0])],
        annotations=[Annotation(annotator="ann@example.org", objects=[Obj(label="cat", bbox=[1.0, 1.0, 5.0, 5.0])],
                                time="2026-01-02T03:04:05Z", source_id=7),
                     Annotation(annotator="12", label="dog", time=None, source_id="a-8")],
        predictions=[Prediction(model_version="v1", score=0.5,
                                objects=[Obj(label="bird", bbox=[0.0, 0.0, 2.0, 2.0], score=0.25)])],
        source={"file": "tasks.json"})


def test_annotations_and_predictions_round_trip_after_the_objects() -> None:
    sample = _reviewed()
    data = sample.to_json()
    assert list(data) == ["id", "image", "width", "height", "sha256", "split", "label", "objects", "annotations",
                          "predictions", "source"]
    assert data["annotations"][1] == {"annotator": "12", "label": "dog", "source_id": "a-8"}  # None left out
    assert data["predictions"][0]["objects"][0] == {"label": "bird", "bbox": [0.0, 0.0, 2.0, 2.0], "score": 0.25}
    assert Sample.from_json(data) == sample
    assert sample.labels() == {"cat", "dog", "bird"}  # every class it refers to, reviews included


def test_a_sample_without_reviews_keeps_its_old_json() -> None:
    """Datasets written before annotations/predictions existed render to the same bytes."""
    plain = Sample(id="p", image="images/p.png", width=1, height=1, sha256="0" * 64, label="x",
                   objects=[Obj(label="x", bbox=[0.0, 0.0, 1.0, 1.0], weight=0.5)])
    assert dumps_sample(plain) == ('{"id":"p","image":"images/p.png","width":1,"height":1,"sha256":"' + "0" * 64
                                   + '","split":null,"label":"x","objects":[{"label":"x","bbox":[0.0,0.0,1.0,1.0],'
                                   '"weight":0.5}]}')
    assert Obj(label="x", bbox=[0.0, 0.0, 1.0, 1.0], score=0.9).copy().score == 0.9


@pytest.mark.parametrize(
    ("classes", "known", "expected"),
    [
        (["a", "b"], None, None),  # nothing known: positions (no class_ids recorded)
        (["a", "b"], {"a": 1, "b": 3}, {"a": 1, "b": 3}),  # ids kept, gaps and all
        (["b", "a"], {"a": 0, "b": 9}, {"b": 9, "a": 0}),  # in class order, any id order
        (["a", "new"], {"a": 4, "gone": 7}, {"a": 4, "new": 5}),  # a class without one: after the largest
    ],
)
def test_class_ids_for(classes: list[str], known: dict | None, expected: dict | None) -> None:
    from pipeline.core.dataset import class_ids_for

    assert class_ids_for(classes, known) == expected
