"""Image packs: the ZIP layout, the `pack` field, and every stage reading packed images."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.augment.stage import run_augment
from pipeline.check import check_dataset
from pipeline.cli import cli
from pipeline.core.dataset import (
    Dataset,
    DatasetWriter,
    Sample,
    derive,
    dumps_sample,
    load_dataset,
    parse_sample_line,
    rewrite_samples,
)
from pipeline.core.errors import DataError
from pipeline.core.packs import PACKS_DIR, PackWriter, pack_name, read_member
from pipeline.formats.ingest import export_dataset
from tests.helpers import make_classification_dataset, make_detection_dataset

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "augment"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
READ_FINDINGS = {"missing-image", "unreadable-image", "hash-mismatch", "size-mismatch"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def packed(ds: Dataset) -> list[Sample]:
    return [s for s in ds.samples if s.pack is not None]


def pack_files(root: Path) -> list[str]:
    folder = root / PACKS_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def read_findings(ds: Dataset) -> list[tuple[str, str | None]]:
    return [(f.code, f.sample) for f in check_dataset(ds).findings if f.code in READ_FINDINGS]


def unpacked_copy(src: Path, dest: Path) -> Dataset:
    """A copy of a packed dataset with every pack unzipped in place and the `pack` fields dropped."""
    root = Path(shutil.copytree(src, dest))
    ds = load_dataset(root)
    for name in pack_files(root):
        with zipfile.ZipFile(root / PACKS_DIR / name) as zf:
            assert zf.testzip() is None
            zf.extractall(root)
    shutil.rmtree(root / PACKS_DIR)
    plain = [Sample.from_json({k: v for k, v in s.to_json().items() if k != "pack"}) for s in ds.samples]
    return load_dataset(rewrite_samples(ds, plain, stage="unpack").root)


@pytest.fixture(scope="module")
def packed_cls(tmp_path_factory) -> Path:
    """28x28 digits (2 train samples per class) plus two packed copies of each train sample."""
    base = tmp_path_factory.mktemp("packed-cls")
    src = make_classification_dataset(base / "src", classes=3, per_class=4)
    run_augment(src, RECIPES / "digits.yaml", base / "aug", copies=2, seed=1, pack="always")
    return base / "aug"


@pytest.fixture(scope="module")
def packed_det(tmp_path_factory) -> Path:
    """64x48 detection images plus one packed copy of each train sample."""
    base = tmp_path_factory.mktemp("packed-det")
    src = make_detection_dataset(base / "src", n=6)
    run_augment(src, RECIPES / "detection.yaml", base / "aug", copies=1, seed=2, pack="always")
    return base / "aug"


# --------------------------------------------------------------------------------------------
# The file: a plain ZIP archive
# --------------------------------------------------------------------------------------------

MEMBERS = [
    ("images/augmented/3f/a~aug1.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3),
    ("images/augmented/00/zz~aug2.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"),
    ("images/été/ü.png", b"x"),  # a UTF-8 name and a one-byte member
]


def write_pack(path: Path, members=MEMBERS) -> list[int]:
    with PackWriter(path) as pack:
        offsets = [pack.add(name, data) for name, data in members]
        assert len(pack) == len(members)
    return offsets


def test_pack_is_a_stored_zip_that_zipfile_reads(tmp_path):
    path = tmp_path / "p.zip"
    offsets = write_pack(path)
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == [name for name, _ in MEMBERS]
        for (name, data), offset, info in zip(MEMBERS, offsets, zf.infolist(), strict=True):
            assert zf.read(name) == data
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.file_size == info.compress_size == len(data)
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.header_offset < offset
            assert raw[offset:offset + len(data)] == data
            assert read_member(path, offset, len(data)) == data


def test_same_members_give_the_same_bytes(tmp_path):
    write_pack(tmp_path / "a.zip")
    write_pack(tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    write_pack(tmp_path / "c.zip", [MEMBERS[0], (MEMBERS[1][0], MEMBERS[1][1] + b"!"), MEMBERS[2]])
    assert (tmp_path / "c.zip").read_bytes() != (tmp_path / "a.zip").read_bytes()


def test_a_new_pack_never_writes_through_a_hard_link(tmp_path):
    write_pack(tmp_path / "a.zip")
    before = (tmp_path / "a.zip").read_bytes()
    os.link(tmp_path / "a.zip", tmp_path / "b.zip")
    write_pack(tmp_path / "b.zip", MEMBERS[:1])
    assert (tmp_path / "a.zip").read_bytes() == before
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert zf.namelist() == [MEMBERS[0][0]]


def test_an_empty_pack_is_an_empty_zip(tmp_path):
    with PackWriter(tmp_path / "e.zip"):
        pass
    with zipfile.ZipFile(tmp_path / "e.zip") as zf:
        assert zf.namelist() == [] and zf.testzip() is None


def test_read_member_names_a_truncated_or_missing_pack(tmp_path):
    path = tmp_path / "p.zip"
    offsets = write_pack(path)
    name, data = MEMBERS[0]
    with open(path, "r+b") as fh:
        fh.truncate(offsets[0] + len(data) - 1)
    with pytest.raises(DataError, match="image pack is truncated") as err:
        read_member(path, offsets[0], len(data))
    assert str(path) in str(err.value) and f"{len(data)} bytes at offset {offsets[0]}" in str(err.value)
    with pytest.raises(DataError, match="image pack missing") as err:
        read_member(tmp_path / "gone.zip", 0, 10)
    assert str(tmp_path / "gone.zip") in str(err.value)


# --------------------------------------------------------------------------------------------
# The `pack` field
# --------------------------------------------------------------------------------------------

LINE = {"id": "a~aug1", "image": "images/augmented/3f/a~aug1.png",
        "pack": {"file": "images/packs/augment-00000.zip", "offset": 64, "length": 312},
        "width": 28, "height": 28, "sha256": "0" * 64, "split": "train", "label": "0"}


def test_a_pack_line_round_trips():
    sample = parse_sample_line(json.dumps(LINE), {"0"}, line=1)
    assert sample.pack == LINE["pack"] and sample.image == LINE["image"]
    assert json.loads(dumps_sample(sample)) == LINE
    assert list(json.loads(dumps_sample(sample)))[:3] == ["id", "image", "pack"]


@pytest.mark.parametrize(
    ("pack", "message"),
    [
        ("images/packs/a.zip", 'samples.jsonl:7: pack: expected an object {"file", "offset", "length"}'),
        ({"file": "/abs/a.zip", "offset": 0, "length": 1}, "samples.jsonl:7: pack.file: expected a relative path"),
        ({"file": "images/../../a.zip", "offset": 0, "length": 1}, "pack.file: expected a relative path"),
        ({"file": "C:/a.zip", "offset": 0, "length": 1}, "pack.file: expected a relative path"),
        ({"file": "images/packs/a.tar", "offset": 0, "length": 1}, "pack.file: expected a relative path of a .zip"),
        ({"offset": 0, "length": 1}, "pack.file: expected"),
        ({"file": "images/packs/a.zip", "offset": -1, "length": 1}, "pack.offset: expected an integer >= 0, got -1"),
        ({"file": "images/packs/a.zip", "offset": True, "length": 1}, "pack.offset: expected an integer >= 0"),
        ({"file": "images/packs/a.zip", "offset": 1.5, "length": 1}, "pack.offset: expected an integer >= 0"),
        ({"file": "images/packs/a.zip", "offset": 0, "length": 0}, "pack.length: expected an integer >= 1, got 0"),
        ({"file": "images/packs/a.zip", "offset": 0}, "pack.length: expected an integer >= 1, got None"),
        ({"file": "images/packs/a.zip", "offset": 0, "length": 1, "crc": 5},
         "pack.crc: expected only file, offset and length"),
    ],
)
def test_bad_pack_values_name_the_field(pack, message):
    with pytest.raises(DataError) as err:
        parse_sample_line(json.dumps({**LINE, "pack": pack}), {"0"}, line=7)
    assert message in str(err.value)


def test_a_bad_pack_in_a_dataset_names_line_and_field(tmp_path):
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1, splits=None)
    path = root / "samples.jsonl"
    lines = path.read_text().splitlines()
    second = json.loads(lines[1])
    second["pack"] = {"file": "images/packs/a.zip", "offset": 0, "length": -4}
    lines[1] = json.dumps(second)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"samples\.jsonl:2: pack\.length: expected an integer >= 1, got -4"):
        load_dataset(root, check_hash=False)


# --------------------------------------------------------------------------------------------
# A packed dataset, as `augment` writes it
# --------------------------------------------------------------------------------------------


def test_augment_packs_every_copy_and_reads_them_back(packed_cls):
    ds = load_dataset(packed_cls)
    copies = [s for s in packed(ds) if "~aug" in s.id]
    originals = [s for s in packed(ds) if "~aug" not in s.id]
    assert len(copies) == 2 * 6
    # the originals of the augmented (train) samples sit in the pack beside their copies; the rest are files
    assert sorted(s.id for s in originals) == sorted({s.id.split("~aug")[0] for s in copies})
    assert all(s.split == "train" for s in originals)
    assert all(s.pack is None for s in ds.samples if s.split != "train")
    assert pack_files(packed_cls) == ["augment-00000.zip"]
    assert not (packed_cls / "images" / "augmented").exists()  # no image files for packed copies
    src = {s.id: s for s in load_dataset(packed_cls.parent / "src").samples}
    for s in originals:
        assert s.sha256 == src[s.id].sha256 and s.image == src[s.id].image
    for s in packed(ds):
        assert s.pack["file"] == pack_name("augment", 0)
        data = ds.read_image_bytes(s)
        assert len(data) == s.pack["length"] and sha(data) == s.sha256
        assert ds.open_image(s).size == (s.width, s.height) == (28, 28)
        assert ds.image_where(s) == f"{packed_cls / s.pack['file']}:{s.pack['offset']}"
    assert read_findings(ds) == []


def test_unzipping_a_pack_puts_each_image_at_its_image_path(packed_cls, tmp_path):
    root = Path(shutil.copytree(packed_cls, tmp_path / "ds"))
    ds = load_dataset(root)
    with zipfile.ZipFile(root / pack_name("augment", 0)) as zf:
        assert sorted(zf.namelist()) == sorted(s.image for s in packed(ds))
        zf.extractall(root)
    for s in packed(ds):
        assert sha((root / s.image).read_bytes()) == s.sha256
    # unzipped and without its `pack` fields, the same dataset reads as ordinary files
    plain = unpacked_copy(packed_cls, tmp_path / "plain")
    assert not packed(plain) and not (plain.root / PACKS_DIR).exists()
    assert [(s.id, s.sha256) for s in plain.samples] == [(s.id, s.sha256) for s in ds.samples]
    assert read_findings(plain) == []


def test_check_reports_corrupt_truncated_and_missing_packs(packed_cls, tmp_path):
    root = Path(shutil.copytree(packed_cls, tmp_path / "ds"))
    ds = load_dataset(root)
    assert read_findings(ds) == []
    members = sorted(packed(ds), key=lambda s: s.pack["offset"])
    path = root / pack_name("augment", 0)

    first = members[0]  # one byte of the first member's image data flipped
    with open(path, "r+b") as fh:
        fh.seek(first.pack["offset"] + first.pack["length"] // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    found = read_findings(ds)
    assert ("hash-mismatch", first.id) in found
    assert {sid for _, sid in found} == {first.id}

    cut = members[-3].pack["offset"] + 5  # cuts the third-last member, drops the last two
    with open(path, "r+b") as fh:
        fh.truncate(cut)
    missing = sorted(sid for code, sid in read_findings(ds) if code == "missing-image")
    assert missing == sorted(s.id for s in members[-3:])
    report = check_dataset(ds)
    message = next(f.message for f in report.findings if f.code == "missing-image")
    assert "augment-00000.zip" in message and "truncated" in message

    path.unlink()
    missing = sorted(sid for code, sid in read_findings(ds) if code == "missing-image")
    assert missing == sorted(s.id for s in members)
    result = CliRunner().invoke(cli, ["check", str(root), "--strict"])
    assert result.exit_code == 1, result.output


def test_check_cli_passes_a_packed_dataset(packed_cls):
    result = CliRunner().invoke(cli, ["check", str(packed_cls), "--strict", "--json"])
    assert result.exit_code == 0, result.output
    codes = {f["code"] for f in json.loads(result.output)["findings"]}
    assert not codes & READ_FINDINGS


def test_derive_links_packs_and_keeps_members(packed_cls, tmp_path):
    ds = load_dataset(packed_cls)
    chosen = [s for s in ds.samples if s.split == "train"]
    out = derive(ds, tmp_path / "train-only", chosen, stage="filter")
    new = load_dataset(out.root)
    assert [s.id for s in new.samples] == [s.id for s in chosen]
    assert pack_files(new.root) == ["augment-00000.zip"]
    src_pack, new_pack = packed_cls / pack_name("augment", 0), new.root / pack_name("augment", 0)
    assert os.stat(new_pack).st_ino == os.stat(src_pack).st_ino
    by_id = {s.id: s for s in ds.samples}
    for s in packed(new):
        assert s.pack == by_id[s.id].pack and s.image == by_id[s.id].image
        assert sha(new.read_image_bytes(s)) == s.sha256
    assert len(packed(new)) == len(packed(ds))
    assert read_findings(new) == []


def test_split_in_place_keeps_packs(packed_cls, tmp_path):
    root = Path(shutil.copytree(packed_cls, tmp_path / "ds"))
    before = load_dataset(root)
    pack = root / pack_name("augment", 0)
    inode, data = os.stat(pack).st_ino, pack.read_bytes()
    result = CliRunner().invoke(cli, ["split", str(root), "--val", "0.3", "--test", "0.2", "--seed", "4", "--redo"])
    assert result.exit_code == 0, result.output
    after = load_dataset(root)
    assert [s.split for s in after.samples] != [s.split for s in before.samples]
    assert {s.id: s.pack for s in after.samples} == {s.id: s.pack for s in before.samples}
    assert os.stat(pack).st_ino == inode and pack.read_bytes() == data
    assert read_findings(after) == []


def test_augmenting_a_packed_dataset_links_its_packs_and_adds_new_ones(packed_cls, tmp_path):
    run_augment(packed_cls, RECIPES / "digits.yaml", tmp_path / "again", copies=1, seed=2, splits=["val"],
                pack="always")
    ds = load_dataset(tmp_path / "again")
    assert pack_files(ds.root) == ["augment-00000.zip", "augment-00001.zip"]
    assert os.stat(ds.root / pack_name("augment", 0)).st_ino == os.stat(packed_cls / pack_name("augment", 0)).st_ino
    files = {s.pack["file"] for s in packed(ds) if s.split == "val"}
    assert files == {pack_name("augment", 1)}
    assert len(packed(ds)) == len(packed(load_dataset(packed_cls))) + 3 + 3  # val copies and their originals
    for s in packed(ds):
        assert sha(ds.read_image_bytes(s)) == s.sha256
    with zipfile.ZipFile(ds.root / pack_name("augment", 1)) as zf:
        assert sorted(zf.namelist()) == sorted(s.image for s in packed(ds) if s.split == "val")


def test_small_originals_go_into_the_pack_large_ones_are_linked(tmp_path):
    """An original of up to 16 KiB goes into the pack beside its copies; a larger one (a photo)
    is hard-linked, no second copy of its bytes; the same for any number of workers."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    with DatasetWriter(src, task="classification", stage="test", classes=["a", "b"]) as w:
        for i in range(4):
            pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) if i % 2 else np.full((96, 96, 3), 40 * i, np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG")
            w.add(Sample(id=f"s{i}", label="ab"[i % 2], split="train", width=96, height=96), data=buf.getvalue(), ext="png")
    sizes = {s.id: os.path.getsize(src / s.image) for s in load_dataset(src).samples}
    assert sizes["s0"] < 16 * 1024 < sizes["s1"]
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"aug{workers}"
        figures = run_augment(src, RECIPES / "digits.yaml", out, copies=2, pack="auto", workers=workers)
        assert figures["originals_packed"] == 2 and figures["packed"] == 8
        ds = load_dataset(out)
        for s in ds.samples:
            if "~aug" in s.id:
                assert s.pack is not None
            elif sizes[s.id] <= 16 * 1024:
                assert s.pack is not None and sha(ds.read_image_bytes(s)) == s.sha256
            else:
                assert s.pack is None and os.stat(out / s.image).st_ino == os.stat(src / s.image).st_ino
        outs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "dataset.json"})
    assert outs[0] == outs[1]


@pytest.mark.parametrize(("mode", "size", "packs"), [("never", 28, False), ("auto", 28, True), ("auto", 1024, True),
                                                     ("auto", 1025, False)])
def test_pack_modes(tmp_path, mode, size, packs):
    src = make_classification_dataset(tmp_path / "src", classes=2, per_class=1, size=size, splits=None)
    run_augment(src, RECIPES / "digits.yaml", tmp_path / "aug", copies=1, splits=["all"], pack=mode)
    ds = load_dataset(tmp_path / "aug")
    copies = [s for s in ds.samples if "~aug" in s.id]
    assert len(copies) == 2
    assert all((s.pack is not None) == packs for s in copies)
    assert bool(pack_files(ds.root)) == packs
    assert all((ds.root / s.image).is_file() != packs for s in copies)
    assert all(sha(ds.read_image_bytes(s)) == s.sha256 for s in copies)


# --------------------------------------------------------------------------------------------
# Stages that read packed images
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "fmt"), [("packed_cls", "imagefolder"), ("packed_det", "yolo"),
                                              ("packed_det", "coco"), ("packed_det", "voc"),
                                              ("packed_det", "labelme"), ("packed_det", "createml")])
def test_export_writes_real_image_files(request, tmp_path, fixture, fmt):
    ds = load_dataset(request.getfixturevalue(fixture))
    assert packed(ds)
    export_dataset(ds.root, fmt, tmp_path / "out")
    images = [p for p in (tmp_path / "out").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    assert all(p.is_file() and not p.is_symlink() for p in images)
    assert not list((tmp_path / "out").rglob("*.zip"))
    hashes = []
    for p in images:
        with Image.open(p) as img:
            img.load()
            assert img.size in {(s.width, s.height) for s in ds.samples}
        hashes.append(sha(p.read_bytes()))
    assert sorted(hashes) == sorted(s.sha256 for s in ds.samples)
    written = {p.read_bytes() for p in images}
    assert all(ds.read_image_bytes(s) in written for s in packed(ds))


def test_tensor_cache_reads_a_packed_dataset(packed_cls, tmp_path, monkeypatch):
    from pipeline.tensor_cache import load_or_build, to_array

    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    ds = load_dataset(packed_cls)
    cache = load_or_build(ds, size=32, grayscale=True, workers=2)
    assert cache.ids == [s.id for s in ds.samples]
    rows = {s.id: i for i, s in enumerate(ds.samples)}
    for s in packed(ds):
        expected = to_array(Image.open(io.BytesIO(ds.read_image_bytes(s))), 32)
        np.testing.assert_array_equal(cache.images[rows[s.id]], expected)
        assert cache.labels[rows[s.id]] == ds.classes.index(s.label)
    first, second = packed(ds)[:2]
    assert not np.array_equal(cache.images[rows[first.id]], cache.images[rows[second.id]])


def test_crop_reads_packed_images(packed_det, tmp_path):
    from pipeline.crop import crop_dataset

    ds = load_dataset(packed_det)
    assert any(s.objects for s in packed(ds))
    plain = unpacked_copy(packed_det, tmp_path / "plain")
    from_packs, _ = crop_dataset(ds, tmp_path / "crops")
    from_files, _ = crop_dataset(plain, tmp_path / "crops-plain")
    assert [(c.id, c.sha256) for c in from_packs.samples] == [(c.id, c.sha256) for c in from_files.samples]
    parents = {s.id for s in packed(ds) if s.objects}
    assert {c.id.rsplit("/", 1)[0] for c in from_packs.samples} >= parents


def test_preview_draws_packed_images(packed_cls, tmp_path):
    from pipeline.viz import dataset_preview

    root = Path(shutil.copytree(packed_cls, tmp_path / "ds"))
    ds = load_dataset(root)
    sheet, chosen = dataset_preview(ds, n=len(ds.samples), tile=32)
    assert {s.id for s in packed(ds)} <= {s.id for s in chosen}
    (root / pack_name("augment", 0)).write_bytes(b"")  # unreadable packed images are drawn as error tiles
    broken, _ = dataset_preview(ds, n=len(ds.samples), tile=32)
    assert broken.size == sheet.size and broken.tobytes() != sheet.tobytes()
