"""`pipeline fetch hf` on the command line, against a local Hub: the summary, --no-import, and
refusals (exit 2, one line). Repository layouts are tested in tests/sources/test_hf.py."""

from __future__ import annotations

import pytest

from pipeline.core.dataset import load_dataset
from tests.helpers import digit_png, invoke
from tests.sources.servers import REPO, SHA, Hub


@pytest.fixture
def hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    files = {f"train/{c}/{i}.png": digit_png(k, i) for k, c in enumerate(["a", "b"]) for i in range(2)}
    with Hub(files) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.server.base)
        yield server


def test_summary_names_the_commit_files_and_import(hub, tmp_path, main):
    out = tmp_path / "ds"
    proc = main("fetch", "hf", REPO, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"fetched {REPO}@{SHA[:12]}" in proc.stdout
    assert f"commit      {SHA}" in proc.stdout and "files       4" in proc.stdout
    assert "imported    4 samples (imagefolder)" in proc.stdout and f"output      {out}" in proc.stdout
    ds = load_dataset(out)
    assert ds.classes == ["a", "b"] and ds.info.lineage[-1]["params"]["commit"] == SHA


def test_no_import_keeps_only_the_raw_files(hub, tmp_path, main):
    proc = main("fetch", "hf", REPO, "--out", tmp_path / "ds", "--no-import")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ds-raw" / "train" / "b" / "1.png").read_bytes() == digit_png(1, 1)
    assert not (tmp_path / "ds").exists() and "imported" not in proc.stdout


@pytest.mark.parametrize("repo", ["digits", "a/b/c", "/digits"])
def test_a_repo_id_that_is_not_owner_name_is_one_line_exit_2(tmp_path, main, repo):
    proc = main("fetch", "hf", repo, "--out", tmp_path / "ds")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "expected a dataset repository as OWNER/NAME" in proc.stderr


def test_on_error_takes_skip_or_error(tmp_path):
    result = invoke("fetch", "hf", REPO, "--out", tmp_path / "ds", "--on-error", "ignore")
    assert result.exit_code == 2 and "Invalid value for '--on-error'" in result.output
