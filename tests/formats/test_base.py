"""Shared format types: the import context, class lists and maps, and the error choices the CLI offers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click
import pytest

from pipeline.core.dataset import DatasetWriter, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.formats import FORMATS
from pipeline.formats.base import (
    ON_ERROR,
    ON_INVALID,
    ImportContext,
    ImportOptions,
    ImportReport,
    parse_class_map,
    read_classes_file,
)


def choices(command: click.Command, name: str) -> list[str]:
    param = next(p for p in command.params if p.name == name)
    return list(param.type.choices)


def test_the_commands_offer_the_choices_defined_here():
    from pipeline.commands.convert import export_cmd, import_cmd
    from pipeline.commands.fetch_hf import hf
    from pipeline.commands.fetch_kaggle import kaggle
    from pipeline.commands.fetch_url import url

    assert ON_ERROR == ("skip", "error") and ON_INVALID == ("error", "clip", "skip")
    assert choices(import_cmd, "on_error") == list(ON_ERROR) and choices(import_cmd, "on_invalid") == list(ON_INVALID)
    for command in (url, kaggle, hf):
        assert choices(command, "on_error") == list(ON_ERROR)
    assert choices(import_cmd, "fmt") == ["auto", *FORMATS] and choices(export_cmd, "fmt") == list(FORMATS)


@pytest.mark.parametrize("pairs, expected", [
    ([], {}),
    (["raccon=raccoon"], {"raccon": "raccoon"}),
    (["a=c", "b=c"], {"a": "c", "b": "c"}),  # several old names merged into one
    (["x=y=z"], {"x": "y=z"}),  # only the first = splits
])
def test_parse_class_map(pairs, expected):
    assert parse_class_map(pairs) == expected


@pytest.mark.parametrize("pair, message", [
    ("raccoon", "expected OLD=NEW"),
    ("=new", "both OLD and NEW must be non-empty"),
    ("old=", "both OLD and NEW must be non-empty"),
])
def test_parse_class_map_errors(pair, message):
    with pytest.raises(UsageError, match=message):
        parse_class_map([pair])


def test_read_classes_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("\ufeffcat\n\n  dog  \nbird\n", encoding="utf-8")
    assert read_classes_file(path) == ["cat", "dog", "bird"]  # BOM, blanks and surrounding spaces ignored
    path.write_text("cat\ndog\ncat\n", encoding="utf-8")
    with pytest.raises(DataError, match="duplicate class names") as caught:
        read_classes_file(path)
    assert "cat" in str(caught.value)
    path.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="no class names"):
        read_classes_file(path)
    with pytest.raises(UsageError, match="no such file"):
        read_classes_file(tmp_path / "missing.txt")


def context(tmp_path: Path, writer: DatasetWriter, **options) -> ImportContext:
    return ImportContext(tmp_path / "src", writer, ImportOptions(**options), ImportReport())


def test_context_records_inputs_relative_to_the_root(tmp_path):
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t") as w:
        ctx = context(tmp_path, w)
        ctx.input_file(tmp_path / "src" / "ann" / "a.xml", b"<a/>")
        ctx.input_file(tmp_path / "elsewhere.xml", b"")
    assert list(ctx.inputs) == ["ann/a.xml", str(tmp_path / "elsewhere.xml")]
    assert ctx.inputs["ann/a.xml"] == hashlib.sha256(b"<a/>").hexdigest()


def test_context_bad_files_are_reported_or_raised(tmp_path):
    error = DataError("a.xml", "broken")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t") as w:
        ctx = context(tmp_path, w)
        ctx.bad(error)
        ctx.skip(".DS_Store", 2)
        ctx.warn("careful")
        strict = context(tmp_path, w, on_error="error")
        with pytest.raises(DataError, match="broken"):
            strict.bad(error)
    assert ctx.report.problems == [error] and ctx.report.skipped == {".DS_Store": 2}
    assert ctx.report.warnings == ["careful"] and strict.report.problems == []


def test_context_labels_follow_the_map_and_the_fixed_list(tmp_path):
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t", classes=["cat"],
                       class_map={"kitty": "cat"}) as w:
        ctx = context(tmp_path, w)
        assert ctx.label("kitty") == "cat"
        with pytest.raises(DataError, match="dog"):
            ctx.label("dog", where=tmp_path / "src" / "x.json")
        sample = ctx.add(Sample(id="a", label="cat", width=1, height=1), data=b"\x89PNG", ext="png")
    assert ctx.report.imported == 1 and sample.id == "a"


def test_a_sample_whose_file_name_is_not_utf8_is_a_data_error_naming_it(tmp_path: Path) -> None:
    import os

    from pipeline.formats.base import ImportContext, ImportOptions, ImportReport

    name = os.fsdecode(b"cat/b\xff")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="import") as writer:
        ctx = ImportContext(tmp_path, writer, ImportOptions(), ImportReport())
        with pytest.raises(DataError, match=r"file name is not UTF-8 \(cat/b\\xff\)"):
            ctx.add(Sample(id=name, label="cat", source={"file": name + ".png"}), data=b"x", ext="png")
        assert not writer.samples
