"""`pipeline prelabel`: the command's summary, its one-line refusals, and the loop back through
`pipeline relabel` (the library is tested in tests/labeling/test_prelabel.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pipeline.core.dataset import load_dataset
from tests.helpers import make_detection_dataset


def test_prelabel_then_relabel(main, trained, tmp_path: Path) -> None:
    done = main("prelabel", trained.run, trained.data, "--format", "labelstudio", "--out", tmp_path / "review")
    assert done.returncode == 0, done.stderr
    assert re.search(r"samples\s+36", done.stdout) and re.search(r"model\s+run@[0-9a-f]{12}", done.stdout)
    assert str(tmp_path / "review") in done.stdout
    tasks = json.loads((tmp_path / "review" / "tasks.json").read_text())
    first = tasks[0]
    predicted = first["predictions"][0]["result"][0]["value"]["choices"][0]
    other = next(c for c in "012" if c != predicted)
    first["annotations"] = [{"id": 1, "completed_by": 1, "updated_at": "2026-12-06T23:00:00Z", "result": [
        {"type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [other]}}]}]
    (tmp_path / "review" / "tasks.json").write_text(json.dumps(tasks))
    done = main("relabel", trained.data, "--from", tmp_path / "review" / "tasks.json", "--out", tmp_path / "v2")
    assert done.returncode == 0, done.stderr
    sid = first["data"]["sample_id"]
    new = {s.id: s for s in load_dataset(tmp_path / "v2").samples}
    assert new[sid].label == other
    old = next(s for s in load_dataset(trained.data).samples if s.id == sid)
    changes = load_dataset(tmp_path / "v2").info.lineage[-1]["changes"]
    assert changes == ([] if old.label == other else [{"id": sid, "field": "label", "old": old.label, "new": other}])


def test_detection_dataset_is_one_line_exit_2(main, trained, tmp_path: Path) -> None:
    det = make_detection_dataset(tmp_path / "det", n=2)
    done = main("prelabel", trained.run, det, "--format", "labelme", "--out", tmp_path / "out")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "prelabel needs a classification dataset" in done.stderr and "pipeline crop" in done.stderr


def test_help_says_detection_is_out_of_scope(main) -> None:
    done = main("prelabel", "--help")
    assert done.returncode == 0 and "detection dataset is refused" in " ".join(done.stdout.split())
