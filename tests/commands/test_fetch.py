"""`pipeline fetch`: the group of sources, each registered lazily like the top-level commands."""

from __future__ import annotations

import click
import pytest

from pipeline.cli import cli
from pipeline.commands.fetch import SOURCES, fetch
from tests.helpers import invoke


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_source_resolves_to_a_command_of_that_name(name: str) -> None:
    ctx = click.Context(fetch, parent=click.Context(cli))
    command = fetch.get_command(ctx, name)
    assert isinstance(command, click.Command) and command.name == name


def test_help_lists_the_sources_in_order() -> None:
    result = invoke("fetch", "--help")
    assert result.exit_code == 0
    section = result.output.split("Commands:")[1]
    assert [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line[2] != " "] == \
        list(SOURCES)
    assert "pipeline fetch mnist --embedded" in result.output


def test_unknown_source_is_a_usage_error(capsys) -> None:
    from pipeline.cli import main

    with pytest.raises(SystemExit) as info:
        main(["fetch", "dropbox", "--out", "x"])
    assert info.value.code == 2 and "No such command 'dropbox'" in capsys.readouterr().err
