"""One pixel limit, everywhere: a 30000 x 30000 PNG of about a hundred KB (900 million pixels)
through every importer (VOC, YOLO, CreateML, labelme files and embedded imageData, COCO,
ImageFolder, tables, loose images) and every stage that decodes images (fetch, crawl, check,
preview, crop, augment, train) is refused from its header with the one-line message, as a bad
file where the stage reads many (the rest still come in), with exit code 2 where the command
cannot go on. `--max-pixels` moves the limit on every command that reads images."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, max_pixels, set_max_pixels
from pipeline.formats.ingest import import_images
from tests.bombs import bomb_png
from tests.formats.test_safe_files import FORMATS, H, W, _import
from tests.helpers import png, run_cli, zipped

MESSAGE = "image of 30000x30000 = 900,000,000 pixels, over the limit of 89,478,485 pixels (a decompression bomb?)"
FIX = "Fix: check the file; if you trust it, raise the limit with --max-pixels N"


@pytest.fixture(autouse=True)
def default_limit():
    """Each test starts at the default limit; whatever a command set is undone after it."""
    before, env = max_pixels(), os.environ.get(MAX_PIXELS_ENV)
    set_max_pixels(DEFAULT_MAX_PIXELS)
    yield
    set_max_pixels(before)
    if env is None:
        os.environ.pop(MAX_PIXELS_ENV, None)
    else:
        os.environ[MAX_PIXELS_ENV] = env


def _one_bomb_problem(problems: list[str], name: str = "b") -> str:
    assert len(problems) == 1, problems
    text = problems[0]
    assert MESSAGE in text and FIX in text and name in text and "\n" not in text
    return text


# --------------------------------------------------------------------------------------------
# Every importer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_bomb_image_file_through_every_format(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "src"
    root.mkdir()
    write, folder = FORMATS[fmt]
    write(root, "a")
    write(root, "b")
    (root / folder).mkdir(exist_ok=True)
    (root / folder / "a.png").write_bytes(png(W, H))
    (root / folder / "b.png").write_bytes(bomb_png())
    ids, _skipped, _warnings, problems = _import(fmt, root, tmp_path / "out")
    assert [i.rsplit("/", 1)[-1] for i in ids] == ["a"]  # the good file next to the bomb came in
    _one_bomb_problem(problems)


def _labelme_doc(image_path: str | None, data: bytes | None, shapes: list | None = None) -> str:
    return json.dumps({"version": "5.0.1", "flags": {}, "imagePath": image_path,
                       "imageData": base64.b64encode(data).decode() if data is not None else None,
                       "imageHeight": 30000, "imageWidth": 30000,
                       "shapes": shapes if shapes is not None else [
                           {"label": "cat", "points": [[2, 2], [6, 6]], "shape_type": "rectangle", "flags": {}}]})


def test_bomb_in_labelme_image_data(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    FORMATS["labelme"][0](root, "a")
    (root / "a.png").write_bytes(png(W, H))
    (root / "b.json").write_text(_labelme_doc(None, bomb_png()))  # embedded only, no file
    ids, _s, _w, problems = _import("labelme", root, tmp_path / "out")
    assert ids == ["a"]
    text = _one_bomb_problem(problems)
    assert "b.json: imageData: embedded image: " in text


def test_bomb_in_a_labelme_mask(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    FORMATS["labelme"][0](root, "a")
    (root / "a.png").write_bytes(png(W, H))
    (root / "b.png").write_bytes(png(W, H))
    mask = {"label": "cat", "points": [[0, 0], [5, 5]], "shape_type": "mask",
            "mask": base64.b64encode(bomb_png()).decode(), "flags": {}}
    doc = json.loads(_labelme_doc("b.png", None, [mask]))
    doc["imageHeight"], doc["imageWidth"] = H, W
    (root / "b.json").write_text(json.dumps(doc))
    ids, _s, _w, problems = _import("labelme", root, tmp_path / "out")
    assert ids == ["a"]
    _one_bomb_problem(problems)


def test_bomb_in_a_parquet_table(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.formats.ingest import import_any

    root = tmp_path / "src"
    root.mkdir()
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": png(W, H), "path": "a.png"},
                                         {"bytes": bomb_png(), "path": "b.png"}], type=image),
                      "label": pa.array([0, 1])})
    pq.write_table(table, root / "train.parquet")
    outcome = import_any(root, tmp_path / "out", stage="fetch", params={}, inputs={})
    assert outcome.imported == 1
    _one_bomb_problem([str(p) for p in outcome.problems], "row 1")


def test_bomb_among_loose_images(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png(W, H))
    (tmp_path / "b.png").write_bytes(bomb_png())
    outcome = import_images([(tmp_path / "a.png", {"url": "a"}), (tmp_path / "b.png", {"url": "b"})],
                            tmp_path / "out", stage="crawl", params={}, inputs={})
    assert outcome.imported == 1
    _one_bomb_problem([str(p) for p in outcome.problems])


# --------------------------------------------------------------------------------------------
# Every stage, on the command line
# --------------------------------------------------------------------------------------------


def _dataset(root: Path, *, detection: bool) -> Path:
    """A good sample and a bomb, written as a dataset (as an import with --max-pixels none would)."""
    task = "detection" if detection else "classification"
    with DatasetWriter(root, task=task, stage="test", classes=["cat", "dog"]) as w:
        for sid, label, data, (w_, h_) in (("a", "cat", png(W, H), (W, H)), ("b", "dog", bomb_png(), (30000, 30000))):
            objects = [Obj(label=label, bbox=[1.0, 1.0, 6.0, 6.0])] if detection else None
            w.add(Sample(id=sid, label=None if detection else label, width=w_, height=h_, objects=objects),
                  data=data, ext="png")
    return root


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = run_cli([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("stage", ["check", "preview", "crop"])
def test_stages_report_the_bomb_and_go_on(tmp_path: Path, capsys, stage: str) -> None:
    ds = _dataset(tmp_path / "ds", detection=True)
    out = tmp_path / ("sheet.png" if stage == "preview" else "out")
    args = {"check": ["check", ds], "preview": ["preview", ds, "--out", out], "crop": ["crop", ds, "--out", out]}[stage]
    code, stdout, stderr = _cli(capsys, *args)
    assert code == 0, stderr
    assert MESSAGE in stdout + stderr
    assert "Traceback" not in stderr and "DecompressionBomb" not in stdout + stderr
    if stage == "crop":
        assert [s.id for s in load_dataset(out).samples] == ["a/0"]


@pytest.mark.parametrize("stage", ["augment", "train"])
def test_stages_that_cannot_go_on_exit_2_with_one_line(tmp_path: Path, capsys, stage: str) -> None:
    ds = _dataset(tmp_path / "ds", detection=False)
    recipe = Path(__file__).resolve().parents[1] / "configs" / "augment" / "digits.yaml"
    args = {"augment": ["augment", ds, "--recipe", recipe, "--out", tmp_path / "out", "--splits", "all"],
            "train": ["train", ds, "--out", tmp_path / "run", "--epochs", "1", "--device", "cpu"]}[stage]
    code, stdout, stderr = _cli(capsys, *args)
    assert code == 2, (stdout, stderr)
    lines = [ln for ln in stderr.splitlines() if MESSAGE in ln]
    assert len(lines) == 1 and FIX in lines[0] and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_stats_reads_no_pixels(tmp_path: Path, capsys) -> None:
    ds = _dataset(tmp_path / "ds", detection=True)
    code, stdout, stderr = _cli(capsys, "stats", ds)
    assert code == 0 and MESSAGE not in stdout + stderr  # counts only: the bomb is never opened


def test_fetch_and_crawl_refuse_the_bomb_and_keep_the_rest(tmp_path: Path, capsys) -> None:
    from tests.sources.servers import LocalServer, Route

    tree = zipped({"photos/cat/a.png": png(W, H), "photos/dog/b.png": bomb_png(), "photos/dog/c.png": png(W, H)})
    page = b'<!doctype html><html><body><img src="/a.png"><img src="/b.png"></body></html>'
    with LocalServer() as srv:
        srv.routes["/photos.zip"] = Route(tree, content_type="application/zip")
        srv.routes["/index.html"] = Route(page, content_type="text/html")
        srv.routes["/robots.txt"] = Route(b"User-agent: *\nAllow: /\n", content_type="text/plain")
        srv.routes["/a.png"] = Route(png(W, H), content_type="image/png")
        srv.routes["/b.png"] = Route(bomb_png(), content_type="image/png")
        code, stdout, stderr = _cli(capsys, "fetch", "url", srv.url("/photos.zip"), "--out", tmp_path / "f",
                                    "--allow-private", "--rate", "0", "--retries", "0")
        assert code == 0, stderr
        assert MESSAGE in stderr and sorted(s.id for s in load_dataset(tmp_path / "f").samples) == ["cat/a", "dog/c"]
        code, stdout, stderr = _cli(capsys, "crawl", srv.url("/index.html"), "--out", tmp_path / "c",
                                    "--allow-private", "--rate", "0", "--retries", "0")
        assert code == 0, stderr
        assert MESSAGE in stderr and len(load_dataset(tmp_path / "c").samples) == 1


# --------------------------------------------------------------------------------------------
# --max-pixels
# --------------------------------------------------------------------------------------------

READERS = ["import", "check", "preview", "crop", "augment", "train", "validate", "predict", "crawl"]


@pytest.mark.parametrize("command", READERS + ["fetch url", "fetch hf", "fetch kaggle"])
def test_every_command_that_reads_images_has_the_option(capsys, command: str) -> None:
    code, stdout, _ = _cli(capsys, *command.split(), "--help")
    assert code == 0 and "--max-pixels" in stdout and "89478485" in stdout


def test_max_pixels_moves_the_limit_for_one_command(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    for name in ("cat", "dog"):
        (src / name).mkdir(parents=True)
        (src / name / "a.png").write_bytes(png(W, H))  # 200 pixels each
    code, _, stderr = _cli(capsys, "import", "imagefolder", src, "--out", tmp_path / "low", "--max-pixels", "199")
    assert code == 2 and "image of 20x10 = 200 pixels, over the limit of 199 pixels" in stderr
    assert not (tmp_path / "low").exists()
    code, _, stderr = _cli(capsys, "import", "imagefolder", src, "--out", tmp_path / "ok", "--max-pixels", "200")
    assert code == 0, stderr
    code, _, stderr = _cli(capsys, "import", "imagefolder", src, "--out", tmp_path / "none", "--max-pixels", "none")
    assert code == 0, stderr
    assert max_pixels() is None and os.environ[MAX_PIXELS_ENV] == "0"
    code, _, stderr = _cli(capsys, "check", tmp_path / "ok")  # the next command: the default again
    assert code == 0 and max_pixels() == DEFAULT_MAX_PIXELS


def test_max_pixels_reaches_stages(tmp_path: Path, capsys) -> None:
    ds = _dataset(tmp_path / "ds", detection=True)
    code, stdout, stderr = _cli(capsys, "check", ds, "--max-pixels", "100")
    assert code == 0 and "image of 20x10 = 200 pixels, over the limit of 100 pixels" in stdout + stderr


@pytest.mark.parametrize("value", ["lots", "-1", "1.5"])
def test_bad_max_pixels_is_a_usage_error(tmp_path: Path, capsys, value: str) -> None:
    code, _, stderr = _cli(capsys, "check", tmp_path, "--max-pixels", value)
    assert code == 2 and "--max-pixels" in stderr and "Traceback" not in stderr
