"""Writing datasets: temporary folder then rename, class lists, in-place rewrites, packs, syncs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from pipeline.core.dataset import (
    DatasetWriter,
    Obj,
    Sample,
    content_hash,
    load_dataset,
    rewrite_samples,
)
from pipeline.core.dataset.model import Dataset, DatasetInfo
from pipeline.core.dataset.writer import BackgroundSync, lineage_entry, replace_dir
from pipeline.core.errors import DataError, UsageError
from tests.helpers import make_classification_dataset


def test_failed_writer_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with DatasetWriter(out, task="classification", stage="t") as w:
            w.add(Sample(id="a", label="x", width=1, height=1), data=b"abc")
            raise RuntimeError("killed")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_dataset_but_not_foreign_folder(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1, splits=None)
    with pytest.raises(UsageError, match="already holds a pipeline dataset"):  # not without overwrite
        make_classification_dataset(root, classes=2, per_class=2, splits=None)
    assert len(load_dataset(root)) == 2
    make_classification_dataset(root, classes=2, per_class=2, splits=None, overwrite=True)
    assert len(load_dataset(root)) == 4
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="files no pipeline stage wrote"):
        make_classification_dataset(foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_fixed_classes_reject_unknown_labels(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="class not in the class list"):
        with DatasetWriter(tmp_path / "o", task="detection", stage="t", classes=["cat"]) as w:
            w.resolve_label("dog", where="a.xml")


def test_class_map_renames_and_merges(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "o", task="classification", stage="t", class_map={"kitty": "cat"}) as w:
        for sid, name in (("1", "kitty"), ("2", "cat"), ("3", "dog")):
            w.add(Sample(id=sid, label=w.resolve_label(name), width=1, height=1), data=sid.encode())
    assert load_dataset(tmp_path / "o").classes == ["cat", "dog"]


def test_rewrite_samples_appends_lineage_and_changes_hash(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    ds = load_dataset(root)
    before = content_hash(root)
    for s in ds.samples:
        s.split = "train"
    rewrite_samples(ds, ds.samples, stage="split", params={"val": 0})
    again = load_dataset(root)
    assert {s.split for s in again.samples} == {"train"}
    assert again.info.lineage[-1]["stage"] == "split"
    assert content_hash(root) != before


def test_objects_round_trip_every_geometry(tmp_path: Path) -> None:
    obj = Obj(label="a", bbox=[1.5, 2, 3, 4], polygon=[[[1.5, 2], [3, 2], [3, 4]]], keypoints=[[2, 3, 2]],
              polyline=[[0, 0], [1, 1]], attributes={"difficult": True})
    with DatasetWriter(tmp_path / "o", task="segmentation", stage="t") as w:
        w.add(Sample(id="x", width=5, height=5, objects=[obj]), data=b"img")
    back = load_dataset(tmp_path / "o").samples[0].objects[0]
    assert back == obj


def test_add_from_two_packed_sources_with_the_same_member_names(tmp_path):
    """Unzipping every pack still puts each image where its `image` path says, clashes included."""
    import zipfile

    from pipeline.augment.stage import run_augment
    from pipeline.core.dataset import DatasetWriter, Sample, load_dataset
    from pipeline.core.paths import sha256_bytes
    from tests.helpers import make_classification_dataset

    data = make_classification_dataset(tmp_path / "data", classes=2, per_class=3, splits=None)
    recipe = Path(__file__).resolve().parents[3] / "configs" / "augment" / "digits.yaml"
    for name, seed in (("a", 1), ("c", 2)):
        run_augment(data, recipe, tmp_path / name, copies=1, splits=["all"], seed=seed, pack="always")
    a, c = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "c")
    with DatasetWriter(tmp_path / "merged", task="classification", stage="test", classes=a.classes) as w:
        for s in a.samples:
            w.add_from(a, s)
        for s in c.samples:
            if s.pack is not None:
                n = Sample.from_json(s.to_json())
                n.id = "c/" + s.id
                w.add_from(c, s, n)
    merged = load_dataset(tmp_path / "merged")
    for s in merged.samples:
        assert sha256_bytes(merged.read_image_bytes(s)) == s.sha256
    out = tmp_path / "unzipped"
    for pack in sorted((merged.root / "images" / "packs").glob("*.zip")):
        with zipfile.ZipFile(pack) as z:
            z.extractall(out)
    for s in merged.samples:
        if s.pack is not None:
            assert sha256_bytes((out / s.image).read_bytes()) == s.sha256


def test_background_syncs_finish_before_the_commit_and_their_errors_stop_it(tmp_path, monkeypatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    with DatasetWriter(tmp_path / "ok", task="classification", stage="test", classes=["a"]) as w:
        rel, pack = w.new_pack("test")
        pack.add("images/x.png", b"x")
        pack.close()
        w.sync_in_background(rel)
    assert synced and load_dataset(tmp_path / "ok").classes == ["a"]

    def failing(fd: int) -> None:  # the pack only: samples.jsonl and dataset.json sync as usual
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".zip"):
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output"):
        with DatasetWriter(tmp_path / "bad", task="classification", stage="test", classes=["a"]) as w:
            rel, pack = w.new_pack("test")
            pack.close()
            w.sync_in_background(rel)
            w.commit()
    assert not (tmp_path / "bad").exists()


def test_rendered_samples_are_written_as_given_and_checked_like_the_others(tmp_path) -> None:
    from PIL import Image

    from pipeline.core.dataset import dumps_sample
    from pipeline.core.images import encode_png
    from pipeline.core.paths import sha256_bytes

    image = tmp_path / "src.png"
    image.write_bytes(encode_png(Image.new("L", (3, 4))))
    copy = Sample(id="a~1", image="images/a~1.png", width=3, height=4, sha256="0" * 64, split="train", label="y",
                  soft_label={"x": 0.25, "y": 0.75}, meta={"note": "rendered elsewhere"})
    with DatasetWriter(tmp_path / "ds", task="classification", stage="test", classes=["x", "y"],
                       render_early=True) as w:
        w.add(Sample(id="b", label="x", width=3, height=4), src=image)
        w.add_rendered(copy.id, copy.image, dumps_sample(copy), ["x", "y"])
        with pytest.raises(DataError, match="same id"):
            w.add_rendered("b", "images/other.png", dumps_sample(copy), [])
        with pytest.raises(DataError, match="same id"):
            w.add(Sample(id="a~1", label="x", width=3, height=4), src=image)
        assert w.uses_image("images/a~1.png")
        info = w.finish()
    raw = (tmp_path / "ds" / "samples.jsonl").read_text()
    assert raw.splitlines()[0] == dumps_sample(copy) and info.samples_sha256 == sha256_bytes(raw.encode())
    loaded = load_dataset(tmp_path / "ds", check_hash=True)
    assert [s.id for s in loaded.samples] == ["a~1", "b"] and loaded.samples[0].soft_label == {"x": 0.25, "y": 0.75}

    with pytest.raises(DataError, match="class list"):  # a rendered sample's classes are checked too
        with DatasetWriter(tmp_path / "bad", task="classification", stage="test", classes=["x"], render_early=True) as w:
            w.add_rendered(copy.id, copy.image, dumps_sample(copy), ["x", "y"])
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="render_early"):
        with DatasetWriter(tmp_path / "plain", task="classification", stage="test") as w:
            w.add_rendered(copy.id, copy.image, dumps_sample(copy), ["y"])

    with DatasetWriter(tmp_path / "back", task="classification", stage="test", classes=["x", "y"],
                       render_early=True) as w:
        w.add_rendered(copy.id, copy.image, dumps_sample(copy), ["y"])
        dataset = w.commit()  # samples added rendered: read back from the committed folder
    assert [s.id for s in dataset.samples] == ["a~1"] and dataset.samples[0].meta == {"note": "rendered elsewhere"}


def test_background_sync_flushes_in_order_from_one_thread_and_keeps_the_first_error(tmp_path, monkeypatch) -> None:
    flushed: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        flushed.append((name, threading.current_thread().name))
        if name.startswith("bad"):
            raise OSError(5, f"cannot flush {name}")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    for name in ("a", "b", "bad1", "bad2"):
        (tmp_path / name).write_bytes(b"x")
    sync = BackgroundSync()
    sync.wait()  # nothing queued: returns at once
    for name in ("a", "b", "bad1", "bad2"):
        sync.put(tmp_path / name)
    with pytest.raises(OSError, match="cannot flush bad1"):
        sync.wait()
    assert flushed == [(n, "fsync") for n in ("a", "b", "bad1", "bad2")]


def test_replace_dir_swaps_a_finished_folder_in_and_lineage_records_the_stage(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_text("new")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("old")
    replace_dir(tmp_path / "new", tmp_path / "out")
    assert (tmp_path / "out" / "f").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    entry = lineage_entry("split", {"path": tmp_path, "ratios": (0.8, 0.2)}, {"in": "h"})
    assert entry["stage"] == "split" and entry["params"] == {"path": str(tmp_path), "ratios": [0.8, 0.2]}
    assert entry["inputs"] == {"in": "h"} and entry["tool"].startswith("pipeline ")


def test_a_new_pack_never_takes_the_name_of_a_linked_one(tmp_path: Path) -> None:
    from pipeline.core.packs import PackWriter

    src = tmp_path / "src"
    (src / "images" / "packs").mkdir(parents=True)
    writer = PackWriter(src / "images" / "packs" / "augment-00000.zip")
    offset = writer.add("images/a.png", b"a")
    writer.close()
    source = Sample(id="a", image="images/a.png", width=1, height=1, sha256="0" * 64,
                    pack={"file": "images/packs/augment-00000.zip", "offset": offset, "length": 1})
    dataset = Dataset(root=src, info=DatasetInfo(task="classification", classes=[]), samples=[source])
    with DatasetWriter(tmp_path / "out", task="classification", stage="t") as w:
        added = w.add_from(dataset, source)
        again = w.add_from(dataset, source, Sample(id="b", image="", width=1, height=1))  # its name is taken
        rel, pack = w.new_pack("augment")
        pack.close()
    assert added.pack["file"] == "images/packs/augment-00000.zip" and rel == "images/packs/augment-00001.zip"
    assert again.pack is None and (tmp_path / "out" / again.image).read_bytes() == b"a"


# -- the source's classes: order and ids ----------------------------------------------------------


def _write(out: Path, labels: list[str], *, declare: list[tuple[list[str], list[int] | None]] = (),
           classes: list[str] | None = None) -> tuple[Dataset, list[str]]:
    notes: list[str] = []
    with DatasetWriter(out, task="detection", stage="t", classes=classes) as w:
        for names, ids in declare:
            notes += w.declare_classes(names, ids)
        for i, label in enumerate(labels):
            w.add(Sample(id=f"s{i}", width=4, height=4, objects=[Obj(label, bbox=[0, 0, 1, 1])]), data=b"x")
        ds = w.commit()
    return ds, notes


def test_declared_classes_keep_the_source_order_and_ids(tmp_path: Path) -> None:
    ds, notes = _write(tmp_path / "d", ["zebra", "ant", "cow"], declare=[(["zebra", "ant", "bee"], [7, 1, 3])])
    # declared first in the source's order (unused `bee` kept), then other labels sorted, numbered after
    assert ds.classes == ["zebra", "ant", "bee", "cow"] and not notes
    assert ds.info.class_ids == {"zebra": 7, "ant": 1, "bee": 3, "cow": 8}
    assert load_dataset(tmp_path / "d").info.class_ids == ds.info.class_ids
    text = (tmp_path / "d" / "dataset.json").read_text()
    assert '"class_ids": {\n    "zebra": 7,' in text


def test_declared_names_without_ids_record_order_only(tmp_path: Path) -> None:
    ds, _ = _write(tmp_path / "d", ["b", "a"], declare=[(["b", "a"], None)])
    assert ds.classes == ["b", "a"] and ds.info.class_ids is None
    assert "class_ids" not in (tmp_path / "d" / "dataset.json").read_text()
    assert ds.class_ids == {"b": 0, "a": 1}  # positions


@pytest.mark.parametrize(
    ("declare", "ids", "note"),
    [
        # the same class with two ids (two files): the first id is kept
        ([(["a"], [1]), (["a"], [2])], {"a": 1}, "class 'a' has id 1 and 2: id 1 kept"),
        # one id for two classes: the later class is numbered after the others
        ([(["a"], [1]), (["b"], [1])], {"a": 1, "b": 2}, "id 1 names 'a' and 'b': 'b' gets a new id"),
    ],
)
def test_conflicting_ids_keep_the_first_and_say_so(tmp_path: Path, declare, ids, note) -> None:
    ds, notes = _write(tmp_path / "d", ["a"], declare=declare)
    assert ds.info.class_ids == ids and notes == [note]


def test_a_fixed_class_list_overrides_declarations(tmp_path: Path) -> None:
    ds, notes = _write(tmp_path / "d", ["a"], declare=[(["a", "b"], [5, 6])], classes=["b", "a"])
    assert ds.classes == ["b", "a"] and ds.info.class_ids is None and not notes


def test_rewrites_and_derived_datasets_keep_the_ids(tmp_path: Path) -> None:
    from pipeline.core.dataset import derive

    ds, _ = _write(tmp_path / "d", ["x", "y"], declare=[(["y", "x"], [3, 1])])
    derived = derive(ds, tmp_path / "e", ds.samples[:1], stage="t")
    assert derived.classes == ["y", "x"] and derived.info.class_ids == {"y": 3, "x": 1}
    fewer = derive(ds, tmp_path / "f", [s for s in ds.samples if s.objects[0].label == "x"], stage="t",
                   classes=["x", "z"])
    assert fewer.info.class_ids == {"x": 1, "z": 2}  # a new class is numbered after the kept ids
    again = rewrite_samples(ds, ds.samples, stage="t")
    assert load_dataset(tmp_path / "d").info.class_ids == again.info.class_ids == {"y": 3, "x": 1}


def test_class_ids_enter_the_content_hash(tmp_path: Path) -> None:
    with_ids, _ = _write(tmp_path / "a", ["x"], declare=[(["x"], [4])])
    without, _ = _write(tmp_path / "b", ["x"])
    assert (tmp_path / "a" / "samples.jsonl").read_bytes() == (tmp_path / "b" / "samples.jsonl").read_bytes()
    assert content_hash(tmp_path / "a") != content_hash(tmp_path / "b")


# -- a writer that keeps lines, not samples (streaming imports) ----------------------------------------


def _write_two(root: Path, keep: bool) -> tuple:
    from pipeline.core.dataset import dumps_object, join_objects

    cat = Obj("cat", bbox=[1.0, 1.0, 5.0, 5.0])
    with DatasetWriter(root, task="detection", stage="t", keep_samples=keep) as w:
        w.add(Sample(id="b", width=8, height=8, split="val", source={"file": "b.json"}), data=b"\x89PNG-b", ext="png",
              objects=join_objects([dumps_object(cat)], ["cat"]))
        w.add(Sample(id="a", width=8, height=8, split="train", objects=[Obj("dog", bbox=[0.0, 0.0, 2.0, 2.0])]), data=b"\x89PNG-a",
              ext="png")
        assert w.count() == 2 and w.has_sample("a") and not w.has_sample("c")
        added = w.added()
        ds = w.commit()
    return ds, added


def test_a_writer_without_samples_kept_writes_the_same_dataset(tmp_path: Path) -> None:
    kept, added_kept = _write_two(tmp_path / "kept", True)
    lean, added_lean = _write_two(tmp_path / "lean", False)
    assert (tmp_path / "kept" / "samples.jsonl").read_bytes() == (tmp_path / "lean" / "samples.jsonl").read_bytes()
    assert added_kept == added_lean == [("a", "a", added_kept[0][2]), ("b", "b.json", added_kept[1][2])]
    assert lean.classes == kept.classes == ["cat", "dog"]
    assert lean.samples._items is None  # (nothing read back yet)
    assert len(lean.samples) == 2 and lean.splits() == {"val": 1, "train": 1}
    assert lean.samples._items is None
    assert lean.samples == kept.samples  # read when first used
    assert [s.id for s in lean.samples] == ["a", "b"] and lean.samples[1].objects[0].label == "cat"
    assert isinstance(kept.samples[1].objects[0], Obj)  # a writer that keeps samples keeps Objs


def test_two_samples_with_one_id_are_refused_without_samples_kept(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="same id"), DatasetWriter(tmp_path / "d", task="detection", stage="t",
                                                                   keep_samples=False) as w:
        w.add(Sample(id="a"), data=b"1", ext="png")
        w.add(Sample(id="a"), data=b"2", ext="png")
    assert not (tmp_path / "d").exists()
