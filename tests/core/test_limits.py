"""The parsing limits and the JSON/YAML loaders that apply them (`pipeline.core.limits`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline.core import limits
from pipeline.core.errors import DataError

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    + ["names: *i"]
)


def test_read_capped_reads_a_small_file(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_bytes(b"0 0.5 0.5 0.1 0.1\n")
    assert limits.read_capped(p, "a.txt") == b"0 0.5 0.5 0.1 0.1\n"


def test_read_capped_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.txt"
    p.write_bytes(b"x" * 2048)
    with pytest.raises(DataError, match=r"big.txt: annotation file too large: expected at most 1024 bytes") as err:
        limits.read_capped(p, "big.txt", 1024)
    assert err.value.fix


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_read_capped_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    p = tmp_path / "b.txt"
    os.mkfifo(p)
    with pytest.raises(DataError, match="not a regular file"):
        limits.read_capped(p, "b.txt")


def test_read_capped_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone.txt: cannot read the label file"):
        limits.read_capped(tmp_path / "gone.txt", "gone.txt", what="label file")


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        (b'{"w": ' + b"9" * 5000 + b"}", r"a.json: number too long: expected numbers of at most 4300 digits, got '5000"),
        (b"[" * 100_000 + b"]" * 100_000, r"a.json: not valid JSON \(nested too deeply\)"),
        (b'{"a": 1,\n "b": }', r"a.json:2: not valid JSON \(Expecting value at column 7\)"),
        (b'{"a": "\xff"}', r"a.json:1: not UTF-8 text \(byte 7\)"),
    ],
    ids=["huge-int", "deep", "syntax", "not-utf8"],
)
def test_load_json_turns_every_failure_into_a_data_error(raw: bytes, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as err:
        limits.load_json(raw, "a.json")
    assert err.value.fix and "\n" not in str(err.value)


def test_load_json_refuses_a_document_over_its_limit() -> None:
    with pytest.raises(DataError, match="JSON document too large"):
        limits.load_json(b"[" + b"0," * 100 + b"0]", "a.json", limit=64)


def test_load_json_reads_a_document() -> None:
    assert limits.load_json(b'\xef\xbb\xbf{"a": [1, 2.5]}', "a.json") == {"a": [1, 2.5]}


def test_yaml_aliases_are_refused_at_the_first_alias() -> None:
    with pytest.raises(DataError, match=r"data.yaml:2: not valid YAML \(alias \*a \(aliases are not allowed\)"):
        limits.load_yaml(BILLION_LAUGHS, "data.yaml")


def test_yaml_without_aliases_loads_safe_types_only() -> None:
    assert limits.load_yaml("names: [a, b]\nnc: 2\n", "d.yaml") == {"names": ["a", "b"], "nc": 2}
    with pytest.raises(DataError, match="not valid YAML"):
        limits.load_yaml("x: !!python/object/apply:os.system ['true']\n", "d.yaml")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("names: [a, b\ntrain: x\n", r"d.yaml:2: not valid YAML \(expected ',' or '\]', but got ':' at column 6\)"),
        ("nc: " + "9" * 5000 + "\n", r"d.yaml: not valid YAML \(a value Python cannot hold"),
        ("[" * 5000 + "]" * 5000, r"d.yaml:1: not valid YAML \(nested deeper than 100 levels\)"),
        ("a:\n" + "".join(" " * i + "b:\n" for i in range(1, 300)), r"d.yaml:100: not valid YAML \(nested deeper"),
    ],
    ids=["syntax", "huge-int", "deep-flow", "deep-block"],
)
def test_yaml_errors_are_one_line_with_file_and_line(text: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as err:
        limits.load_yaml(text, "d.yaml", fix="fix it")
    assert "\n" not in str(err.value) and str(err.value).endswith("Fix: fix it")


def test_yaml_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "data.yaml"
    p.write_text("names: [" + "a, " * (limits.MAX_YAML_BYTES // 3) + "b]\n")
    with pytest.raises(DataError, match="YAML file too large"):
        limits.read_yaml_file(p, "data.yaml")


def test_class_names_are_capped_and_printable() -> None:
    assert limits.check_class_name("cat", "a.xml") == "cat"
    assert limits.check_class_name("x" * limits.MAX_CLASS_NAME, "a.xml") == "x" * limits.MAX_CLASS_NAME
    with pytest.raises(DataError, match=r"a.xml: object\[0\].name: class name too long: expected at most 256 "
                                        r"characters, got '257 characters'"):
        limits.check_class_name("x" * 257, "a.xml", "object[0].name")
    with pytest.raises(DataError, match="control characters"):
        limits.check_class_name("cat\ndog", "a.xml")


def test_counts_over_their_limit_name_file_line_and_field() -> None:
    limits.check_count(limits.MAX_OBJECTS, limits.MAX_OBJECTS, "a.txt", "objects")
    with pytest.raises(DataError, match=r"a.txt:7: too many objects: expected at most 100,000, got '100,001'"):
        limits.check_count(limits.MAX_OBJECTS + 1, limits.MAX_OBJECTS, "a.txt", "objects", line=7)


def test_int_digit_limit_is_the_one_load_json_names() -> None:
    assert sys.get_int_max_str_digits() in (0, 4300)  # the message promises Python's default


def test_class_names_that_are_not_utf8_are_refused_with_their_bytes_escaped() -> None:
    name = os.fsdecode(b"b\xffird")  # an ImageFolder class folder named in latin-1
    with pytest.raises(DataError, match=r"class name is not UTF-8 \(b\\xffird\)") as err:
        limits.check_class_name(name, "b\\xffird", "folder")
    str(err.value).encode("utf-8")


def test_read_capped_allocates_what_the_file_holds_not_the_cap(tmp_path) -> None:
    """A small file read under a large cap costs its own size (the cap is a limit, not a buffer)."""
    import tracemalloc

    from pipeline.core.limits import read_capped

    path = tmp_path / "small.txt"
    path.write_bytes(b"0 0.5 0.5 0.1 0.1\n")
    tracemalloc.start()
    try:
        assert read_capped(path, "small.txt", limit=64 << 20) == b"0 0.5 0.5 0.1 0.1\n"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
