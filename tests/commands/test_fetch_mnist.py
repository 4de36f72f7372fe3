"""`pipeline fetch mnist` on the command line: options that cannot go together, the offline error,
the help. Downloads against a local mirror are in tests/sources/test_mnist.py."""

from __future__ import annotations

import re

import pytest

from pipeline.cli import main
from tests.helpers import closed_port_url, invoke


def test_cli_offline_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fetch", "mnist", "--out", str(tmp_path / "m"), "--mirror", closed_port_url()])
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--embedded" in errors[0] and "Traceback" not in errors[0]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("extra", [["--mirror", "http://x/"], ["--raw", "raw"]])
def test_cli_embedded_rejects_mirror_and_raw(tmp_path, extra) -> None:
    result = invoke("fetch", "mnist", "--embedded", *extra, "--out", tmp_path / "m")
    assert result.exit_code == 2 and "error: --embedded reads the bundled files" in result.output
    assert not (tmp_path / "m").exists()


def test_a_mirror_that_is_not_http_is_refused(tmp_path, main) -> None:
    proc = main("fetch", "mnist", "--out", tmp_path / "m", "--mirror", "ftp.example.com/mnist")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "ftp.example.com/mnist" in proc.stderr


def test_out_is_required() -> None:
    result = invoke("fetch", "mnist", "--embedded")
    assert result.exit_code == 2 and "Missing option '--out'" in result.output


def test_fetch_help_has_example() -> None:
    result = invoke("fetch", "mnist", "--help")
    assert result.exit_code == 0 and re.search(r"Examples?:\n\s+pipeline fetch mnist --embedded", result.output)
