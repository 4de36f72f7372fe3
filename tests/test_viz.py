"""Drawing labels: geometry lands where the labels say, inputs are never modified, sheets lay out by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.dataset import Obj, Sample, load_dataset
from pipeline.viz import choose_samples, class_color, contact_sheet, dataset_preview, draw_sample
from tests.helpers import make_detection_dataset


def _black(w: int = 100, h: int = 50) -> Image.Image:
    return Image.new("RGB", (w, h), (0, 0, 0))


def test_box_drawn_on_its_edges_in_the_class_colour() -> None:
    img = _black()
    before = np.asarray(img).copy()
    out = draw_sample(img, Sample(id="s", width=100, height=50, objects=[Obj("b", bbox=[40, 20, 80, 45])]),
                      ["a", "b"], size=None)
    assert np.array_equal(np.asarray(img), before)  # the input is untouched
    arr = np.asarray(out)
    assert tuple(arr[30, 40]) == class_color(1) and tuple(arr[45, 60]) == class_color(1)
    assert tuple(arr[30, 60]) == (0, 0, 0)  # inside the box stays clear
    assert tuple(arr[30, 20]) == (0, 0, 0)


def test_polygon_keypoints_polyline_and_scaling() -> None:
    objs = [Obj("a", polygon=[[[10, 10], [30, 10], [30, 30], [10, 30]]]),
            Obj("a", keypoints=[[70, 40, 2], [90, 5, 0]]),
            Obj("a", polyline=[[50, 2], [50, 48]])]
    out = np.asarray(draw_sample(_black(), Sample(id="s", width=100, height=50, objects=objs), ["a"], size=200))
    assert out.shape == (100, 200, 3)  # scaled 2x
    c = np.array(class_color(0))
    assert out[40, 40].sum() > 0 and not np.array_equal(out[40, 40], c)  # polygon filled translucently
    assert np.array_equal(out[80, 140], c)  # visible keypoint at (70, 40) * 2
    assert out[10, 180].sum() == 0  # absent keypoint (v=0) not drawn
    assert np.array_equal(out[60, 100], c)  # the line at x=50 * 2


def test_mask_blended_in_class_colour() -> None:
    from pipeline.core.geometry import rle_encode

    mask = np.zeros((50, 100), dtype=bool)
    mask[5:15, 60:90] = True
    out = np.asarray(draw_sample(_black(), Sample(id="s", width=100, height=50,
                                                  objects=[Obj("a", mask=rle_encode(mask), bbox=[60, 5, 90, 15])]),
                                 ["a"], size=None))
    assert out[10, 75].sum() > 0 and out[30, 30].sum() == 0


def test_contact_sheet_rows_fit_their_images() -> None:
    tiles = [_black(200, 100), _black(200, 100), _black(100, 200)]
    sheet = contact_sheet(tiles, ["a", "b", "c"], cols=2, tile=100, pad=4)
    # row 1: two 100x50 tiles; row 2: one 50x100 tile; each row also holds a caption line
    assert sheet.size == (2 * 104 + 4, 4 + (50 + 16 + 4) + (100 + 16 + 4))


def test_choose_samples_is_seeded_and_filtered(tmp_path: Path) -> None:
    ds = load_dataset(make_detection_dataset(tmp_path / "d", n=6))
    a = choose_samples(ds.samples, n=3, seed=1)
    assert [s.id for s in a] == [s.id for s in choose_samples(ds.samples, n=3, seed=1)]
    assert [s.id for s in a] == sorted(s.id for s in a)
    assert all(s.split == "val" for s in choose_samples(ds.samples, n=5, split="val"))
    assert len(choose_samples(ds.samples, n=50)) == 6


def test_dataset_preview_marks_unreadable_images(tmp_path: Path) -> None:
    ds = load_dataset(make_detection_dataset(tmp_path / "d", n=2))
    ds.image_path(ds.samples[0]).write_bytes(b"not an image")
    sheet, shown = dataset_preview(ds, n=2, tile=64)
    assert len(shown) == 2 and sheet.size[0] >= 2 * 64


def _sixteen_bit_png(path: Path) -> np.ndarray:
    """A 64x32 16-bit grey PNG (mode I;16) whose values all lie above 255: a ramp 1000..61000."""
    ramp = np.linspace(1000, 61000, 64).astype(np.uint16)
    arr = np.tile(ramp, (32, 1))
    Image.fromarray(arr).save(path)
    with Image.open(path) as check:
        assert check.mode in ("I;16", "I")
    return arr


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    _sixteen_bit_png(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        drawn = np.asarray(draw_sample(img, None, size=None))
    row = drawn[16, :, 0].astype(int)
    assert row.min() == 0 and row.max() == 255  # the darkest value black, the brightest white
    assert (np.diff(row) >= 0).all() and len(set(row.tolist())) > 32  # the ramp survives
    sheet = np.asarray(contact_sheet([Image.open(tmp_path / "deep.png")], tile=64))
    assert len(set(sheet[:, :, 0].ravel().tolist())) > 32  # not one white block


def test_preview_command_scales_a_sixteen_bit_dataset(tmp_path: Path) -> None:
    from pipeline.core.dataset import DatasetWriter
    from tests.helpers import invoke

    _sixteen_bit_png(tmp_path / "deep.png")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="test", classes=["x"]) as w:
        w.add(Sample(id="deep", label="x", width=64, height=32), src=tmp_path / "deep.png")
    result = invoke("preview", tmp_path / "ds", "--out", tmp_path / "sheet.png", "--tile", "64")
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("L"))
    title_h = 22
    tile = sheet[title_h + 4:title_h + 4 + 32, 4:4 + 64]  # the image, below the title, inside the padding
    values = sorted(set(tile.ravel().tolist()))
    assert values[0] < 10 and values[-1] > 245 and len(values) > 32
def test_reconstruction_sheet_puts_reconstructions_under_their_originals():
    from pipeline.viz import reconstruction_sheet

    originals = np.zeros((3, 1, 8, 8), dtype=np.uint8)
    recon = np.full((3, 1, 8, 8), 255, dtype=np.uint8)
    before = recon.copy()
    sheet = reconstruction_sheet(originals, recon, tile=16)
    arr = np.asarray(sheet.convert("L"))
    assert sheet.size == (3 * 20 + 4, 2 * 20 + 4)  # 3 columns, 2 rows of 16-pixel tiles with 4-pixel gaps
    assert arr[4 + 8, 4 + 8] == 0 and arr[4 + 20 + 8, 4 + 8] == 255
    assert np.array_equal(recon, before)  # inputs untouched
    with pytest.raises(ValueError, match="3 originals but 2"):
        reconstruction_sheet(originals, recon[:2])


def test_confusion_image_shades_rows_by_share():
    from pipeline.viz import confusion_image

    cm = np.array([[9, 1], [0, 10]])
    img = confusion_image(cm, ["cat", "dog"], cell=20)
    arr = np.asarray(img)
    side = img.size[0]
    margin = side - 2 - 2 * 20
    assert img.size[0] == img.size[1] and img.mode == "RGB"
    dark, light = arr[margin + 2, margin + 2], arr[margin + 2, margin + 20 + 2]  # (cat, cat) 90 %, (cat, dog) 10 %
    assert dark[0] < light[0] and dark[2] == light[2] == 255
