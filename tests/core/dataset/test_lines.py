"""The one serializer of samples.jsonl lines, and the file they are written to."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import DatasetWriter, Obj, Sample
from pipeline.core.dataset.lines import (
    dumps_body,
    dumps_box_object,
    dumps_object,
    dumps_sample,
    join_objects,
    sample_line,
    sorted_lines,
    write_lines,
)


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


# -- objects rendered ahead (a streaming reader's) ---------------------------------------------------

_coord = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-10**6, 10**6))


@settings(max_examples=200, deadline=None)
@given(label=st.text(min_size=1, max_size=12), box=st.lists(_coord, min_size=4, max_size=4),
       rings=st.lists(st.lists(_coord, min_size=3, max_size=12).map(lambda v: v[: len(v) // 2 * 2]), max_size=3),
       crowd=st.booleans())
def test_a_box_object_written_directly_is_the_encoders_text(label: str, box: list, rings: list, crowd: bool) -> None:
    attributes = {"iscrowd": 1} if crowd else None
    polygon = [[[float(r[i]), float(r[i + 1])] for i in range(0, len(r), 2)] for r in rings if r]
    obj = Obj(label, bbox=box, polygon=polygon or None, attributes=attributes or {})
    assert dumps_box_object(label, box, [r for r in rings if r], attributes) == dumps_object(obj)
    assert json.loads(dumps_box_object(label, box, [r for r in rings if r], attributes)) == obj.to_json()


@pytest.mark.parametrize("extra", [
    {},  # no soft label, no source
    {"soft_label": {"cat": 0.7, "dog": 0.3}},  # objects after the soft label
    {"source": {"file": "a.json"}, "meta": {"k": 1}},  # and before source and meta
])
def test_a_line_with_rendered_objects_is_the_line_of_the_objects(extra: dict) -> None:
    objects = [Obj("cat", bbox=[1.0, 2.0, 3.0, 4.0]), Obj("dög", bbox=[0, 0, 5, 5], polygon=[[[0.0, 0.0], [5.0, 0.0], [5.0, 5.0]]])]
    whole = Sample(id="a", image="images/a.png", width=8, height=8, sha256="0" * 64, objects=objects, **extra)
    bare = Sample(id="a", image="images/a.png", width=8, height=8, sha256="0" * 64, **extra)
    rendered = join_objects([dumps_object(o) for o in objects], ["cat", "dög"])
    assert json.loads(rendered.text) == [o.to_json() for o in objects] and rendered.labels == {"cat", "dög"}
    assert dumps_sample(bare, rendered) == dumps_sample(whole)
    assert dumps_body(bare, join_objects([], [])) == dumps_body(Sample(**{**bare.__dict__, "objects": []}))
    with pytest.raises(ValueError, match="twice"):
        dumps_body(whole, rendered)


def test_long_lines_are_written_in_chunks_of_a_bounded_size(tmp_path: Path) -> None:
    lines = [f'{{"id":"{i}","pad":"{"x" * (i * 997 % 5000)}"}}' for i in range(300)]
    one = write_lines(tmp_path / "one.jsonl", lines)
    small = write_lines(tmp_path / "small.jsonl", lines, chunk_chars=3000)  # about one line per write
    assert one == small == hashlib.sha256((tmp_path / "one.jsonl").read_bytes()).hexdigest()
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "small.jsonl").read_bytes()
    assert (tmp_path / "one.jsonl").read_text().splitlines() == lines
