"""One command's --debug/--quiet never leaks into the next invocation in the same process."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline.cli import cli, main


def test_debug_after_subcommand_does_not_leak(tmp_path) -> None:
    with pytest.raises(SystemExit):
        main(["import", "voc", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--debug"])
    result = CliRunner().invoke(cli, ["import", "voc", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output
    assert "Traceback" not in result.output


def test_main_exit_code_two_on_bad_input(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["split", str(tmp_path / "missing")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
