"""WebDataset shards: the format contract, exact round trips, reproducible bytes, keys, hostile tars,
and the shards read by the `webdataset` library and by Ray Data's `read_webdataset`."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.errors import DataError, PipelineError
from pipeline.formats import webdataset as wdsfmt
from pipeline.formats.ingest import export_dataset, import_dataset
from tests.formats.contract import BOXES, EMPTY, MASKS, POLYGONS, SPLITS, FormatContract
from tests.formats.test_fuzz import IMPORTS, _bounded, mutated
from tests.helpers import digit_png, invoke, jpeg, png


class TestWebDatasetContract(FormatContract):
    FORMAT = "webdataset"
    CAN = {BOXES, POLYGONS, MASKS, SPLITS, EMPTY}
    OTHERS = ("coco", "voc")

    def golden(self, folder: Path) -> dict[str, list[tuple[str, list[float]]]]:
        """Shards another tool wrote (images with their class, no records); no objects to compare."""
        write_tar(folder / "train-000000.tar", [("a.png", png(8, 6)), ("a.cls", b"1"), ("b.jpg", jpeg(10, 4)),
                                                ("b.cls", b"0")])
        write_tar(folder / "val-000000.tar", [("c.png", png(5, 5)), ("c.cls", b"1")])
        (folder / "dataset.json").write_text(json.dumps({"format": "pipeline-webdataset", "task": "classification",
                                                         "classes": ["cat", "dog"]}))
        return {"a": [], "b": [], "c": []}

    def test_golden_files(self, tmp_path: Path) -> None:
        """Shards another tool wrote: KEY.jpg/png with KEY.cls, no records; classes from dataset.json."""
        src = tmp_path / "src"
        src.mkdir()
        write_tar(src / "train-000000.tar", [("a.png", png(8, 6)), ("a.cls", b"1"), ("b.jpg", jpeg(10, 4)),
                                             ("b.cls", b" 0\n")])
        write_tar(src / "val-000000.tar", [("c.png", png(5, 5)), ("c.cls", b"1"), ("d.png", png(3, 3))])
        (src / "dataset.json").write_text(json.dumps({"format": "pipeline-webdataset", "task": "classification",
                                                      "classes": ["cat", "dog"]}))
        ds, report = import_dataset("webdataset", src, tmp_path / "ds")
        assert not report.problems, [str(p) for p in report.problems]
        got = {s.id: (s.label, s.split, s.width, s.height, Path(s.image).suffix) for s in ds.samples}
        assert got == {"a": ("dog", "train", 8, 6, ".png"), "b": ("cat", "train", 10, 4, ".jpg"),
                       "c": ("dog", "val", 5, 5, ".png"), "d": (None, "val", 3, 3, ".png")}
        assert ds.classes == ["cat", "dog"]
        assert ds.samples[0].source == {"file": "train-000000.tar", "key": "a"}

    def test_numbers_are_class_names_without_a_dataset_json(self, tmp_path: Path) -> None:
        src = tmp_path / "src"
        src.mkdir()
        write_tar(src / "shard-000000.tar", [("x.png", png(4, 4)), ("x.cls", b"10"), ("y.png", png(4, 5)),
                                             ("y.cls", b"2")])
        ds, _ = import_dataset("webdataset", src, tmp_path / "ds")
        assert ds.classes == ["2", "10"] and {s.id: s.label for s in ds.samples} == {"x": "10", "y": "2"}
        assert all(s.split is None for s in ds.samples)


def write_tar(path: Path, members: list[tuple[str, bytes]], kinds: dict[str, bytes] | None = None) -> Path:
    """A tar of plain `members`; `kinds` maps a name to a tar type (links, folders, FIFOs)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if kinds and name in kinds:
                info.type = kinds[name]
                info.size = 0
                info.linkname = "/etc/passwd"
                tar.addfile(info)
            else:
                tar.addfile(info, io.BytesIO(data))
    return path


IDS = ["plain", "with.dots.png", "sub/dir/name", "ünïcödé", "__meta__", "100%", "a b", "~tilde", "x_y-z"]


def tricky_dataset(root: Path, extra: list[str] = ()) -> Path:
    """Ids that webdataset's key split would break, labels, a soft label, objects, reviews, an unlabelled image."""
    with DatasetWriter(root, task="detection", stage="test-fixture", classes=["zebra", "ant"],
                       class_ids={"zebra": 7, "ant": 3}) as w:
        for i, sid in enumerate(IDS + list(extra)):
            sample = Sample(id=sid, split=("train", "val", "test", None)[i % 4], width=28, height=28,
                            label=("zebra", "ant", None)[i % 3], source={"file": f"src/{sid}", "index": i},
                            meta={"note": sid})
            if i == 2:
                sample.soft_label = {"zebra": 0.25, "ant": 0.75}
            if i % 2:
                sample.objects = [Obj(label="ant", bbox=[1.5, 2.0, 20.0, 27.25], attributes={"difficult": True})]
            w.add(sample, data=digit_png(i % 10, i), ext="png")
    return root


def test_round_trip_is_exact(tmp_path: Path) -> None:
    """import <- export <- import: the same samples.jsonl bytes, classes and class ids."""
    src = tricky_dataset(tmp_path / "src")
    export_dataset(src, "webdataset", tmp_path / "s1", options={"shard_size": 2})
    first, report = import_dataset("webdataset", tmp_path / "s1", tmp_path / "d1")
    assert not report.problems, [str(p) for p in report.problems]
    export_dataset(first.root, "webdataset", tmp_path / "s2", options={"shard_size": 2})
    second, _ = import_dataset("webdataset", tmp_path / "s2", tmp_path / "d2")
    assert (first.root / "samples.jsonl").read_bytes() == (second.root / "samples.jsonl").read_bytes()
    assert first.info.class_ids == second.info.class_ids == {"zebra": 7, "ant": 3}
    assert first.classes == second.classes == ["zebra", "ant"] and first.task == "detection"
    original = {s.id: s.to_json() for s in load_dataset(src).samples}
    for s in first.samples:  # every field of the source as it was (the image path is the writer's)
        assert {k: v for k, v in s.to_json().items() if k != "image"} == \
               {k: v for k, v in original[s.id].items() if k != "image"}


def test_shards_are_reproducible_bytes_with_fixed_headers(tmp_path: Path) -> None:
    src = tricky_dataset(tmp_path / "src")
    export_dataset(src, "webdataset", tmp_path / "a", options={"shard_size": 2})
    export_dataset(src, "webdataset", tmp_path / "b", options={"shard_size": 2})
    names = sorted(p.name for p in (tmp_path / "a").glob("*.tar"))
    assert names == ["test-000000.tar", "train-000000.tar", "train-000001.tar", "unsplit-000000.tar",
                     "val-000000.tar"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        with tarfile.open(tmp_path / "a" / name) as tar:
            members = tar.getmembers()
        assert all((m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644) for m in members)
        keys = list(dict.fromkeys(m.name.split(".", 1)[0] for m in members))  # each key's members together
        ids = [wdsfmt.id_for(k) for k in keys]
        assert ids == sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())  # the fixed shuffle
        for key in keys:
            names = [m.name for m in members if m.name.split(".", 1)[0] == key]
            assert names == sorted(names) and len(names) in (2, 3)
        runs = [k for k, _ in itertools.groupby(m.name.split(".", 1)[0] for m in members)]
        assert runs == keys  # one run of members per key, as webdataset groups them
    manifest = json.loads((tmp_path / "a" / "dataset.json").read_text())
    assert manifest["classes"] == ["zebra", "ant"] and manifest["class_ids"] == {"zebra": 7, "ant": 3}
    assert sum(s["samples"] for s in manifest["shards"]) == len(IDS)


def tarfile_shards(root: Path, shard_size: int) -> dict[str, bytes]:
    """The shards as `tarfile` writes the same members (each split's samples in shard order)."""
    dataset = load_dataset(root)
    index = {c: i for i, c in enumerate(dataset.classes)}
    out = {}
    for split in wdsfmt.SPLIT_ORDER:
        samples = [s for s in sorted(dataset.samples, key=wdsfmt.shard_order) if s.split == split]
        for number, start in enumerate(range(0, len(samples), shard_size)):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for sample in samples[start:start + shard_size]:
                    for name, data in wdsfmt.sample_members(dataset, sample, index):
                        tar.addfile(wdsfmt._tarinfo(name, len(data)), io.BytesIO(data))
            out[f"{split or 'unsplit'}-{number:06d}.tar"] = buf.getvalue()
    return out


@pytest.mark.parametrize("shard_size", [1, 2, 10])
def test_shards_are_the_bytes_tarfile_writes(tmp_path: Path, shard_size: int) -> None:
    src = tricky_dataset(tmp_path / "src", extra=["L" * 140, "ü" * 60])  # keys over 100 bytes: pax headers
    export_dataset(src, "webdataset", tmp_path / "s", options={"shard_size": shard_size})
    written = {p.name: p.read_bytes() for p in (tmp_path / "s").glob("*.tar")}
    assert written == tarfile_shards(src, shard_size)


@pytest.mark.parametrize(("name", "size"), [("a.png", 0), ("a.png", 511), ("k" * 96 + ".cls", 1), ("k" * 97 + ".cls", 1),
                                            ("é.png", 3), ("a.json", 8 ** 11 - 1), ("a.json", 8 ** 11)])
def test_a_member_header_is_tarfiles(name: str, size: int) -> None:
    assert wdsfmt._header(name, size) == wdsfmt._tarinfo(name, size).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING,
                                                                            "surrogateescape")


def test_a_failed_export_reports_the_first_error_in_file_order(tmp_path: Path) -> None:
    src = tricky_dataset(tmp_path / "src")
    lines = (src / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    digest = [hashlib.sha256(json.loads(line)["id"].encode()).hexdigest() for line in lines]
    first, later = next((i, j) for i in range(len(lines)) for j in range(i + 1, len(lines)) if digest[j] < digest[i])
    lines[first] = lines[first].replace('"width":28', '"width":-1')  # the export writes `later` before it
    lines[later] = lines[later].replace('"width":28', '"width":0')
    info = json.loads((src / "dataset.json").read_text(encoding="utf-8"))
    info["samples_sha256"] = None
    (src / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    (src / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as loaded:
        load_dataset(src)
    with pytest.raises(DataError) as got:
        export_dataset(src, "webdataset", tmp_path / "s")
    assert str(got.value) == str(loaded.value) and f"samples.jsonl:{first + 1}: width" in str(got.value)
    assert not (tmp_path / "s").exists()


def test_a_missing_image_is_reported_as_the_split_by_split_export_meets_it(tmp_path: Path) -> None:
    src = tricky_dataset(tmp_path / "src")
    dataset = load_dataset(src)
    ordered = sorted(dataset.samples, key=lambda s: (wdsfmt.SPLIT_ORDER.index(s.split), wdsfmt.shard_order(s)))
    first, later = next((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]
                        if wdsfmt.shard_order(b) < wdsfmt.shard_order(a))  # `later` first in the ids' shuffle
    for sample in (first, later):
        (src / sample.image).unlink()
    with pytest.raises(DataError, match="image missing") as got:
        export_dataset(src, "webdataset", tmp_path / "s")
    assert first.image in str(got.value) and not (tmp_path / "s").exists()


def test_image_bytes_are_stored_never_reencoded(tmp_path: Path) -> None:
    src = tricky_dataset(tmp_path / "src")
    export_dataset(src, "webdataset", tmp_path / "s")
    dataset = load_dataset(src)
    stored = {}
    for shard in (tmp_path / "s").glob("*.tar"):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".png"):
                    stored[wdsfmt.id_for(m.name[:-4])] = tar.extractfile(m).read()
    assert {sid: hashlib.sha256(data).hexdigest() for sid, data in stored.items()} == \
           {s.id: s.sha256 for s in dataset.samples}


@pytest.mark.parametrize("sample_id", IDS + ["..", ".hidden", "%2E", "a/../b", "日本語.jpg", "__"])
def test_keys_have_no_dot_and_give_the_id_back(sample_id: str) -> None:
    from webdataset.tariterators import base_plus_ext

    key = wdsfmt.key_for(sample_id)
    assert "." not in key and "/" not in key and not key.startswith("__") and key.isascii()
    assert wdsfmt.id_for(key) == sample_id
    assert base_plus_ext(f"{key}.png") == (key, "png")  # webdataset's own split finds the key


def test_export_command_with_shard_size(tmp_path: Path) -> None:
    src = tricky_dataset(tmp_path / "src")
    result = invoke("export", str(src), "--format", "webdataset", "--out", str(tmp_path / "s"), "--shard-size", "1")
    assert result.exit_code == 0, result.output
    assert "exported 9 samples as webdataset" in result.output
    assert len(list((tmp_path / "s").glob("*.tar"))) == len(IDS)
    result = invoke("export", str(src), "--format", "webdataset", "--out", str(tmp_path / "t"), "--shard-size", "0")
    assert result.exit_code == 2


# --------------------------------------------------------------------------------------------
# Hostile shards
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("members", "kinds", "problem"), [
    ([("../evil.png", b"x")], None, "holds a folder or '..'"),  # path traversal
    ([("/etc/evil.png", b"x")], None, "holds a folder or '..'"),
    ([("sub/a.png", b"x")], None, "holds a folder"),
    ([("link.png", b"")], {"link.png": tarfile.SYMTYPE}, "a link"),
    ([("hard.png", b"")], {"hard.png": tarfile.LNKTYPE}, "a link"),
    ([("fifo.png", b"")], {"fifo.png": tarfile.FIFOTYPE}, "not a regular file"),
    ([("noext", b"x")], None, "not KEY.EXT"),
    ([("big.cls", b"1" * 100)], None, "over the limit"),  # a .cls is a short number
    ([("a.png", b"not an image"), ("a.cls", b"0")], None, "not an image"),
    ([("a.png", png(4, 4)), ("a.cls", b"x1")], None, "class index"),
    ([("a.png", png(4, 4)), ("a.json", b'{"id": "b"}')], None, "the key's id"),
])
def test_hostile_members_are_reported_and_the_rest_imports(tmp_path: Path, members, kinds, problem) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_tar(src / "bad-000000.tar", [*members, ("good.png", png(6, 6)), ("good.cls", b"0")], kinds)
    ds, report = import_dataset("webdataset", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["good"]
    assert any(problem in str(p) for p in report.problems), [str(p) for p in report.problems]
    assert all("\n" not in str(p) and p.fix for p in report.problems)
    assert not (tmp_path / "evil.png").exists() and not (src / "sub").exists()  # nothing is extracted


def test_a_huge_member_is_refused_unread(tmp_path: Path) -> None:
    """A header claiming 300 MiB: skipped from its header, the shard then ends early (no data)."""
    path = tmp_path / "src" / "huge-000000.tar"
    path.parent.mkdir()
    ok = io.BytesIO()
    with tarfile.open(fileobj=ok, mode="w") as tar:
        data = png(6, 6)
        info = tarfile.TarInfo("good.png")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    header = tarfile.TarInfo("huge.png")
    header.size = 300 * 2**20
    end = 512 + (len(data) + 511) // 512 * 512  # the good member, without the end-of-archive blocks
    path.write_bytes(ok.getvalue()[:end] + header.tobuf() + b"\1" * 4096)
    ds, report = import_dataset("webdataset", path.parent, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["good"]
    assert any("over the limit" in str(p) for p in report.problems)


def test_a_damaged_tar_is_one_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x-000000.tar").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(PipelineError):
        import_dataset("webdataset", src, tmp_path / "ds", on_error="error")


def test_iter_shard_raises_without_a_handler() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("../x.png"), io.BytesIO(b""))
    buf.seek(0)
    with pytest.raises(DataError, match="holds a folder"):
        list(wdsfmt.iter_shard(buf, "s.tar"))


def _valid_shard() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [("a.png", png(4, 4)), ("a.cls", b"0"),
                           ("a.json", json.dumps({"id": "a", "image": "images/a.png", "width": 4, "height": 4,
                                                  "sha256": hashlib.sha256(png(4, 4)).hexdigest(), "split": None,
                                                  "label": "cat"}).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@IMPORTS
@given(st.one_of(mutated(_valid_shard()), st.binary(max_size=2000)))
def test_fuzz_the_shard_reader(data: bytes) -> None:
    def read_all() -> list:
        return list(wdsfmt.iter_shard(io.BytesIO(data), "s.tar", on_bad=lambda err: None))

    _bounded(read_all)


@IMPORTS
@given(mutated(_valid_shard()))
def test_fuzz_the_import(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "src"
        src.mkdir()
        (src / "train-000000.tar").write_bytes(data)
        (src / "dataset.json").write_text('{"format": "pipeline-webdataset", "classes": ["cat"]}')
        try:
            _ds, report = import_dataset("webdataset", src, Path(d) / "out")
        except PipelineError as err:
            assert "\n" not in str(err)
            return
        assert all(p.fix for p in report.problems)


# --------------------------------------------------------------------------------------------
# Other readers: the webdataset library, Ray Data
# --------------------------------------------------------------------------------------------


def test_the_webdataset_library_reads_every_sample_and_label(tmp_path: Path) -> None:
    wds = pytest.importorskip("webdataset")
    src = tricky_dataset(tmp_path / "src")
    export_dataset(src, "webdataset", tmp_path / "s", options={"shard_size": 3})
    urls = [str(p) for p in sorted((tmp_path / "s").glob("*.tar"))]
    dataset = load_dataset(src)
    expected = {s.id: s for s in dataset.samples}
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        sid = wdsfmt.id_for(sample["__key__"])
        seen[sid] = sample
        record = json.loads(sample["json"])
        assert record == expected[sid].to_json()
        assert hashlib.sha256(sample["png"]).hexdigest() == expected[sid].sha256
    assert sorted(seen) == sorted(expected)
    for sid, s in expected.items():
        label = s.label or (max(s.soft_label, key=s.soft_label.get) if s.soft_label else None)
        if label is None:
            assert "cls" not in seen[sid]
        else:
            assert int(seen[sid]["cls"]) == dataset.classes.index(label)
    decoded = next(iter(wds.WebDataset(urls[:1], shardshuffle=False).decode("pil").to_tuple("png", "cls")))
    assert decoded[0].size == (28, 28) and isinstance(decoded[1], int)


# Ray Data reads the shards in a process of its own: a Ray started and shut down inside the test
# process leaves that process unable to use the Ray clusters later test modules start.
_RAY_READ = """
import hashlib, json, sys
import ray
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
try:
    rows = ray.data.read_webdataset(sys.argv[1:], decoder=None).take_all()
finally:
    ray.shutdown()
print(json.dumps([{"key": r["__key__"], "png": hashlib.sha256(r["png"]).hexdigest(),
                   "cls": r["cls"].decode() if isinstance(r.get("cls"), bytes) else None,
                   "json": r["json"].decode()}
                  for r in rows]))
"""


@pytest.mark.slow
def test_ray_data_reads_the_shards(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is not installed (pip install 'pipeline[ray]')")
    import subprocess
    import sys

    src = tricky_dataset(tmp_path / "src")
    export_dataset(src, "webdataset", tmp_path / "s", options={"shard_size": 4})
    urls = [str(p) for p in sorted((tmp_path / "s").glob("*.tar"))]
    dataset = load_dataset(src)
    proc = subprocess.run([sys.executable, "-c", _RAY_READ, *urls], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(wdsfmt.id_for(r["key"]) for r in rows) == sorted(s.id for s in dataset.samples)
    index = {c: i for i, c in enumerate(dataset.classes)}
    for row in rows:
        s = next(x for x in dataset.samples if x.id == wdsfmt.id_for(row["key"]))
        assert row["png"] == s.sha256
        if s.label is not None:
            assert int(row["cls"]) == index[s.label]
        assert json.loads(row["json"])["id"] == s.id


# --------------------------------------------------------------------------------------------
# Shard files: links and special files (as tests/formats/test_safe_files.py for the other formats)
# --------------------------------------------------------------------------------------------


def _two_shards(root: Path) -> None:
    write_tar(root / "a-000000.tar", [("a.png", png(6, 6)), ("a.cls", b"0")])


@pytest.mark.timeout(60)  # a FIFO that is opened blocks for ever
def test_a_fifo_named_like_a_shard_never_hangs(tmp_path: Path) -> None:
    import os

    from pipeline.core.paths import SPECIAL_FILE
    from pipeline.formats.detect import survey

    src = tmp_path / "src"
    src.mkdir()
    _two_shards(src)
    os.mkfifo(src / "b-000000.tar")
    assert survey(src, count=True)[0].format == "webdataset"  # detect and count open no FIFO
    ds, report = import_dataset("webdataset", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["a"] and report.skipped.get(SPECIAL_FILE) == 1
    assert any("b-000000.tar: a FIFO" in w for w in report.warnings), report.warnings


@pytest.mark.parametrize("inside", [False, True], ids=["outside", "inside"])
def test_a_shard_link_is_followed_only_inside_the_folder(tmp_path: Path, inside: bool) -> None:
    from pipeline.core.paths import LINK_OUTSIDE

    src, other = tmp_path / "src", tmp_path / "other"
    src.mkdir()
    other.mkdir()
    _two_shards(src)
    where = src / "store" if inside else other
    where.mkdir(exist_ok=True)
    write_tar(where / "x.tar", [("secret.png", png(5, 5)), ("secret.cls", b"0")])
    (src / "b-000000.tar").symlink_to(where / "x.tar")
    ds, report = import_dataset("webdataset", src, tmp_path / "ds")
    ids = sorted(s.id for s in ds.samples)
    if inside:
        assert ids == ["a", "secret"] and not report.skipped.get(LINK_OUTSIDE)
    else:
        assert ids == ["a"] and report.skipped.get(LINK_OUTSIDE) == 1
