"""`pipeline model summary` and `pipeline model compare` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.model import build_model
from tests.model.counting import hook_count, numel_params

ROOT = Path(__file__).resolve().parents[2]


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["model", *args], catch_exceptions=False)


def test_summary_table_and_closing_summary() -> None:
    result = _invoke("summary", "--variant", "dilated")
    assert result.exit_code == 0, result.output
    assert "Conv2d 3x3 d2" in result.output and "6x28x28" in result.output
    assert "parameters     60,074" in result.output


def test_summary_json_matches_independent_counts() -> None:
    result = _invoke("summary", "--variant", "depthwise-separable", "--input", "3x32x32", "--classes", "43", "--json")
    data = json.loads(result.output)
    model = build_model("depthwise-separable", 3, 43)
    assert data["params"] == numel_params(model)
    assert data["macs"] == hook_count(model, (3, 32, 32))[0]
    assert data["input"] == [3, 32, 32] and data["output"] == [43]


def test_summary_autoencoder_shows_the_transposed_conv() -> None:
    result = _invoke("summary", "--variant", "autoencoder")
    assert result.exit_code == 0
    line = next(ln for ln in result.output.splitlines() if "decoder.0.0" in ln)
    assert line.split()[1:5] == ["ConvT", "3x3", "64x4x4", "64x64x3x3"]


def test_variant_all_prints_one_line_per_variant() -> None:
    result = _invoke("summary", "--variant", "all")
    names = [ln.split()[0] for ln in result.output.splitlines()[2:10]]
    assert names == ["standard", "dilated", "spatial-separable", "depthwise-separable", "grouped", "flattened",
                     "wide", "fast"]
    assert "forward img/s" not in result.output


def test_compare_json() -> None:
    items = json.loads(_invoke("compare", "--json").output)
    assert [i["variant"] for i in items][-2:] == ["wide", "fast"] and all(i["params"] > 0 for i in items)


def test_bad_options_are_usage_errors() -> None:
    for args, needle in [
        (["--variant", "vgg"], "unknown model variant 'vgg'"),
        (["--variant", "grouped", "--groups", "3"], "groups=3 must divide"),
        (["--variant", "wide", "--groups", "2"], "--groups applies to --variant grouped"),
        (["--input", "1x28x28"], "expects 400 features"),
    ]:
        result = CliRunner().invoke(cli, ["model", "summary", *args])
        assert result.exit_code == 2 and needle in result.output, result.output


def test_error_is_one_line_exit_2() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PIPELINE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "pipeline", "model", "summary", "--variant", "vgg"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and lines == [
        "error: unknown model variant 'vgg'. Fix: use one of: standard, dilated, spatial-separable, "
        "depthwise-separable, grouped, flattened, wide, fast, autoencoder"], proc.stderr


def test_summary_takes_widths_as_train_does() -> None:
    result = _invoke("summary", "--variant", "standard", "--widths", "12,32", "--json")
    assert result.exit_code == 0, result.output
    layers = {row["name"]: row for row in json.loads(result.output)["layers"]}
    assert layers["features.0"]["weight"] == [12, 1, 5, 5] and layers["features.3"]["weight"] == [32, 12, 5, 5]
    bad = _invoke("summary", "--variant", "autoencoder", "--widths", "8,16")
    assert bad.exit_code == 2 and "should be 3 positive integers" in bad.output
