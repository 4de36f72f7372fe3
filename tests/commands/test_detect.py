"""`pipeline detect SRC`: the candidates table, --json, and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.formats.ingest import export_dataset
from tests.formats.contract import BOXES, make_source
from tests.helpers import invoke


def test_one_format_is_listed_with_its_files_and_the_others_with_reasons(tmp_path: Path) -> None:
    src = make_source(tmp_path / "ds", {BOXES})
    export_dataset(src.root, "voc", tmp_path / "voc")
    result = invoke("detect", tmp_path / "voc")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"formats of {tmp_path / 'voc'}"
    assert lines[1].split()[:3] == ["voc", "score", "60:"]
    assert lines[2].strip() == "would import: 3 images, 4 objects, 2 classes"
    assert lines[3].strip().startswith("files: Annotations/")
    assert any(ln.split()[:2] == ["coco", "rejected:"] for ln in lines)
    assert lines[-1].split() == ["import", "auto", "voc"]


def test_json_lists_every_candidate(tmp_path: Path) -> None:
    src = make_source(tmp_path / "ds", {BOXES})
    export_dataset(src.root, "labelme", tmp_path / "mixed")
    export_dataset(src.root, "coco", tmp_path / "coco")
    (tmp_path / "mixed" / "instances.json").write_bytes(next((tmp_path / "coco").rglob("*.json")).read_bytes())
    result = invoke("detect", tmp_path / "mixed", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["auto"] is None  # `import auto` refuses: coco and labelme each cover files
    by_name = {c["format"]: c for c in data["candidates"]}
    assert by_name["coco"]["accepted"] and by_name["coco"]["files"] == ["instances.json"]
    assert by_name["labelme"]["accepted"] and by_name["yolo"]["accepted"] is False
    assert set(by_name["yolo"]) == {"format", "accepted", "description", "score", "files", "counts", "note"}
    assert by_name["coco"]["counts"]["images"] == 3 and by_name["labelme"]["counts"]["images"] == 3
    table = invoke("detect", tmp_path / "mixed")
    assert "refused: coco, labelme each cover a part of the folder" in table.output


def test_nothing_known_is_exit_2_after_the_reasons(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    result = invoke("detect", tmp_path)
    assert result.exit_code == 2
    assert "yolo" in result.output and "rejected: no " in result.output
    assert "no known layout found" in result.output
