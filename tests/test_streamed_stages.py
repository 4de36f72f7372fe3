"""The stages on a streamed dataset (`open_dataset`, bounded memory) give byte for byte what they
give on `load_dataset`'s in-memory one: stats, check, split, every export format and the tensor
cache, on synthetic datasets (one plain, read through DuckDB; one with boxes) and real ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.bench_scale import make_dataset
from pipeline import formats
from pipeline.check import check_dataset
from pipeline.core.dataset import is_streamed, load_dataset, open_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.formats.base import ExportReport
from pipeline.formats.ingest import import_dataset
from pipeline.split import split_folder, split_in_place
from pipeline.stats import compute_stats, public, stats_of
from pipeline.tensor_cache import load_or_build
from tests.helpers import SHARED_DATA, make_detection_dataset, shared_data

REAL = {  # name -> (format, folder under ../shared/data)
    "raccoon-voc": ("voc", ("raccoon-voc",)),
    "labelme-instances": ("labelme", ("labelme-examples", "instance_segmentation")),
    "cvat-street": ("cvat", ("cvat-street",)),
}
NAMES = ["plain", "detection", *REAL]


def _plain(root: Path) -> Path:
    """A plain dataset (DuckDB's path) with what check reports: twins across splits, a missing
    image, a wrong size, a wrong hash, an unlabelled sample, a class no sample uses."""
    make_dataset(root, 600, pool=40)
    lines = (root / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines):
        data = json.loads(line)
        data["split"] = ("train", "val", "test")[i % 3] if i % 5 else None
        if i == 7:
            data["image"] = "images/gone.png"
        if i == 11:
            data["width"] = 30
        if i == 13:
            data["sha256"] = "0" * 64
        if i % 97 == 5:
            data["label"] = None
        out.append(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    from pipeline.core.dataset import write_lines

    info = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    info["samples_sha256"] = write_lines(root / "samples.jsonl", out)
    info["classes"].append("never")
    (root / "dataset.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("streamed")
    out = {"plain": _plain(base / "plain"), "detection": make_detection_dataset(base / "detection", n=8),
           "plain-clean": make_dataset(base / "plain-clean", 300, pool=20)}
    if SHARED_DATA.is_dir():
        for name, (fmt, parts) in REAL.items():
            src = SHARED_DATA.joinpath(*parts)
            if src.exists():
                out[name] = import_dataset(fmt, src, base / name).dataset.root
    return out


def _root(datasets: dict[str, Path], name: str) -> Path:
    if name not in datasets:
        shared_data(*REAL[name][1])  # (skips, naming what is missing)
    return datasets[name]


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False)


@pytest.mark.parametrize("name", NAMES)
def test_stats(datasets, name: str) -> None:
    root = _root(datasets, name)
    streamed = open_dataset(root)
    assert is_streamed(streamed)
    ours, theirs = compute_stats(streamed), compute_stats(load_dataset(root))
    assert _json(public(ours)) == _json(public(theirs)) == _json(public(stats_of(root)))  # (`pipeline stats`)
    assert {k: list(v) for k, v in ours["_boxes"].items()} == {k: list(v) for k, v in theirs["_boxes"].items()}


@pytest.mark.parametrize("images", [True, False], ids=["images", "labels-only"])
@pytest.mark.parametrize("name", NAMES)
def test_check(datasets, name: str, images: bool) -> None:
    root = _root(datasets, name)
    ours = check_dataset(open_dataset(root), images=images)
    theirs = check_dataset(load_dataset(root), images=images)
    assert _json(ours.to_json()) == _json(theirs.to_json())
    if name == "plain":
        codes = {f.code for f in ours.findings}
        assert {"split-leakage", "unused-class", "no-annotations"} <= codes
        assert not images or {"missing-image", "size-mismatch", "hash-mismatch"} <= codes


@pytest.mark.parametrize("request_", [dict(val=0.1, test=0.1), dict(val=0.2, test=0.0, redo=True),
                                      dict(val=0.3, test=0.2, seed=3)], ids=["fill", "redo", "carve-or-fill"])
@pytest.mark.parametrize("name", NAMES)
def test_split(datasets, name: str, request_: dict, tmp_path: Path) -> None:
    root = _root(datasets, name)
    a, b, c = (shutil.copytree(root, tmp_path / x) for x in "abc")
    ours = split_in_place(open_dataset(a), **request_)
    theirs = split_in_place(load_dataset(b), **request_)
    assert ours == theirs == split_folder(c, **request_)  # (what `pipeline split` calls)
    assert (a / "samples.jsonl").read_bytes() == (b / "samples.jsonl").read_bytes() == (c / "samples.jsonl").read_bytes()
    info_a, info_b = (json.loads((p / "dataset.json").read_text(encoding="utf-8")) for p in (a, b))
    for info in (info_a, info_b):
        for entry in info["lineage"]:
            entry.pop("time")
            entry["inputs"] = sorted(entry["inputs"].values())
    assert info_a == info_b


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
@pytest.mark.parametrize("name", NAMES)
def test_export(datasets, name: str, fmt: str, tmp_path: Path) -> None:
    root = _root(datasets, name)
    module = formats.get(fmt)
    results = []
    for reader, out in ((open_dataset, tmp_path / "ours"), (load_dataset, tmp_path / "theirs")):
        out.mkdir()
        report = ExportReport()
        try:
            module.write(reader(root), out, report, {})
        except (DataError, UsageError) as err:
            results.append(("error", type(err).__name__, str(err)))
            continue
        results.append(("written", report.written, dict(report.dropped), dict(report.converted), report.warnings))
    assert results[0] == results[1]
    assert _tree(tmp_path / "ours") == _tree(tmp_path / "theirs")


@pytest.mark.parametrize("name", ["plain-clean", "detection", "raccoon-voc"])
def test_tensor_cache(datasets, name: str, tmp_path: Path) -> None:
    root = _root(datasets, name)
    ours = load_or_build(open_dataset(root), root=tmp_path / "ours", labels=False, size=16)
    theirs = load_or_build(load_dataset(root), root=tmp_path / "theirs", labels=False, size=16)
    assert _tree(ours.path) == _tree(theirs.path)
    assert list(ours.ids) == list(theirs.ids) and (ours.labels == theirs.labels).all()
    assert (ours.sizes == theirs.sizes).all() and (ours.splits == theirs.splits).all()
