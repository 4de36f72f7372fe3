"""`pipeline import` and `pipeline export` on the command line: detection, summaries, refusals
(exit 2, one line) and a round trip through a format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from pipeline.core.dataset import load_dataset
from tests.helpers import invoke, make_detection_dataset

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PIPELINE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_folder_in_no_known_layout_is_exit_2(tmp_path) -> None:
    folder = tmp_path / "mess"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing to import here")
    line = _one_error_line(_run("import", "auto", str(folder), "--out", str(tmp_path / "ds")))
    assert "no known layout" in line and "Fix:" in line
    line = _one_error_line(_run("import", "imagefolder", str(folder), "--out", str(tmp_path / "ds")))
    assert "not an ImageFolder tree" in line
    assert not (tmp_path / "ds").exists()


def test_export_then_import_auto_round_trips_with_summaries(tmp_path) -> None:
    src = make_detection_dataset(tmp_path / "det", n=4)
    exported = invoke("export", src, "--format", "yolo", "--out", tmp_path / "yolo")
    assert exported.exit_code == 0, exported.output
    assert "exported 4 samples as yolo" in exported.output and str(tmp_path / "yolo") in exported.output
    imported = invoke("import", "auto", tmp_path / "yolo", "--out", tmp_path / "back")
    assert imported.exit_code == 0, imported.output
    assert "imported 4 samples" in imported.output
    back = load_dataset(tmp_path / "back")
    assert back.classes == ["red", "green"] and len(back.samples) == 4  # the source's order, through data.yaml
    assert Counter(o.label for s in back.samples for o in s.objects) == Counter(red=4, green=4)
    assert back.splits() == {"train": 2, "val": 2}


def test_export_replaces_only_an_earlier_export_and_only_with_overwrite(tmp_path, main) -> None:
    src = make_detection_dataset(tmp_path / "det", n=2)
    out = tmp_path / "voc"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for extra in ((), ("--overwrite",)):  # someone else's folder: refused, with or without --overwrite
        proc = main("export", src, "--format", "voc", "--out", out, *extra)
        assert proc.returncode == 2 and "files no pipeline stage wrote" in proc.stderr
        assert (out / "keep.txt").read_text() == "mine"
    other = tmp_path / "voc2"
    assert main("export", src, "--format", "voc", "--out", other).returncode == 0
    proc = main("export", src, "--format", "voc", "--out", other)
    assert proc.returncode == 2 and "already holds a pipeline export" in proc.stderr and "--overwrite" in proc.stderr
    assert main("export", src, "--format", "coco", "--out", other, "--overwrite").returncode == 0
    assert json.loads((other / ".pipeline-export").read_text())["format"] == "coco"


def test_export_never_overwrites_a_dataset(tmp_path, main) -> None:
    src = make_detection_dataset(tmp_path / "det", n=2)
    other = make_detection_dataset(tmp_path / "other", n=2)
    proc = main("export", src, "--format", "coco", "--out", other, "--overwrite")
    assert proc.returncode == 2 and "holds a pipeline dataset" in proc.stderr
    assert len(load_dataset(other).samples) == 2


def test_unknown_format_and_bad_map_are_usage_errors(tmp_path) -> None:
    result = invoke("import", "pascal", tmp_path, "--out", tmp_path / "ds")
    assert result.exit_code == 2 and "Invalid value for 'FORMAT'" in result.output
    result = invoke("export", tmp_path, "--format", "auto", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "Invalid value for '--format'" in result.output


def test_import_summary_shows_the_source_class_ids(tmp_path) -> None:
    import json

    from tests.helpers import png

    src = tmp_path / "coco"
    src.mkdir()
    (src / "a.png").write_bytes(png())
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}],
           "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}]}
    (src / "instances.json").write_text(json.dumps(doc))
    imported = invoke("import", "coco", src, "--out", tmp_path / "ds")
    assert imported.exit_code == 0, imported.output
    assert "class ids (the source's)" in imported.output and "car=3, person=1" in imported.output
    assert load_dataset(tmp_path / "ds").classes == ["car", "person"]


def test_export_writes_the_source_ids_or_positions(tmp_path) -> None:
    import json

    from tests.helpers import png

    src = tmp_path / "coco"
    src.mkdir()
    (src / "a.png").write_bytes(png())
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 1, 5, 5]}],
           "categories": [{"id": 5, "name": "car"}]}
    (src / "instances.json").write_text(json.dumps(doc))
    assert invoke("import", "coco", src, "--out", tmp_path / "ds").exit_code == 0
    for ids, expected in (("source", 5), ("positions", 1)):
        result = invoke("export", tmp_path / "ds", "--format", "coco", "--out", tmp_path / ids, "--ids", ids)
        assert result.exit_code == 0, result.output
        written = json.loads(next((tmp_path / ids).rglob("*.json")).read_text())
        assert [c["id"] for c in written["categories"]] == [expected]
        assert [a["category_id"] for a in written["annotations"]] == [expected]
