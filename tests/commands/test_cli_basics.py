"""The `pipeline` command itself: fast help without torch, help with examples everywhere, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PIPELINE_DEBUG", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=env,
                          timeout=120)


def test_help_lists_commands_without_importing_torch() -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('HEAVY=' + ','.join(sorted(m for m in ('torch', 'torchvision', "
        "'albumentations') if m in sys.modules))))\n"
        "from pipeline.cli import main\n"
        "main(['--help'])\n"
    )
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "HEAVY="  # none of them imported
    for name in ("fetch", "import", "export", "split"):
        assert f"  {name} " in proc.stdout


def test_python_dash_m_pipeline() -> None:
    proc = _run("-m", "pipeline", "--help")
    assert proc.returncode == 0 and "Usage: pipeline" in proc.stdout


def _all_commands() -> list[list[str]]:
    ctx = click.Context(cli)
    paths = []
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        paths.append([name])
        if isinstance(cmd, click.Group):
            sub = click.Context(cmd, parent=ctx)
            paths += [[name, s] for s in cmd.list_commands(sub)]
    return paths


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p))
def test_every_command_help_has_a_runnable_example(path: list[str]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output and f"pipeline {' '.join(path)}" in result.output


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_missing_path_is_one_line_exit_2(tmp_path) -> None:
    line = _one_error_line(_run("-m", "pipeline", "split", str(tmp_path / "nope"), "--val", "0.1"))
    assert str(tmp_path / "nope") in line and "Fix:" in line


def test_folder_in_no_known_layout_is_exit_2(tmp_path) -> None:
    folder = tmp_path / "mess"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing to import here")
    line = _one_error_line(_run("-m", "pipeline", "import", "auto", str(folder), "--out", str(tmp_path / "ds")))
    assert "no known layout" in line and "Fix:" in line
    line = _one_error_line(_run("-m", "pipeline", "import", "imagefolder", str(folder), "--out",
                                str(tmp_path / "ds")))
    assert "not an ImageFolder tree" in line
    assert not (tmp_path / "ds").exists()


def test_debug_shows_the_traceback(tmp_path) -> None:
    for args in (["--debug", "split", str(tmp_path / "nope")], ["split", str(tmp_path / "nope"), "--debug"]):
        proc = _run("-m", "pipeline", *args)
        assert proc.returncode == 2 and "Traceback (most recent call last)" in proc.stderr
        assert "UsageError" in proc.stderr
