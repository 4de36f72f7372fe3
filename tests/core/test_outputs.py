"""The one output rule (`pipeline.core.outputs`): the rule itself, then every writing command
pointed at the user's own data through the real CLI (exit 2, one line, nothing touched)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from pipeline.core import outputs
from pipeline.core.dataset import DatasetWriter, load_dataset, replace_dir
from pipeline.core.errors import UsageError
from tests.helpers import closed_port_url, make_classification_dataset, make_detection_dataset, png, run_cli


def tree_hash(root: Path) -> str:
    """One hash over every file (path, mode, bytes) and folder under `root`."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """`pipeline ARGS` through the real entry point: (exit status, stderr)."""
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))

    def run(*args: object) -> tuple[int, str]:
        capsys.readouterr()
        code = run_cli([str(a) for a in args])
        return code, capsys.readouterr().err

    return run


def refused(result: tuple[int, str], *words: str) -> bool:
    code, err = result
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    return code == 2 and len(lines) == 1 and "Fix:" in lines[0] and all(w in lines[0] for w in words)


# ----------------------------------------------------------------------------------------------
# The rule
# ----------------------------------------------------------------------------------------------


def test_a_free_or_empty_folder_is_claimed_and_an_earlier_output_only_with_overwrite(tmp_path):
    assert outputs.claim_dir(tmp_path / "new", "dataset") is False
    (tmp_path / "empty").mkdir()
    assert outputs.claim_dir(tmp_path / "empty", "export") is False
    ds = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    with pytest.raises(UsageError, match="already holds a pipeline dataset.*add --overwrite"):
        outputs.claim_dir(ds, "dataset")
    assert outputs.claim_dir(ds, "dataset", overwrite=True) is True


@pytest.mark.parametrize("kind, what", [("export", "an export"), ("run", "a run"),
                                        ("issues", "a label-issues report")])  # another kind is never replaced
def test_a_dataset_is_never_replaced_by_another_kind(tmp_path, kind, what):
    ds = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    with pytest.raises(UsageError, match=f"holds a pipeline dataset; refusing to replace it with {what}"):
        outputs.claim_dir(ds, kind, overwrite=True)


def test_a_label_issues_report_holds_only_what_label_issues_writes(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    for name in ("issues.json", "issues.csv", "probs.npy", "folds.json"):
        (report / name).write_text("{}")
    assert outputs.kind_of(report) == "issues"
    assert outputs.claim_dir(report, "issues", overwrite=True) is True
    with pytest.raises(UsageError, match="holds a label-issues report; refusing to replace it with a dataset"):
        outputs.claim_dir(report, "dataset", overwrite=True)
    (report / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="also 'notes.txt'"):
        outputs.claim_dir(report, "issues", overwrite=True)


def test_inputs_and_folders_holding_or_inside_them_are_refused(tmp_path):
    ds = make_classification_dataset(tmp_path / "data" / "ds", classes=2, per_class=1)
    for out, words in [(ds, "is an input"), (tmp_path / "data", "holds the input"), (tmp_path, "holds the input"),
                       (ds / "images", "lies inside the dataset"), (ds / "new" / "deeper", "lies inside the dataset")]:
        with pytest.raises(UsageError, match=words):
            outputs.claim_dir(out, "dataset", reads=[ds], overwrite=True)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "data")
    with pytest.raises(UsageError, match="is an input"):  # the same folder under another name
        outputs.claim_dir(link / "ds", "dataset", reads=[ds], overwrite=True)
    with pytest.raises(UsageError, match="symbolic link"):
        outputs.claim_dir(link, "export", overwrite=True)


def test_a_dataset_or_export_with_files_its_writer_did_not_write_is_kept(tmp_path):
    ds = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    (ds / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="'notes.txt', which its writer did not write"):
        outputs.claim_dir(ds, "dataset", overwrite=True)
    (ds / "notes.txt").unlink()
    (ds / ".git").mkdir()  # hidden, but not the writer's
    with pytest.raises(UsageError, match="'.git'"):
        outputs.claim_dir(ds, "dataset", overwrite=True)
    (ds / ".git").rmdir()
    (ds / "images" / "mine.png").write_bytes(png())  # beside the images, named by no sample
    with pytest.raises(UsageError, match="'images/mine.png'"):
        outputs.claim_dir(ds, "dataset", overwrite=True)
    (ds / "images" / "mine.png").unlink()
    assert outputs.claim_dir(ds, "dataset", overwrite=True) is True
    export = tmp_path / "export"
    (export / "a").mkdir(parents=True)
    (export / "a" / "x.txt").write_text("x")
    outputs.write_export_marker(export, fmt="voc", source=ds)
    assert outputs.claim_dir(export, "export", overwrite=True) is True
    (export / "a" / "y.txt").write_text("mine")
    with pytest.raises(UsageError, match="'a/y.txt'"):
        outputs.claim_dir(export, "export", overwrite=True)


def test_report_files(tmp_path):
    ds = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    outputs.claim_file(tmp_path / "new.png", "preview", reads=[ds])
    with pytest.raises(UsageError, match="lies inside the dataset"):
        outputs.claim_file(ds / "sheet.png", "preview", reads=[ds])
    plain = tmp_path / "plain.png"
    plain.write_bytes(png())
    with pytest.raises(UsageError, match="is not a preview written by `pipeline preview`"):
        outputs.claim_file(plain, "preview")
    plain.write_bytes(outputs.mark_png(png(), "preview"))
    outputs.claim_file(plain, "preview")
    with pytest.raises(UsageError, match="not a statistics plot"):  # another command's PNG
        outputs.claim_file(plain, "stats")
    with pytest.raises(UsageError, match="is not a file"):
        outputs.claim_file(ds, "check")


def test_a_marked_png_still_decodes_and_names_its_writer():
    from PIL import Image

    data = outputs.mark_png(png(8, 6), "stats")
    assert outputs.png_software(data) == "pipeline stats" and outputs.png_software(png()) is None
    import io

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.size == (8, 6) and im.info["Software"] == "pipeline stats"


def test_a_kill_between_the_two_renames_puts_the_earlier_output_back(tmp_path):
    out = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    before = tree_hash(out)
    dead = 2 ** 22 + 12345  # (no such pid: above the kernel's pid_max default)
    os.rename(out, out.with_name(f".ds.old-{dead}-abcdef01"))
    (tmp_path / f".ds.tmp-{dead}-abcdef02").mkdir()
    outputs.sweep_stale(out)
    assert tree_hash(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_replace_dir_moves_the_new_folder_in(tmp_path):
    out = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    new = tmp_path / ".ds.tmp-1"
    with DatasetWriter(tmp_path / "other", task="classification", stage="t") as w:
        w.add(load_dataset(out).samples[0], data=png())
    os.rename(tmp_path / "other", new)
    replace_dir(new, out)
    assert len(load_dataset(out).samples) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ----------------------------------------------------------------------------------------------
# Every command, through the CLI
# ----------------------------------------------------------------------------------------------


def test_export_onto_the_parent_of_its_input_deletes_nothing(tmp_path, cli):
    ds = make_detection_dataset(tmp_path / "work" / "ds", n=2)
    (tmp_path / "work" / "beside.txt").write_text("keep")
    before = tree_hash(tmp_path / "work")
    assert refused(cli("export", ds, "--format", "yolo", "--out", tmp_path / "work", "--overwrite"),
                   "holds the input")
    assert refused(cli("export", ds, "--format", "yolo", "--out", ds, "--overwrite"), "is an input")
    assert refused(cli("export", ds, "--format", "yolo", "--out", ds / "yolo"), "lies inside the dataset")
    assert tree_hash(tmp_path / "work") == before


def test_check_never_writes_into_a_dataset_and_replaces_only_its_own_report(tmp_path, cli):
    ds = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2)
    before = tree_hash(ds)
    assert refused(cli("check", ds, "--out", ds / "samples.jsonl"), "lies inside the dataset")
    assert tree_hash(ds) == before
    report = tmp_path / "check.json"
    assert cli("check", ds, "--out", report)[0] == 0
    assert json.loads(report.read_text())["written_by"] == "pipeline check"
    assert cli("check", ds, "--out", report)[0] == 0  # its own earlier report
    mine = tmp_path / "mine.json"
    mine.write_text('{"samples": 1}')
    assert refused(cli("check", ds, "--out", mine), "is not a check report")
    assert mine.read_text() == '{"samples": 1}'


@pytest.mark.parametrize("command", ["preview", "stats"])
def test_preview_and_stats_pngs_follow_the_umask_and_replace_only_their_own(tmp_path, cli, command):
    ds = make_detection_dataset(tmp_path / "ds", n=3)
    before = tree_hash(ds)
    assert refused(cli(command, ds, "--out", ds / "images" / "x.png"), "lies inside the dataset")
    assert tree_hash(ds) == before
    out = tmp_path / "plot.png"
    old = os.umask(0o027)
    try:
        assert cli(command, ds, "--out", out)[0] == 0
        assert cli(command, ds, "--out", out)[0] == 0  # its own earlier output
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    photo = tmp_path / "photo.png"
    photo.write_bytes(png())
    assert refused(cli(command, ds, "--out", photo), "refusing to overwrite it")
    assert photo.read_bytes() == png()


def test_import_onto_an_existing_dataset_needs_overwrite_and_keeps_a_foreign_folder(tmp_path, cli):
    voc = tmp_path / "voc"
    assert cli("export", make_detection_dataset(tmp_path / "det", n=3), "--format", "voc", "--out", voc)[0] == 0
    out = tmp_path / "ds"
    assert cli("import", "voc", voc, "--out", out)[0] == 0
    assert cli("split", out, "--val", "0.5", "--redo")[0] == 0  # a split made in place
    before = tree_hash(out)
    assert refused(cli("import", "voc", voc, "--out", out), "already holds a pipeline dataset", "--overwrite")
    assert tree_hash(out) == before
    assert cli("import", "voc", voc, "--out", out, "--overwrite")[0] == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("keep")
    assert refused(cli("import", "voc", voc, "--out", mine, "--overwrite"), "files no pipeline stage wrote")
    assert refused(cli("import", "voc", voc, "--out", voc, "--overwrite"), "is an input")
    assert refused(cli("import", "voc", voc, "--out", tmp_path, "--overwrite"), "holds the input")
    assert (mine / "a.txt").read_text() == "keep"


@pytest.mark.parametrize("args", [
    ["crop", "{ds}", "--out", "{out}"],
    ["augment", "{ds}", "--recipe", "configs/augment/digits.yaml", "--out", "{out}"],
])
def test_crop_and_augment_need_overwrite_and_never_replace_their_input(tmp_path, cli, args):
    ds = make_detection_dataset(tmp_path / "data" / "ds", n=3)
    out = tmp_path / "out"
    fill = {"ds": str(ds), "out": str(out)}
    argv = [a.format(**fill) for a in args]
    if argv[0] == "augment":
        argv[argv.index("--recipe") + 1] = str(Path(__file__).resolve().parents[2] / "configs/augment/digits.yaml")
    assert cli(*argv)[0] == 0
    before = tree_hash(out)
    assert refused(cli(*argv), "already holds a pipeline dataset", "--overwrite")
    assert tree_hash(out) == before
    assert cli(*argv, "--overwrite")[0] == 0
    inputs = tree_hash(tmp_path / "data")
    parent = [str(tmp_path / "data") if a == str(out) else a for a in argv]
    assert refused(cli(*parent, "--overwrite"), "holds the input")
    assert tree_hash(tmp_path / "data") == inputs


def test_fetch_refuses_an_existing_dataset_before_downloading(tmp_path, cli):
    out = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    before = tree_hash(out)
    assert refused(cli("fetch", "mnist", "--embedded", "--out", out), "already holds a pipeline dataset")
    url = closed_port_url()  # nothing is asked of it: the refusal comes first
    assert refused(cli("fetch", "url", url + "a.zip", "--out", out, "--allow-private"), "already holds")
    assert refused(cli("crawl", url, "--out", out, "--allow-private"), "already holds")
    assert refused(cli("fetch", "url", url + "a.zip", "--out", tmp_path / "new", "--raw", out, "--allow-private"),
                   "is a pipeline dataset")
    assert refused(cli("crawl", url, "--out", tmp_path / "new", "--raw", out / "raw", "--allow-private"),
                   "lies inside the dataset")
    assert refused(cli("fetch", "mnist", "--out", tmp_path / "new", "--raw", out), "is a pipeline dataset")
    assert tree_hash(out) == before
    assert not (tmp_path / "ds-raw").exists() and not (tmp_path / "new").exists()


def test_train_never_replaces_a_folder_holding_its_dataset(tmp_path, cli):
    ds = make_classification_dataset(tmp_path / "run" / "ds", classes=2, per_class=4)
    (tmp_path / "run" / "run.json").write_text("{}")  # looks like an earlier run, but holds the input
    before = tree_hash(tmp_path / "run")
    assert refused(cli("train", ds, "--out", tmp_path / "run", "--epochs", "1", "--set", "log_images=0",
                       "--device", "cpu"), "holds the input")
    assert tree_hash(tmp_path / "run") == before
