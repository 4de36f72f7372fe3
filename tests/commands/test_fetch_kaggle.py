"""`pipeline fetch kaggle` on the command line: what to fetch (exit 2, one line, before any request),
the summary and --no-import, against the local Kaggle API of tests/sources/servers.py."""

from __future__ import annotations

import pytest

from pipeline.core.dataset import load_dataset
from tests.helpers import invoke
from tests.sources.servers import KaggleApi, LocalServer

TOKEN = "KGAT_command_test_token"


@pytest.fixture
def api(monkeypatch, tmp_path):
    with LocalServer() as srv:
        api = KaggleApi(srv)
        api.point_client_here(monkeypatch, tmp_path / "home")
        monkeypatch.setenv("KAGGLE_API_TOKEN", TOKEN)
        yield api


@pytest.mark.parametrize("args, message", [
    ([], "give either OWNER/DATASET or --competition NAME"),
    (["team/digits", "--competition", "digit-recognizer"], "give either OWNER/DATASET or --competition NAME"),
    (["digits"], "'digits': expected OWNER/DATASET"),
    (["team/digits/v2"], "'team/digits/v2': expected OWNER/DATASET"),
])
def test_what_to_fetch_is_checked_before_any_request(api, tmp_path, main, args, message):
    proc = main("fetch", "kaggle", *args, "--out", tmp_path / "ds")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert api.auth == [] and not (tmp_path / "ds").exists()


def test_version_below_one_is_a_usage_error(tmp_path):
    result = invoke("fetch", "kaggle", "team/digits", "--version", "0", "--out", tmp_path / "ds")
    assert result.exit_code == 2 and "Invalid value for '--version'" in result.output


def test_summary_of_a_dataset_download_and_import(api, tmp_path, main):
    out = tmp_path / "ds"
    proc = main("fetch", "kaggle", "team/digits", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "fetched team/digits" in proc.stdout and "version          3" in proc.stdout
    assert "already present  0" in proc.stdout and "imported         9 samples" in proc.stdout
    assert len(load_dataset(out).samples) == 9


def test_no_import_keeps_the_archive_only(api, tmp_path, main):
    proc = main("fetch", "kaggle", "team/digits", "--out", tmp_path / "ds", "--no-import")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ds-raw" / "digits.zip").is_file() and not (tmp_path / "ds").exists()
    assert "imported" not in proc.stdout
