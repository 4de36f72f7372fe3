"""The journal of a run: typed records and their lines, torn logs, spools, kept packs, resume state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.augment.journal import (
    PACKS_KEPT,
    RECORD_VERSION,
    RECORDS,
    SPOOL,
    Journal,
    Packed,
    Record,
    RecordError,
    Spooled,
    Spools,
    intact,
    prepare_state,
    read_logs,
    read_records,
)
from pipeline.core.dataset import Sample, dumps_body
from pipeline.core.errors import DataError
from pipeline.core.paths import sha256_bytes


def _body(sample_id: str, copy: int, data: bytes) -> str:
    return dumps_body(Sample(id=f"{sample_id}~aug{copy}", image="", width=2, height=2, sha256=sha256_bytes(data),
                             split="train", label="日本", meta={"augment": {"copy": copy}}))


def _record(sample_id: str, datas: list[bytes], **where: object) -> Record:
    return Record(id=sample_id, bodies=[_body(sample_id, c, d) for c, d in enumerate(datas, 1)], names=["日本"],
                  **where)


@pytest.mark.parametrize("where", [
    {},  # copies written as files
    {"spool": Spooled("12.bin", 40, [3, 5, 7]), "with_original": True},
    {"spool": Spooled("12.bin", 0, [5, 7]), "with_original": False},
    {"pack": Packed("augment-00000.zip", [30, 90], [5, 7])},
])
def test_a_record_round_trips_through_its_json(where: dict) -> None:
    record = _record('q"uote\nid', [b"abcde", b"fghijkl"], **where)
    text = record.to_json()
    assert text.endswith("\n") and text.count("\n") == 3  # a head line, then one line per copy
    assert json.loads(text.split("\n")[0])["record"] == RECORD_VERSION
    back = Record.from_json(text)
    assert back == record and back.packed == bool(where)
    assert back.hashes() == [sha256_bytes(b"abcde"), sha256_bytes(b"fghijkl")]


def test_only_what_a_rerun_needs_is_logged() -> None:
    record = _record("a", [b"x"], blobs=[b"x"], original=b"o")
    assert record.packed and Record.from_json(record.to_json()) == _record("a", [b"x"])


def test_a_record_of_another_version_or_cut_short_is_refused() -> None:
    text = _record("a", [b"x", b"y"]).to_json()
    head, *rest = text.split("\n")
    other = json.dumps({**json.loads(head), "record": RECORD_VERSION + 1})
    with pytest.raises(RecordError, match="record version 2, expected 1"):
        Record.from_json("\n".join([other, *rest]))
    with pytest.raises(RecordError, match="1 of 2 copies"):
        Record.from_json("\n".join([head, rest[0]]))
    with pytest.raises(RecordError, match="not a record's head line"):
        Record.from_json(rest[0])
    with pytest.raises(RecordError, match="unreadable"):
        Record.from_json("\n".join([head, rest[0], rest[1][:-9]])).hashes()


def test_a_log_torn_anywhere_yields_every_whole_record_and_no_other() -> None:
    records = [_record(f"s{i}", [bytes([i]), bytes([i, i])]) for i in range(4)]
    text = "".join(r.to_json() for r in records)
    assert list(read_records(text, check=True)) == records
    lines = text.split("\n")
    torn_head = "\n".join(lines[:3] + [lines[3][:10]] + lines[4:])  # s1's head cut: its copies are skipped
    assert [r.id for r in read_records(torn_head, check=True)] == ["s0", "s2", "s3"]
    torn_copy = "\n".join(lines[:5] + [lines[5][:-20]] + lines[6:])  # a copy of s1 cut
    assert [r.id for r in read_records(torn_copy, check=True)] == ["s0", "s2", "s3"]
    assert [r.id for r in read_records(text[:-25], check=True)] == ["s0", "s1", "s2"]  # the last one cut
    version = text.replace(f'{{"record":{RECORD_VERSION},"id":"s2"', '{"record":99,"id":"s2"')
    assert [r.id for r in read_records(version)] == ["s0", "s1", "s3"]  # another version: redone


def test_a_journal_appends_in_one_write_and_starts_a_fresh_line_after_a_torn_one(tmp_path: Path) -> None:
    (tmp_path / RECORDS).mkdir()
    journal = Journal(tmp_path)
    first = _record("a", [b"x"])
    name, offset, length = journal.log([first])
    assert (offset, length) == (0, len(first.to_json().encode()))
    journal.close()
    log = tmp_path / RECORDS / name
    log.write_bytes(log.read_bytes() + b'{"record":1,"id":"torn')  # a kill cut the next write
    again = Journal(tmp_path)  # a new process with the same pid
    second = _record("b", [b"y"])
    _, offset, _ = again.log([second])
    again.close()
    assert [r.id for r in read_records(log.read_text())] == ["a", "b"]
    assert log.read_bytes()[offset - 1:offset] == b"\n"


def test_spooled_images_are_read_back_with_the_original_first(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    a = _record("a", [b"aa", b"aaa"], blobs=[b"aa", b"aaa"], original=b"orig")
    b = _record("b", [b"bbbb"], blobs=[b"bbbb"])
    journal.spool([a, b])
    journal.close()
    assert a.spool == Spooled(a.spool.file, 0, [4, 2, 3]) and a.with_original
    assert b.spool == Spooled(a.spool.file, 9, [4]) and not b.with_original
    spools = Spools(tmp_path)
    assert spools.read(a) == [b"orig", b"aa", b"aaa"] and spools.read(b) == [b"bbbb"]
    assert intact(tmp_path / "work", spools, a, []) and intact(tmp_path / "work", spools, b, [])
    spools.discard()  # emptied and removed: the records no longer check out
    assert not list((tmp_path / SPOOL).iterdir())
    assert spools.read(a) is None and not intact(tmp_path / "work", spools, a, [])


def test_intact_rehashes_file_copies_and_kept_pack_members(tmp_path: Path) -> None:
    work, spools = tmp_path / "work", Spools(tmp_path)
    (work / "images").mkdir(parents=True)
    files = _record("f", [b"one", b"two"])
    images = ["images/f1.png", "images/f2.png"]
    (work / images[0]).write_bytes(b"one")
    assert not intact(work, spools, files, images)  # the second is missing
    (work / images[1]).write_bytes(b"TWO")
    assert not intact(work, spools, files, images)  # the second differs
    (work / images[1]).write_bytes(b"two")
    assert intact(work, spools, files, images)
    (tmp_path / PACKS_KEPT).mkdir()
    (tmp_path / PACKS_KEPT / "augment-00000.zip").write_bytes(b"..one..two")
    packed = _record("p", [b"one", b"two"], pack=Packed("augment-00000.zip", [2, 7], [3, 3]))
    assert spools.read(packed) == [b"one", b"two"] and intact(work, spools, packed, [])
    cut = _record("p", [b"one", b"two"], pack=Packed("augment-00000.zip", [2, 8], [3, 3]))
    assert spools.read(cut) is None  # past the end of the kept pack
    with pytest.raises(DataError, match="records are missing"):
        spools.records(("9.jsonl", 0, 10))
    spools.close()


def test_state_is_kept_for_the_same_inputs_only(tmp_path: Path) -> None:
    work, state = tmp_path / ".out.augment-work", tmp_path / ".out.augment-state"
    assert prepare_state(work, state, {"seed": 1}) is False
    journal = Journal(state)
    journal.log([_record("a", [b"x"]), _record("b", [b"x", b"y"])])
    journal.close()
    (work / "images" / "packs").mkdir(parents=True)
    (work / "images" / "packs" / "augment-00000.zip").write_bytes(b"pack")
    (work / ".half.tmp").write_bytes(b"cut")
    assert prepare_state(work, state, {"seed": 1}) is True
    assert (state / PACKS_KEPT / "augment-00000.zip").read_bytes() == b"pack" and not (work / ".half.tmp").exists()
    assert list(read_logs(state, copies=1)) == ["a"]  # records of another copy count are redone
    assert prepare_state(work, state, {"seed": 2}) is False
    assert read_logs(state, copies=1) == {} and not (state / PACKS_KEPT).exists()
