"""The contract every annotation format module meets, as one reusable test class.

A format's test module subclasses `FormatContract`, names the format and what it can hold, and
gets the same tests as every other format: detection (and `--format auto` picking it), import of
hand-written golden files with exact objects, export -> import round trips (boxes within 0.5 px,
polygons where the format holds them), detection of nothing in a folder of something else, and
the module's declared interface. Samples are matched across formats by image content (sha256):
ids change with the file names a format writes, the pixels do not.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import formats
from pipeline.core.dataset import Dataset, DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.images import encode_png
from pipeline.formats.ingest import detect_format, export_dataset, import_dataset

TOL = 0.5  # pixels a box corner may move through a round trip

# Content a format may hold; a subclass lists its own in CAN.
BOXES, POLYGONS, MASKS, SPLITS, EMPTY = "boxes", "polygons", "masks", "splits", "empty images"


def _image(w: int, h: int, seed: int, mode: str = "RGB") -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    return encode_png(img.convert(mode))


def make_source(root: Path, can: set[str], nested: bool = True) -> Dataset:
    """A small detection dataset with what `can` lists: non-ASCII ids, a box touching every edge,
    fractional coordinates, an image without objects, a grayscale image, splits; with `nested`,
    one id in a sub-folder (``sub/img-004``)."""
    polys = POLYGONS in can
    masks = MASKS in can

    def obj(label: str, box: list[float], ring: list[list[float]] | None = None) -> Obj:
        o = Obj(label=label, bbox=box)
        if polys and ring is not None:
            o.polygon = [ring]
        return o

    samples = [
        (Sample(id="img-001", width=64, height=48, split="train", objects=[
            obj("cat", [4.0, 6.0, 30.0, 40.0], [[4.0, 6.0], [30.0, 6.0], [30.0, 40.0], [4.0, 40.0]]),
            obj("dog", [10.25, 5.5, 30.75, 20.0], [[10.25, 5.5], [30.75, 12.0], [20.0, 20.0]]),
        ]), _image(64, 48, 1)),
        (Sample(id="ünïcödé-002", width=40, height=30, split="val", objects=[
            obj("dog", [0.0, 0.0, 40.0, 30.0]),  # the whole image: touches every edge
        ]), _image(40, 30, 2, "L")),
        (Sample(id="img-003", width=32, height=32, split="train", objects=[]), _image(32, 32, 3)),
        (Sample(id="sub/img-004" if nested else "img-004", width=50, height=60, split="test" if SPLITS in can else "train", objects=[
            obj("cat", [1.5, 2.5, 48.5, 59.5], [[1.5, 2.5], [48.5, 2.5], [25.0, 59.5]]),
        ]), _image(50, 60, 4)),
    ]
    if EMPTY not in can:
        samples = [(s, d) for s, d in samples if s.objects]
    if masks:
        m = np.zeros((48, 64), bool)
        m[20:30, 40:60] = True
        m[22:25, 45:50] = False  # a hole, which polygons cannot express
        from pipeline.core.geometry import mask_bbox, rle_encode

        samples[0][0].objects.append(Obj(label="cat", bbox=mask_bbox(m), mask=rle_encode(m),
                                         attributes={"iscrowd": 1}))
    if SPLITS not in can:
        for s, _ in samples:
            s.split = None
    with DatasetWriter(root, task="detection", stage="test-fixture", classes=["cat", "dog"]) as w:
        for s, data in samples:
            w.add(s, data=data, ext="png")
    return load_dataset(root)


def by_content(ds: Dataset) -> dict[str, Sample]:
    out = {s.sha256: s for s in ds.samples}
    assert len(out) == len(ds.samples), "fixture images must differ"
    return out


def box_close(a: list[float] | None, b: list[float] | None, tol: float = TOL) -> bool:
    if a is None or b is None:
        return a is b
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def _key(o: Obj) -> tuple:
    return (o.label, [round(v) for v in (o.bbox or [0, 0, 0, 0])])


def assert_same_objects(a: Dataset, b: Dataset, *, polygons: bool = False, masks: bool = False,
                        splits: bool = False, tol: float = TOL) -> None:
    """Same images, sizes, splits (when held) and objects: labels, boxes within `tol`, polygons, masks."""
    sa, sb = by_content(a), by_content(b)
    assert sorted(sa) == sorted(sb), "the same images on both sides"
    for digest, s in sa.items():
        t = sb[digest]
        assert (s.width, s.height) == (t.width, t.height), s.id
        if splits:
            assert s.split == t.split, (s.id, s.split, t.split)
        oa = sorted(s.objects or [], key=_key)
        ob = sorted(t.objects or [], key=_key)
        assert len(oa) == len(ob), (s.id, oa, ob)
        for x, y in zip(oa, ob, strict=True):
            assert x.label == y.label, s.id
            assert box_close(x.bbox, y.bbox, tol), (s.id, x.bbox, y.bbox)
            if polygons and x.polygon:
                assert y.polygon is not None and len(x.polygon) == len(y.polygon), (s.id, y)
                for ra, rb in zip(x.polygon, y.polygon, strict=True):
                    assert len(ra) == len(rb)
                    assert all(math.dist(p, q) <= tol for p, q in zip(ra, rb, strict=True)), (ra, rb)
            if masks and x.mask is not None:
                from pipeline.core.geometry import rle_decode

                assert y.mask is not None, s.id
                assert np.array_equal(rle_decode(x.mask), rle_decode(y.mask)), s.id


class FormatContract:
    """Subclass as ``class TestVocContract(FormatContract): FORMAT = "voc"; CAN = {...}``."""

    FORMAT: str = ""
    CAN: set[str] = {BOXES}
    OTHERS: tuple[str, ...] = ()  # formats to round-trip through as well (FORMAT -> other -> FORMAT)

    def golden(self, folder: Path) -> dict[str, list[tuple[str, list[float]]]]:
        """Write hand-made files of the format into `folder`; return {image file stem: [(label, bbox)]}."""
        raise NotImplementedError

    # -- the module -----------------------------------------------------------------------
    def test_module_interface(self) -> None:
        module = formats.get(self.FORMAT)
        assert module.NAME == self.FORMAT
        assert module.TASK in ("classification", "detection", "segmentation")
        for fn in ("detect", "read", "write"):
            assert callable(getattr(module, fn)), fn
        assert module.__doc__ and len(module.__doc__) > 80

    def test_detect_nothing_in_an_unrelated_folder(self, tmp_path: Path) -> None:
        (tmp_path / "notes.txt").write_text("hello\n")
        (tmp_path / "data.csv").write_text("a,b\n1,2\n")
        assert formats.get(self.FORMAT).detect(tmp_path) is None

    # -- golden files -------------------------------------------------------------------------
    def test_golden_files(self, tmp_path: Path) -> None:
        src = tmp_path / "src"
        src.mkdir()
        expected = self.golden(src)
        ds, report = import_dataset(self.FORMAT, src, tmp_path / "ds")
        assert not report.problems, [str(p) for p in report.problems]
        got = {Path(s.source.get("image") or s.source.get("file") or s.id).stem: s for s in ds.samples}
        for stem, objs in expected.items():
            assert stem in got, (stem, sorted(got))
            have = sorted(((o.label, o.bbox) for o in got[stem].objects or []), key=str)
            want = sorted(objs, key=str)
            assert len(have) == len(want), (stem, have, want)
            for (la, ba), (lb, bb) in zip(have, want, strict=True):
                assert la == lb and box_close(ba, bb, 1e-6), (stem, have, want)

    # -- export, detect, import ---------------------------------------------------------------
    def test_detect_own_export(self, tmp_path: Path) -> None:
        src = make_source(tmp_path / "src", self.CAN)
        export_dataset(src.root, self.FORMAT, tmp_path / "out")
        assert formats.get(self.FORMAT).detect(tmp_path / "out") is not None
        assert detect_format(tmp_path / "out")[0] == self.FORMAT

    def test_round_trip(self, tmp_path: Path) -> None:
        src = make_source(tmp_path / "src", self.CAN)
        export_dataset(src.root, self.FORMAT, tmp_path / "out")
        back, report = import_dataset(self.FORMAT, tmp_path / "out", tmp_path / "back")
        assert not report.problems, [str(p) for p in report.problems]
        assert back.classes == src.classes
        assert_same_objects(src, back, polygons=POLYGONS in self.CAN, masks=MASKS in self.CAN,
                            splits=SPLITS in self.CAN)

    def test_import_export_import_keeps_sample_ids(self, tmp_path: Path) -> None:
        """Ids derive from the path under SRC and exports keep the source's names, so the golden
        files, imported, exported and imported again, give the same ids for the same images."""
        src = tmp_path / "src"
        src.mkdir()
        self.golden(src)
        first, _ = import_dataset(self.FORMAT, src, tmp_path / "first")
        export_dataset(first.root, self.FORMAT, tmp_path / "out")
        back, report = import_dataset(self.FORMAT, tmp_path / "out", tmp_path / "back")
        assert not report.problems, [str(p) for p in report.problems]
        assert sorted(s.id for s in back.samples) == sorted(s.id for s in first.samples)
        by_image = {s.sha256: s.id for s in first.samples}
        if len(by_image) == len(first.samples):  # (golden images of distinct bytes: each keeps its own id)
            assert {s.sha256: s.id for s in back.samples} == by_image

    def test_round_trip_through_other_formats(self, tmp_path: Path) -> None:
        available = set(formats.available())
        others = [f for f in self.OTHERS if f in available]
        if not others:
            pytest.skip("no other format module holds the same content")
        src = make_source(tmp_path / "src", self.CAN)
        for other in others:
            export_dataset(src.root, other, tmp_path / f"{other}-out")
            mid, _ = import_dataset(other, tmp_path / f"{other}-out", tmp_path / f"{other}-ds")
            export_dataset(mid.root, self.FORMAT, tmp_path / f"{other}-again")
            back, report = import_dataset(self.FORMAT, tmp_path / f"{other}-again", tmp_path / f"{other}-back")
            assert not report.problems, (other, [str(p) for p in report.problems])
            assert_same_objects(src, back)


def supervision_boxes(theirs, src: Dataset) -> int:
    """Check that a dataset read by supervision (an independent reader) holds our boxes and labels
    for each of its images; returns how many boxes it held."""
    n = 0
    for path, _img, det in theirs:
        s = next(s for s in src.samples if Path(path).stem.endswith(Path(s.image).stem.rsplit("/", 1)[-1]))
        want = sorted((o.label, o.bbox) for o in s.objects)
        got = sorted((theirs.classes[c], list(map(float, b))) for b, c in zip(det.xyxy, det.class_id, strict=True))
        assert [g[0] for g in got] == [w[0] for w in want]
        if want:
            assert np.allclose([g[1] for g in got], [w[1] for w in want], atol=0.5), (got, want)
        n += len(got)
    return n
