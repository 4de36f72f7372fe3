"""`pipeline view` as a user runs it: a real server process, its printed address, the API, Ctrl-C
and the closing summary; the token beyond loopback; one-line errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import ROOT, make_classification_dataset


def start(args: list[str], cache: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PIPELINE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--quiet", "view", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    found = re.search(r"at (http://\S+)", line)
    if not found:
        proc.kill()
        raise AssertionError(line + proc.stderr.read())  # type: ignore[union-attr]
    return proc, found.group(1)


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_view_serves_until_ctrl_c_and_summarises(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2)
    proc, url = start([str(data), "--no-browser", "--port", "0"], tmp_path / "cache")
    try:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        assert httpx.get(url + "api/samples?label=1").json()["total"] == 2
        edit = httpx.post(url + "api/edits", json={"edits": [{"id": "1-000", "label": "0"}]})
        assert edit.status_code == 200
    finally:
        code, out = stop(proc)
    assert code == 0
    assert f"viewed {data}" in out and "1 pending" in out and str(tmp_path / "ds.edits.jsonl") in out
    assert (tmp_path / "ds.edits.jsonl").read_text().count("\n") == 1


def test_beyond_loopback_a_token_is_required(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    proc, url = start([str(data), "--no-browser", "--port", "0", "--host", "127.0.0.2"], tmp_path / "cache")
    try:
        assert "?token=" in url
        base = url.split("?")[0]
        assert httpx.get(base + "api/info").status_code == 403
        assert httpx.get(url).status_code == 200
    finally:
        stop(proc)


def test_errors_are_one_line(tmp_path: Path, capsys) -> None:
    from tests.helpers import run_cli

    assert run_cli(["view", str(tmp_path / "missing"), "--no-browser"]) == 2
    assert "no such dataset folder" in capsys.readouterr().err
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    assert run_cli(["view", str(data), "--no-browser", "--edits", str(data / "edits.jsonl")]) == 2
    assert "inside the dataset folder" in capsys.readouterr().err
