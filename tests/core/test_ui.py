"""`pipeline.core.ui`: notes that --quiet silences, warnings that it does not, aligned summaries,
progress bars that stay off when stderr is not a terminal."""

from __future__ import annotations

import pytest

from pipeline.core import ui


@pytest.fixture(autouse=True)
def _loud():
    before = ui.is_quiet()
    ui.set_quiet(False)
    yield
    ui.set_quiet(before)


def test_summary_aligns_its_rows(capsys) -> None:
    ui.summary("fetched 3 files", [("downloaded", 2), ("raw", "/tmp/x")])
    assert capsys.readouterr().out == "fetched 3 files\n  downloaded  2\n  raw         /tmp/x\n"
    ui.summary("done", {"a": 1})
    assert capsys.readouterr().out == "done\n  a  1\n"
    ui.summary("nothing", [])
    assert capsys.readouterr().out == "nothing\n"


def test_quiet_silences_notes_but_not_warnings(capsys) -> None:
    ui.info("step 1")
    ui.warn("careful")
    assert capsys.readouterr().err == "step 1\nwarning: careful\n"
    ui.set_quiet(True)
    assert ui.is_quiet()
    ui.info("step 2")
    ui.warn("still careful")
    captured = capsys.readouterr()
    assert captured.err == "warning: still careful\n" and captured.out == ""


def test_progress_is_disabled_off_a_terminal_and_when_quiet(capsys) -> None:
    bar = ui.progress(range(3), desc="x")  # pytest's captured stderr is not a terminal
    assert list(bar) == [0, 1, 2] and bar.disable
    ui.set_quiet(True)
    assert ui.progress(total=5).disable
    assert capsys.readouterr().err == ""


def test_library_warnings_are_collected_as_one_line_texts(capsys) -> None:
    import warnings

    with ui.library_warnings() as caught:
        warnings.warn("Corrupt EXIF data.\n  Expecting to read 12 bytes", UserWarning, stacklevel=1)
    assert caught == ["Corrupt EXIF data. Expecting to read 12 bytes"]
    assert capsys.readouterr().err == ""


def test_routed_library_warnings_print_as_our_warning_without_a_path(capsys) -> None:
    import warnings

    before = warnings.showwarning
    try:
        ui.route_library_warnings()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("Corrupt EXIF data", UserWarning, stacklevel=1)
    finally:
        warnings.showwarning = before
    err = capsys.readouterr().err
    assert err == "warning: Corrupt EXIF data\n"
