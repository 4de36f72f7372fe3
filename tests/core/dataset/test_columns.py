"""`core.dataset.columns`: DuckDB's answers for plain files equal the parser's samples, and SQL
never accepts a line the parser refuses (fuzzed)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import DatasetInfo, load_dataset, parse_sample_line, write_lines
from pipeline.core.dataset.columns import SPLIT_CODES, NotPlain, plain_counts, plain_rows
from pipeline.core.dataset.writer import _info_bytes
from pipeline.core.errors import DataError
from tests.helpers import make_classification_dataset, make_detection_dataset

CLASSES = ["0", "1", "ü"]
SHA = "0123456789abcdef" * 4
GOOD = {"id": "a", "image": "images/a.png", "width": 28, "height": 28, "sha256": SHA, "split": None, "label": "1",
        "source": {"file": "x"}}


def _dataset(root: Path, lines: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    info = DatasetInfo(task="classification", classes=CLASSES,
                       samples_sha256=write_lines(root / "samples.jsonl", lines))
    (root / "dataset.json").write_bytes(_info_bytes(info))
    return root


def _rows(root: Path, n: int) -> list[tuple] | None:
    try:
        out = []
        for b in plain_rows(root, load_info(root), n, ids=True, images=True):
            out += list(zip(b["id"].to_pylist(), b["image"].to_pylist(), b["sha"].to_pylist(), b["split"].tolist(),
                            b["label"].tolist(), b["width"].tolist(), b["height"].tolist(), strict=True))
        return out
    except NotPlain:
        return None


def load_info(root: Path) -> DatasetInfo:
    from pipeline.core.dataset import read_info

    return read_info(root)


def test_a_plain_file_gives_the_parsers_values(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=3, per_class=5)
    ds = load_dataset(root)
    rows = _rows(root, len(ds))
    assert rows == [(s.id, s.image, s.sha256, SPLIT_CODES[s.split], ds.classes.index(s.label), s.width, s.height)
                    for s in ds.samples]
    counts = Counter({(SPLIT_CODES[s.split], ds.classes.index(s.label), s.width, s.height): 0 for s in ds.samples})
    for s in ds.samples:
        counts[(SPLIT_CODES[s.split], ds.classes.index(s.label), s.width, s.height)] += 1
    assert sorted(plain_counts(root, ds.info, len(ds))) == sorted((*k, n) for k, n in counts.items())


def test_objects_or_a_miscount_are_not_plain(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=3)
    assert plain_counts(root, load_info(root), 3) is None and _rows(root, 3) is None
    plain = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    assert plain_counts(plain, load_info(plain), 5) is None and _rows(plain, 5) is None
    assert _rows(plain, 4) is not None


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**65), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8), st.sampled_from(["train", "val", "test", "0", "1", "ü", "2", SHA, SHA.upper(), SHA + "\n",
                                          "../a.png", "/a.png", "C:/a.png", "\\a.png", "a/../b.png", "a..b.png", ""]),
    st.just({}), st.just({"k": 1}), st.just([]), st.just([1]),
)


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from([*GOOD, "objects", "meta", "pack", "soft_label", "annotations", "other"]),
                       _values, max_size=4),
       st.sets(st.sampled_from(list(GOOD)), max_size=2))
def test_sql_never_accepts_a_line_the_parser_refuses(tmp_path_factory, changes: dict, dropped: set) -> None:
    data = {k: v for k, v in GOOD.items() if k not in dropped}
    data.update(changes)
    line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    root = _dataset(tmp_path_factory.mktemp("fuzz"), [line])
    rows = _rows(root, 1)
    counts = plain_counts(root, load_info(root), 1)
    assert (rows is None) == (counts is None)
    if rows is None:
        return
    try:
        sample = parse_sample_line(line, set(CLASSES))
    except DataError as err:
        pytest.fail(f"DuckDB took a line the parser refuses ({err}): {line}")
    assert rows == [(sample.id, sample.image, sample.sha256, SPLIT_CODES[sample.split],
                     CLASSES.index(sample.label) if sample.label else -1, sample.width, sample.height)]
    assert not sample.objects and not sample.soft_label and not sample.meta and sample.pack is None


_HEAD = f'{{"id":"a","image":"i.png","width":1,"height":1,"sha256":"{SHA}"'


@pytest.mark.parametrize("line", [
    _HEAD + ',"label":"1","label":"0"}',
    _HEAD + " ",
    '["not", "an", "object"]',
    _HEAD + ',"split":"train"}\udcff',
])
def test_lines_duckdb_cannot_read_are_left_to_the_parser(tmp_path: Path, line: str) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    (root / "samples.jsonl").write_bytes(line.encode("utf-8", "surrogateescape") + b"\n")
    info = DatasetInfo(task="classification", classes=CLASSES)
    (root / "dataset.json").write_bytes(_info_bytes(info))
    assert plain_counts(root, info, 1) is None and _rows(root, 1) is None


@pytest.mark.parametrize("drop", ["image", "sha256", "width", "source"])
def test_a_bad_line_among_good_ones_is_not_plain(tmp_path: Path, drop: str) -> None:
    bad = {k: v for k, v in GOOD.items() if k != drop} | {"id": "b"}
    if drop == "source":
        bad["source"] = "not an object"
    lines = [json.dumps(d, ensure_ascii=False, separators=(",", ":")) for d in (GOOD, bad)]
    root = _dataset(tmp_path / "ds", lines)
    assert plain_counts(root, load_info(root), 2) is None and _rows(root, 2) is None
