"""`pipeline.core.errors`: the one-line message (what, where, expected, got, fix) and exit codes."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ConfigError, DataError, NetworkError, PipelineError, UsageError


@pytest.mark.parametrize("message, fix, text", [
    ("no such folder", None, "no such folder"),
    ("no such folder", "check the path", "no such folder. Fix: check the path"),
    ("the run stopped.", "run it again", "the run stopped. Fix: run it again"),  # no second full stop
])
def test_message_and_fix_in_one_line(message: str, fix: str | None, text: str) -> None:
    err = PipelineError(message, fix=fix)
    assert str(err) == text and err.message == message and err.fix == fix


def test_data_error_names_file_line_field_expected_and_got() -> None:
    err = DataError("samples.jsonl", "", line=12, field="width", expected="a positive integer", got=-3,
                    fix="re-import the dataset")
    assert str(err) == "samples.jsonl:12: width: expected a positive integer, got -3. Fix: re-import the dataset"
    assert (err.where, err.line, err.field) == ("samples.jsonl", 12, "width")


def test_data_error_without_expected_is_where_and_message() -> None:
    err = DataError("a/b.xml", "not well-formed XML")
    assert str(err) == "a/b.xml: not well-formed XML" and err.line is None


def test_data_error_keeps_its_message_before_expected() -> None:
    err = DataError("x.txt", "box", line=3, expected="4 numbers", got="1 2 3")
    assert str(err) == "x.txt:3: box: expected 4 numbers, got '1 2 3'"


def test_long_got_values_are_shortened() -> None:
    err = DataError("f", "", expected="short", got="x" * 500)
    got = str(err).split("got ", 1)[1]
    assert len(got) == 60 and got.endswith("...")


@pytest.mark.parametrize("cls", [UsageError, DataError, ConfigError, NetworkError])
def test_every_error_is_a_pipeline_error_with_exit_code_2(cls) -> None:
    assert issubclass(cls, PipelineError) and cls.exit_code == 2


def test_a_config_error_is_a_usage_error() -> None:
    assert issubclass(ConfigError, UsageError) and not issubclass(NetworkError, UsageError)


def test_undecodable_file_names_and_control_characters_print_escaped_on_one_line() -> None:
    import os

    from pipeline.core.errors import printable

    name = os.fsdecode(b"b\xff.png")  # a file name that is not UTF-8, as os.listdir returns it
    assert printable(name) == "b\\xff.png" and printable("a\nb") == "a\\nb" and printable("plain") == "plain"
    err = DataError(name, "file name is not UTF-8", fix="rename it")
    text = str(err)
    assert text == "b\\xff.png: file name is not UTF-8. Fix: rename it"
    text.encode("utf-8")  # printable anywhere: no surrogates left


@pytest.mark.parametrize("err", [
    DataError("a/b.xml", "bad box", line=3, field="xmin", expected="a number", got="x", fix="correct it"),
    UsageError("--copies must be >= 0, got -1"),
    ConfigError("unknown key 'lr2'", fix="use lr"),
    NetworkError("https://example.org/a.zip: 404"),
])
def test_an_error_survives_pickling_as_it_was_raised(err: PipelineError) -> None:
    # as it comes back from a worker process or a Ray worker
    import pickle

    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and str(back) == str(err) and back.__dict__ == err.__dict__
    assert back.args == err.args
