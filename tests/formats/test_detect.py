"""Which formats a folder holds: every format alone, mixed folders (refused by `--format auto`
with the candidates), the reasons of rejected formats, and labelme's real examples with its own
VOC and COCO exports beside the JSONs."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import formats
from pipeline.core.dataset import load_dataset
from pipeline.core.errors import UsageError
from pipeline.formats.detect import Candidate, choose, rivals, survey
from pipeline.formats.ingest import export_dataset, import_dataset
from tests.formats.contract import BOXES, SPLITS, make_source
from tests.helpers import shared_data

DETECTED = [n for n in formats.FORMATS if not getattr(importlib.import_module(formats.FORMATS[n]), "NAMED_ONLY", False)]


def test_every_format_says_what_it_looks_for() -> None:
    for name, module_name in formats.FORMATS.items():
        module = importlib.import_module(module_name)
        assert isinstance(getattr(module, "LOOKS_FOR", None), str) and module.LOOKS_FOR, name


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "ds", {BOXES, SPLITS}).root


@pytest.mark.parametrize("fmt", [n for n in DETECTED if n != "imagefolder"])
def test_each_format_alone_is_the_one_candidate_with_files(tmp_path: Path, source: Path, fmt: str) -> None:
    export_dataset(source, fmt, tmp_path / "out")
    candidates = survey(tmp_path / "out")
    best = candidates[0]
    assert best.accepted and best.format == fmt and best.files, candidates
    assert not rivals(candidates) and choose(tmp_path / "out")[0] == fmt
    for c in candidates:
        assert c.description  # accepted: what was found; rejected: why not
        assert all(not f.startswith("/") and ".." not in f.split("/") for f in c.files)
    assert [c.format for c in candidates if not c.accepted]  # the others are listed with their reasons


def test_an_imagefolder_tree_is_the_one_candidate(tmp_path: Path) -> None:
    from tests.helpers import make_classification_dataset

    ds = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2)
    export_dataset(ds, "imagefolder", tmp_path / "out")
    assert choose(tmp_path / "out")[0] == "imagefolder"


def _mixed(tmp_path: Path, source: Path) -> Path:
    """labelme JSONs beside their images, and one COCO file among them (a labelme2coco output)."""
    export_dataset(source, "labelme", tmp_path / "labelme")
    export_dataset(source, "coco", tmp_path / "coco")
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "labelme", mixed)
    coco_file = next((tmp_path / "coco").rglob("*.json"))
    shutil.copy(coco_file, mixed / "annotations.json")
    return mixed


def test_a_mixed_folder_is_refused_with_its_candidates(tmp_path: Path, source: Path) -> None:
    mixed = _mixed(tmp_path, source)
    candidates = survey(mixed)
    by_name = {c.format: c for c in candidates}
    assert by_name["coco"].accepted and by_name["coco"].files == ["annotations.json"]
    assert by_name["labelme"].accepted and "annotations.json" not in by_name["labelme"].files
    assert len(by_name["labelme"].files) == sum(1 for _ in mixed.rglob("*.json")) - 1
    assert [c.format for c in rivals(candidates)] == ["labelme"]  # (coco scores higher)
    with pytest.raises(UsageError, match=r"2 formats each cover a part of this folder \(coco: .*\[annotations.json\]; "
                                         r"labelme: .*\).*Fix: name the format"):
        import_dataset("auto", mixed, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    ds, report = import_dataset("labelme", mixed, tmp_path / "ds")  # named: the labelme files, the COCO file skipped
    assert len(ds.samples) == len(by_name["labelme"].files) and sum(report.skipped.values()) >= 1


def test_a_format_that_says_no_gives_its_reason(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text("<annotation><object><name>x</name><polygon><pt><x>1</x><y>2</y></pt>"
                                    "</polygon></object></annotation>")
    candidates = {c.format: c for c in survey(tmp_path)}
    assert not candidates["voc"].accepted and "MIT LabelMe XML" in candidates["voc"].description
    assert candidates["coco"].description.startswith("no JSON file with")
    with pytest.raises(UsageError, match=r"no known layout found \(tried [a-z, ]+\); .*voc: .*MIT LabelMe XML"):
        choose(tmp_path)


def test_candidate_lines_name_a_few_files() -> None:
    c = Candidate("voc", True, "Pascal VOC XML: 5 .xml files", 60, [f"{i}.xml" for i in range(5)])
    assert c.line() == "voc: Pascal VOC XML: 5 .xml files [0.xml, 1.xml, 2.xml, ...]"
    assert Candidate("yolo", False, "no labels found").line() == "yolo: no labels found"


def test_labelme_examples_with_labelmes_own_exports_beside_them(tmp_path: Path) -> None:
    """labelme's examples hold the JSONs in data_annotated/ and labelme's own VOC and COCO exports
    of them in data_dataset_voc/ and data_dataset_coco/: each format covers its own files, so
    `auto` refuses and names all three; each folder alone is its one format."""
    root = shared_data("labelme-examples")
    candidates = {c.format: c for c in survey(root) if c.accepted}
    assert {"labelme", "coco", "voc"} <= set(candidates)
    assert len(candidates["labelme"].files) == 18 and not any("data_dataset_" in f for f in candidates["labelme"].files)
    assert all("data_dataset_voc/" in f for f in candidates["voc"].files)
    with pytest.raises(UsageError, match="formats each cover a part of this folder"):
        choose(root)
    seg = root / "instance_segmentation"
    assert choose(seg / "data_annotated")[0] == "labelme"
    assert choose(seg / "data_dataset_coco")[0] == "coco"
    assert choose(root / "bbox_detection" / "data_dataset_voc")[0] == "voc"


@pytest.mark.parametrize("fmt", [n for n in DETECTED if n != "imagefolder"])
def test_counts_of_each_format_alone(tmp_path: Path, source: Path, fmt: str) -> None:
    from pipeline.core.dataset import load_dataset

    export_dataset(source, fmt, tmp_path / "out")
    best = survey(tmp_path / "out", count=True)[0]
    ds = load_dataset(source)
    assert best.format == fmt and best.counts["images"] == len(ds.samples), best
    objects = sum(len(s.objects or []) for s in ds.samples)
    if fmt != "labelstudio":  # (tasks only: objects and classes need the import)
        assert best.counts.get("objects", best.counts.get("shapes")) == objects
        assert best.counts["classes"] == len({o.label for s in ds.samples for o in s.objects or []})


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("raccoon-voc",), ("voc", {"images": 200, "objects": 217, "classes": 1})),
        (("cvat-street",), ("cvat", {"images": 12, "objects": 125, "classes": 5})),
        (("labelme-examples", "instance_segmentation", "data_dataset_coco"),
         ("coco", {"images": 3, "objects": 12, "classes": 21})),  # (labelme2coco lists its 21 VOC names)
    ],
)
def test_counts_of_real_exports(parts: tuple[str, ...], expected: tuple[str, dict]) -> None:
    best = survey(shared_data(*parts), count=True)[0]
    assert (best.format, best.counts) == expected


def test_a_recognised_file_that_does_not_parse_is_not_counted_and_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"images": [1, 2], "annotations": [')  # cut short
    best = survey(tmp_path, count=True)[0]
    assert best.format == "coco" and best.counts == {} and best.note.startswith("not counted: JSONDecodeError")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["images", "annotations", "categories", "shapes", "name", "label", "data",
                                          "image"]), inner, max_size=4), max_leaves=10)


@settings(max_examples=120, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_JSON, head=st.sampled_from([b"", b'{"images": [], "annotations": [], ', b'[{"data": {}, "annotations": ']),
       cut=st.integers(0, 40))
def test_fuzzed_files_are_surveyed_without_a_crash(tmp_path: Path, doc: object, head: bytes, cut: int) -> None:
    import json

    for old in tmp_path.iterdir():
        old.unlink()
    body = json.dumps(doc).encode()
    (tmp_path / "a.json").write_bytes(head + body[: len(body) - cut] if head else body)
    (tmp_path / "b.xml").write_bytes(b"<annotations><version>1.1</version><image name='x'><box label='a'/>"[:cut + 20])
    for c in survey(tmp_path, count=True):
        assert all(isinstance(n, int) and n >= 0 for n in c.counts.values())
        assert c.counts or c.note is None or c.note.startswith("not counted")


# -- a labels-only SRC with its images elsewhere (--images DIR) -----------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _labels_only(tmp_path: Path, source: Path, fmt: str, drop: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """`fmt`'s export of `source` with every image moved to a separate media folder (and the files
    named in `drop` removed): (the labels folder, the media folder)."""
    export_dataset(source, fmt, tmp_path / "out")
    labels, media = tmp_path / "out", tmp_path / "media"
    media.mkdir()
    for p in sorted(labels.rglob("*")):
        if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES):
            p.rename(media / p.name)
        elif p.is_file() and p.name in drop:
            p.unlink()
    return labels, media


@pytest.mark.parametrize(("fmt", "drop"), [
    ("yolo", ("data.yaml",)),  # txt files and obj.names alone
    ("yolo", ("data.yaml", "obj.names")),  # txt files alone: ids as class names
    ("voc", ()),  # VOC XMLs alone
    ("coco", ()),  # the COCO JSON alone
])
def test_a_labels_only_folder_is_detected_and_imported_with_images(tmp_path: Path, source: Path, fmt: str,
                                                                    drop: tuple[str, ...]) -> None:
    labels, media = _labels_only(tmp_path, source, fmt, drop)
    if fmt == "yolo" and "obj.names" not in drop:  # (the export names its classes in data.yaml)
        (labels / "obj.names").write_text("cat\ndog\n")
    assert not any(p.suffix.lower() in IMAGE_SUFFIXES for p in labels.rglob("*"))
    want = load_dataset(source)
    best = survey(labels, count=True, images=media)[0]
    assert best.accepted and best.format == fmt, best
    assert best.counts["images"] == len(want.samples), best.counts  # (YOLO counts the images under --images)
    assert choose(labels, images=media)[0] == fmt
    ds, report = import_dataset("auto", labels, tmp_path / "ds", images=media)
    assert report.detected.startswith(fmt) and not report.problems, [str(p) for p in report.problems]
    assert len(ds.samples) == len(want.samples)
    assert sum(len(s.objects or []) for s in ds.samples) == sum(len(s.objects or []) for s in want.samples)
    if fmt != "yolo" or "obj.names" not in drop:
        assert ds.classes == want.classes


def test_a_yolo_labels_folder_without_images_is_not_yolo_without_the_images_option(tmp_path: Path,
                                                                                     source: Path) -> None:
    labels, media = _labels_only(tmp_path, source, "yolo", ("data.yaml",))
    (labels / "obj.names").write_text("cat\ndog\n")
    assert not any(c.accepted for c in survey(labels))  # no image beside any label: nothing to pair
    with pytest.raises(UsageError, match="no known layout found"):
        choose(labels)
    assert choose(labels, images=media)[0] == "yolo"


def test_detect_command_takes_the_images_folder(tmp_path: Path, source: Path, capsys) -> None:
    import json

    from tests.helpers import run_cli

    labels, media = _labels_only(tmp_path, source, "yolo", ("data.yaml",))
    (labels / "obj.names").write_text("cat\ndog\n")
    assert run_cli(["detect", str(labels), "--images", str(media), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["auto"] == "yolo" and out["candidates"][0]["counts"]["images"] == len(load_dataset(source).samples)
    assert run_cli(["detect", str(labels), "--json"]) == 2  # without it: no layout
    capsys.readouterr()
    assert run_cli(["detect", str(labels), "--images", str(tmp_path / "nowhere")]) == 2
    assert "--images" in capsys.readouterr().err
