"""Exports recognised but not read (Roboflow multi-label CSV, VoTT): refused by name, never
imported as an ImageFolder of split folders or as background images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import UsageError
from pipeline.formats import unsupported
from pipeline.formats.ingest import import_dataset
from tests.helpers import invoke, png


def _roboflow_multilabel(root: Path) -> Path:
    for split in ("train", "valid"):
        folder = root / split
        folder.mkdir(parents=True)
        rows = []
        for i in range(3):
            name = f"img{i}_jpg.rf.{split}{i}.jpg"
            (folder / name).write_bytes(png(color=(i * 40, 10, 10)))
            rows.append(f"{name},{i % 2},{1 - i % 2}\n")
        (folder / "_classes.csv").write_text("filename, cat, dog\n" + "".join(rows))
    return root


def _vott_json(root: Path) -> Path:
    folder = root / "vott-json-export"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(png())
    doc = {"name": "p", "securityToken": "p Token", "tags": [{"name": "cat", "color": "#5db300"}],
           "assets": {"abc": {"asset": {"name": "a.jpg", "size": {"width": 64, "height": 48}},
                              "regions": [{"type": "RECTANGLE", "tags": ["cat"],
                                           "boundingBox": {"height": 10, "width": 10, "left": 1, "top": 2}}]}},
           "version": "2.2.0"}
    (folder / "p-export.json").write_text(json.dumps(doc))
    return root


def _vott_csv(root: Path) -> Path:
    folder = root / "vott-csv-export"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(png())
    (folder / "p-export.csv").write_text('"image","xmin","ymin","xmax","ymax","label"\n"a.jpg",1,2,11,12,"cat"\n')
    return root


@pytest.mark.parametrize(("make", "what"), [
    (_roboflow_multilabel, "train/_classes.csv: a Roboflow multi-label classification CSV"),
    (_vott_json, "vott-json-export/p-export.json: a VoTT JSON export"),
    (_vott_csv, "vott-csv-export/p-export.csv: a VoTT CSV export"),
])
@pytest.mark.parametrize("fmt", ["auto", "imagefolder", "yolo"])
def test_refused_by_name_whatever_the_format(tmp_path: Path, make, what: str, fmt: str) -> None:
    src = make(tmp_path / "src")
    with pytest.raises(UsageError, match=what):
        import_dataset(fmt, src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_command_refuses_with_one_line_and_exit_2(tmp_path: Path) -> None:
    src = _roboflow_multilabel(tmp_path / "src")
    result = invoke("import", "auto", src, "--out", tmp_path / "ds")
    assert result.exit_code == 2
    assert "Roboflow multi-label classification CSV" in result.output and "Traceback" not in result.output


def test_detect_names_the_refusal_instead_of_an_import_auto_choice(tmp_path: Path) -> None:
    src = _roboflow_multilabel(tmp_path / "src")
    result = invoke("detect", src)
    assert "refused: train/_classes.csv: a Roboflow multi-label classification CSV" in result.output
    data = json.loads(invoke("detect", src, "--json").output)
    assert data["auto"] is None  # `import auto` refuses it


def test_vott_project_file_and_a_single_export_file(tmp_path: Path) -> None:
    (tmp_path / "p.vott").write_text("{}")
    assert unsupported.refusal(tmp_path / "p.vott").startswith("p.vott: a VoTT project")
    _vott_json(tmp_path / "j")
    assert "VoTT JSON export" in unsupported.refusal(tmp_path / "j" / "vott-json-export" / "p-export.json")


@pytest.mark.parametrize("text", [
    "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,64,48,cat,1,2,3,4\n",  # Roboflow's detection CSV
    "filename, cat, dog\n",  # a header without rows
    "image,label\na.jpg,cat\n",
])
def test_other_csvs_are_not_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "_classes.csv").write_text(text)
    (tmp_path / "data-export.csv").write_text(text)
    assert unsupported.refusal(tmp_path) is None


def test_other_json_named_export_is_not_refused(tmp_path: Path) -> None:
    (tmp_path / "my-export.json").write_text(json.dumps({"assets": {"a": 1}, "name": "x"}))
    assert unsupported.refusal(tmp_path) is None


def test_only_the_top_of_the_tree_is_looked_at(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "p.vott").write_text("{}")
    assert unsupported.refusal(tmp_path) is None
    assert unsupported.refusal(tmp_path / "a") is not None


def test_a_link_out_of_the_tree_is_not_read(tmp_path: Path) -> None:
    outside = _vott_csv(tmp_path / "outside") / "vott-csv-export" / "p-export.csv"
    src = tmp_path / "src"
    src.mkdir()
    (src / "p-export.csv").symlink_to(outside)
    assert unsupported.refusal(src) is None


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_fuzzed_heads_never_raise(data: bytes) -> None:
    for judge in (unsupported.roboflow_multilabel, unsupported.vott_json, unsupported.vott_csv):
        assert judge(data) in (True, False)
