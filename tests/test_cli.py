"""The `pipeline` command itself (`pipeline/cli.py`): the lazy command registry, help without
torch, unknown commands, --version, --debug/--quiet anywhere, one-line errors and exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import pipeline
from pipeline.cli import COMMANDS, LazyGroup, cli, main
from tests.helpers import invoke, make_classification_dataset

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PIPELINE_DEBUG", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd or ROOT, env=env,
                          timeout=120)


@click.command("boom")
def _boom() -> None:
    """A command that fails with an error no code expected.

    \b
    Example:
      pipeline boom
    """
    raise RuntimeError("the disk caught fire")


# -- the registry ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_registered_command_resolves_to_a_click_command_of_that_name(name: str) -> None:
    target, short_help = COMMANDS[name]
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command) and command.name == name, target
    assert short_help.endswith(".") and "\n" not in short_help


def test_help_lists_commands_in_registry_order_with_their_short_help() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    section = result.output.split("Commands:")[1].split("\n\n")[0]  # up to the epilog
    listed = [m.group(1) for m in re.finditer(r"^  (\S+)", section, re.MULTILINE)]  # wrapped help is indented more
    assert listed == list(COMMANDS)
    flat = " ".join(section.split())
    for name, (_target, short_help) in COMMANDS.items():
        assert f"{name} {short_help}" in flat


def test_a_command_whose_module_is_missing_is_not_listed() -> None:
    group = LazyGroup(lazy={"ghost": ("pipeline.commands.no_such_module:ghost", "Never there."),
                            "split": COMMANDS["split"]})
    ctx = click.Context(group)
    assert group.list_commands(ctx) == ["split"]
    assert group.get_command(ctx, "ghost") is None


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


def test_unknown_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["spilt"])
    assert info.value.code == 2
    assert "No such command 'spilt'" in capsys.readouterr().err


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output == f"pipeline, version {pipeline.__version__}\n"


# -- errors, --debug and --quiet -----------------------------------------------------------------


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_bad_input_is_one_line_exit_2_in_a_fresh_process(tmp_path) -> None:
    line = _one_error_line(_run("-m", "pipeline", "split", str(tmp_path / "nope"), "--val", "0.1"))
    assert str(tmp_path / "nope") in line and "Fix:" in line


def test_debug_shows_the_traceback(tmp_path) -> None:
    for args in (["--debug", "split", str(tmp_path / "nope")], ["split", str(tmp_path / "nope"), "--debug"]):
        proc = _run("-m", "pipeline", *args)
        assert proc.returncode == 2 and "Traceback (most recent call last)" in proc.stderr
        assert "UsageError" in proc.stderr


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


def test_unexpected_exception_is_one_line_exit_1_or_a_traceback_with_debug(monkeypatch, capsys) -> None:
    monkeypatch.setitem(cli.lazy, "boom", ("tests.test_cli:_boom", "Fail on purpose."))
    with pytest.raises(SystemExit) as info:
        main(["boom"])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err == ("error: internal error: RuntimeError: the disk caught fire "
                   "(run with --debug for the traceback)\n")
    with pytest.raises(SystemExit) as info:
        main(["boom", "--debug"])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err.startswith("Traceback (most recent call last)") and "RuntimeError: the disk caught fire" in err


def test_quiet_anywhere_keeps_the_summary_and_drops_the_notes(tmp_path, capsys) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=4, splits=None)
    with pytest.raises(SystemExit) as info:
        main(["split", str(data), "--val", "0.25", "--quiet"])
    out = capsys.readouterr()
    assert info.value.code == 0 and "val" in out.out
    assert out.err == ""
    assert invoke("--quiet", "split", str(data), "--val", "0.25").exit_code == 0
