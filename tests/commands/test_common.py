"""What the fetch and crawl commands share: network options, their conversion, the import summary."""

from __future__ import annotations

import click
from click.testing import CliRunner

from pipeline.commands.common import http_options, network_options, report_import
from pipeline.core.errors import DataError
from pipeline.formats.tables import ImportOutcome


def test_network_options_parse_into_http_options():
    seen = {}

    @click.command()
    @network_options
    def cmd(**kw):
        seen.update(kw)

    result = CliRunner().invoke(cmd, ["--rate", "2", "--timeout", "45", "--max-size", "1M", "--allow-private"])
    assert result.exit_code == 0, result.output
    assert seen == {"allow_private": True, "rate": 2.0, "timeout": 45.0, "retries": 5, "max_size": "1M"}
    options = http_options(**seen)
    assert (options.connect_timeout, options.read_timeout) == (30.0, 45.0)  # connecting waits 30 s at most
    assert (options.max_bytes, options.rate, options.retries, options.allow_private) == (1 << 20, 2.0, 5, True)
    assert http_options(False, 0.5, 5.0, 0, "4G").connect_timeout == 5.0


def test_network_option_defaults_and_limits():
    @click.command()
    @network_options
    def cmd(**kw):
        click.echo(repr(sorted(kw.items())))

    result = CliRunner().invoke(cmd, [])
    assert result.output.strip() == repr(sorted({"allow_private": False, "rate": 0.5, "timeout": 30.0, "retries": 5,
                                                 "max_size": "4G"}.items()))
    assert CliRunner().invoke(cmd, ["--retries", "21"]).exit_code == 2


def test_report_import_adds_rows_and_prints_problems_and_notes(tmp_path, capsys):
    problems = [DataError(f"f{i}.png", "broken") for i in range(22)]
    outcome = ImportOutcome(kind="pixel-csv", imported=5, problems=problems, notes=["a note"])
    rows: list[tuple[str, object]] = [("raw", "r")]
    report_import(outcome, rows, tmp_path / "ds")
    assert rows == [("raw", "r"), ("imported", "5 samples (pixel-csv)"), ("left out (bad files)", 22),
                    ("output", str(tmp_path / "ds"))]
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == ["warning: f0.png: broken", "warning: f1.png: broken"]
    assert err[19:] == ["warning: f19.png: broken", "warning: ... and 2 more bad files", "a note"]


def test_report_import_without_problems(tmp_path, capsys):
    rows: list[tuple[str, object]] = []
    report_import(ImportOutcome(kind="images", imported=1), rows, tmp_path)
    assert rows == [("imported", "1 samples (images)"), ("output", str(tmp_path))]
    assert capsys.readouterr().err == ""
