"""The one serializer of samples.jsonl lines, and the file they are written to."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.core.dataset import DatasetWriter, Obj, Sample
from pipeline.core.dataset.lines import dumps_body, dumps_sample, sample_line, sorted_lines, write_lines


def test_samples_are_written_sorted_and_byte_stable(tmp_path: Path) -> None:
    def write(out: Path, order: list[str]) -> bytes:
        with DatasetWriter(out, task="classification", stage="t") as w:
            for sid in order:
                w.add(Sample(id=sid, label="a", width=1, height=1), data=b"\x89PNG\r\n\x1a\n" + sid.encode())
        return (out / "samples.jsonl").read_bytes()

    assert write(tmp_path / "a", ["b", "a", "c"]) == write(tmp_path / "b", ["c", "b", "a"])


@pytest.mark.parametrize("sample_id, image", [("a", "images/a.png"), ('q"uote,"width":1', 'images/q"uote.png'),
                                              ("日本\u2028x", "images/日本.png")])
@pytest.mark.parametrize("pack", [{"file": "images/packs/augment-00000.zip", "offset": 30, "length": 312},
                                  {"file": 'images/packs/p"ck.zip', "offset": 0, "length": 1, "extra": [1]},
                                  {"offset": 5, "file": "images/packs/a.zip", "length": 2},  # another key order
                                  {"file": "images/packs/a.zip", "offset": True, "length": 2.0},  # not ints
                                  None])
def test_a_line_from_its_body_equals_rendering_the_whole_sample(sample_id: str, image: str, pack: dict | None) -> None:
    """A body rendered before the pack was known, completed with the pack as data, gives the
    bytes `json.dumps` gives for the whole packed sample."""
    sample = Sample(id=sample_id, image=image, width=3, height=4, sha256="0" * 64, split="train", label="x",
                    soft_label={"x": 0.7, "y": 0.3}, meta={"augment": {"ops": [{"op": "rotate", "angle": 1.5}]}},
                    objects=[Obj(label="x", bbox=[0.5, 1.0, 2.0, 3.0])])
    body = dumps_body(sample)
    assert json.loads(body) == sample.body_json()
    sample.pack = pack
    line = sample_line(sample_id, image, pack, body)
    assert line == dumps_sample(sample)
    assert line == json.dumps(sample.to_json(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def test_a_sample_that_is_not_finite_is_refused() -> None:
    with pytest.raises(ValueError):
        dumps_sample(Sample(id="a", image="images/a.png", objects=[Obj(label="x", bbox=[0, 0, float("nan"), 1])]))


def test_lines_are_sorted_written_newline_ended_and_hashed(tmp_path: Path) -> None:
    samples = [Sample(id=i, image=f"images/{i}.png", width=1, height=1, sha256="0" * 64) for i in ("b", "c", "a")]
    lines = sorted_lines(samples)
    assert [json.loads(x)["id"] for x in lines] == ["a", "b", "c"]
    digest = write_lines(tmp_path / "s.jsonl", lines, chunk=2)  # chunks joined without a gap
    data = (tmp_path / "s.jsonl").read_bytes()
    assert data == ("\n".join(lines) + "\n").encode() and digest == hashlib.sha256(data).hexdigest()
