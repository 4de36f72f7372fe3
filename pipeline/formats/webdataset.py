"""WebDataset shards: plain tar files whose members are grouped into samples by key (webdataset
1.x's convention, https://github.com/webdataset/webdataset: a member ``KEY.EXT`` belongs to sample
``KEY``; the key is the name up to its first dot).

What `pipeline export --format webdataset` writes::

    OUT/train-000000.tar  OUT/train-000001.tar ...  OUT/val-000000.tar ...  OUT/unsplit-000000.tar
    OUT/dataset.json      {"format": "pipeline-webdataset", "task", "classes", "class_ids", "shards": [...]}

Each shard holds up to `shard_size` samples (10,000 by default), in a fixed shuffled order (by the
SHA-256 of the id: shards of a class-sorted dataset each hold every class), each as::

    KEY.png | KEY.jpg ...  the image bytes exactly as the dataset stores them (never re-encoded)
    KEY.cls                the class index (position in `classes`) as decimal text; absent without a label
    KEY.json               the sample's full samples.jsonl record (objects, soft label, source, meta, ...)

`KEY` is the sample id percent-encoded (RFC 3986 unreserved characters kept, everything else as
``%XX`` of its UTF-8 bytes, and a ``.`` as ``%2E`` so webdataset's split at the first dot finds the
key; a key that would start with ``__``, which webdataset skips as metadata, starts with ``%5F``):
``urllib.parse.unquote(KEY)`` gives the id back. Tar headers are fixed (mtime 0, uid/gid 0, no
user or group names, mode 0644), so the same dataset always gives the same bytes.

`pipeline import webdataset DIR` reads the shards of DIR (natural order) back: with the
``KEY.json`` records it restores every sample as it was (round trip exact: the same samples.jsonl);
shards other tools wrote (``KEY.jpg`` + ``KEY.cls``, no record) become classification samples whose
class is ``classes[cls]`` from DIR/dataset.json, else the number itself, and whose split is the
shard name's prefix (``train-…``, ``val-…``, ``test-…``). Members are read into memory, never
extracted: names with folders or ``..``, links, devices and members over the size caps below are
reported as bad and skipped. A shard file that is a link out of DIR, or a FIFO, socket or device,
is never opened (skipped, counted and warned about, as every importer does).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tarfile
import urllib.parse
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.dataset import (
    SAMPLES_JSONL,
    Dataset,
    Sample,
    SampleStream,
    dumps_sample,
    parse_sample_line,
)
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import IMAGE_EXTS, sniff
from pipeline.core.limits import MAX_ANNOTATION_JSON_BYTES, MAX_DOCUMENT_ENTRIES, decode_text, load_json
from pipeline.core.paths import SafeFiles, natural_key
from pipeline.formats.base import Detection, ExportReport, ImportContext
from pipeline.formats.splits import split_from_path

NAME = "webdataset"
LOOKS_FOR = "WebDataset tar shards (*.tar of KEY.jpg|png with KEY.cls / KEY.json)"
TASK = "classification"
HOLDS_REVIEWS = True  # KEY.json is the whole record, annotations and predictions included

MANIFEST = "dataset.json"
MANIFEST_FORMAT = "pipeline-webdataset"
MANIFEST_VERSION = 1
DEFAULT_SHARD_SIZE = 10_000
UNSPLIT = "unsplit"
SPLIT_ORDER = ("train", "val", "test", None)

MAX_IMAGE_MEMBER_BYTES = 256 * 2**20  # an image member; larger ones are refused unread
MAX_CLS_BYTES = 64  # a KEY.cls: a class index as text
MAX_MEMBERS = MAX_DOCUMENT_ENTRIES  # members of one shard

_SHARD_NAME = re.compile(r"^(?P<prefix>.+)-(?P<number>\d+)\.tar$")
_IMAGE_SUFFIXES = {ext.lstrip(".") for ext in IMAGE_EXTS}


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def key_for(sample_id: str) -> str:
    """The shard key of a sample id: percent-encoded, no dot, never webdataset's ``__meta__`` form."""
    key = urllib.parse.quote(sample_id, safe="-_~").replace(".", "%2E")
    return "%5F" + key[1:] if key.startswith("__") else key


def id_for(key: str) -> str:
    """The sample id of a shard key (`key_for`'s inverse)."""
    return urllib.parse.unquote(key, errors="strict")


def split_member(name: str) -> tuple[str, str] | None:
    """(key, extension) of a member name as webdataset splits it (at the first dot); None without one."""
    key, dot, ext = name.partition(".")
    if not dot or not key or not ext:
        return None
    return key, ext.lower()


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# The ustar header `tarfile` writes for `_tarinfo(name, size)` in PAX format when the name is ASCII
# of at most 100 bytes and the size fits 11 octal digits: the fields before and after the
# checksum, which is the sum of the header's bytes with the checksum field as 8 spaces.
_HEAD_FIXED = b"0000644\x000000000\x000000000\x00"  # mode, uid, gid
_MTIME = b"00000000000\x00"
_HEAD_TAIL = (b"0" + b"\x00" * 100 + b"ustar\x0000" + b"\x00" * 64 + b"\x00" * 16 + b"\x00" * 155
              + b"\x00" * 12)  # type, linkname, magic, uname, gname, devmajor, devminor, prefix, padding
_FIXED_SUM = sum(_HEAD_FIXED) + sum(_MTIME) + sum(_HEAD_TAIL) + 8 * 32


def _header(name: str, size: int) -> bytes:
    """`_tarinfo(name, size)`'s header block(s) exactly as `tarfile` writes them in PAX format."""
    if len(name) > 100 or not name.isascii() or size >= 8 ** 11:
        return _tarinfo(name, size).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    raw = name.encode("ascii")
    octal = b"%011o\x00" % size
    check = b"%06o\x00 " % (_FIXED_SUM + sum(raw) + sum(octal))
    return b"".join((raw, _NULS[len(raw):], _HEAD_FIXED, octal, _MTIME, check, _HEAD_TAIL))


_NULS = b"\x00" * 100


_PADS = [b"\x00" * n for n in range(tarfile.BLOCKSIZE)]


class _Shard:
    """One tar shard being written: members as `tarfile` lays them out (`_header`, the data, NULs
    to the next 512-byte block; at the end two zero blocks and NULs to a 10240-byte record)."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "wb")  # (closed by `close`)
        self.offset = 0
        self.samples = 0

    def add(self, members: list[tuple[str, bytes]]) -> None:
        """Add the members (name, data), in order."""
        parts = []
        for name, data in members:
            parts += (_header(name, len(data)), data, _PADS[-len(data) % tarfile.BLOCKSIZE])
        data = b"".join(parts)
        self.fh.write(data)
        self.offset += len(data)

    def close(self) -> None:
        end = self.offset + 2 * tarfile.BLOCKSIZE
        self.fh.write(b"\x00" * (2 * tarfile.BLOCKSIZE + -end % tarfile.RECORDSIZE))
        self.fh.close()


class _ImageBytes:
    """`Dataset.read_image_bytes` with the files last read kept (up to `budget` bytes): samples
    sharing a small pool of image files read each file once."""

    def __init__(self, dataset: Dataset, budget: int = 64 << 20) -> None:
        self.dataset = dataset
        self.budget = budget
        self.kept: OrderedDict[str, bytes] = OrderedDict()
        self.size = 0

    def __call__(self, sample: Sample) -> bytes:
        if sample.pack is not None:
            return self.dataset.read_image_bytes(sample)
        data = self.kept.get(sample.image)
        if data is not None:
            self.kept.move_to_end(sample.image)
            return data
        data = self.dataset.read_image_bytes(sample)
        if len(data) <= self.budget // 16:
            self.kept[sample.image] = data
            self.size += len(data)
            while self.size > self.budget:
                self.size -= len(self.kept.popitem(last=False)[1])
        return data


def sample_members(dataset: Dataset, sample: Sample, index: dict[str, int],
                   image: bytes | None = None) -> list[tuple[str, bytes]]:
    """The members of one sample, sorted by name: its image as stored (`image`, else read), its
    class index, its record."""
    key = key_for(sample.id)
    ext = _extension(sample.image)
    members = [(f"{key}.{ext}", dataset.read_image_bytes(sample) if image is None else image),
               (f"{key}.json", (dumps_sample(sample) + "\n").encode("utf-8"))]
    label = sample.label
    if label is None and sample.soft_label:
        label = max(sample.soft_label.items(), key=lambda kv: (kv[1], kv[0]))[0]
    if label is not None:
        members.append((f"{key}.cls", str(index[label]).encode("ascii")))
    return sorted(members)


@functools.lru_cache(maxsize=4096)
def _extension(image: str) -> str:
    """The image member's extension: the image file's, lower case (png without one)."""
    return Path(image).suffix.lower().lstrip(".") or "png"


def shard_order(sample: Sample) -> str:
    """Where a sample goes among the shards: the SHA-256 of its id, a fixed shuffle. Datasets are
    sorted by id, which often means by class (``3/00017``); shards in that order would each hold
    one class, and a stream reading a few at a time would train on one class at a time."""
    return hashlib.sha256(sample.id.encode("utf-8")).hexdigest()


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """Shards of at most `options["shard_size"]` samples per split, and OUT/dataset.json.

    The samples go out in `shard_order`, each to the open shard of its split: a streamed dataset
    is read twice (the ids, then each line where it lies in that order), holding about 60 bytes a
    sample, never the samples themselves."""
    shard_size = int(options.get("shard_size") or DEFAULT_SHARD_SIZE)
    if shard_size < 1:
        raise UsageError(f"--shard-size {shard_size}: a shard holds at least one sample", fix="e.g. --shard-size 10000")
    index = {c: i for i, c in enumerate(dataset.classes)}
    image = _ImageBytes(dataset)
    done: dict[str | None, list[dict]] = {split: [] for split in SPLIT_ORDER}
    open_: dict[str | None, _Shard] = {}

    def finish(split: str | None) -> None:
        shard = open_.pop(split)
        shard.close()
        done[split].append({"file": f"{split or UNSPLIT}-{len(done[split]):06d}.tar", "split": split,
                            "samples": shard.samples})
        report.files += 1
        report.written += shard.samples

    try:
        for sample in _in_shard_order(dataset):
            split = sample.split
            shard = open_.get(split)
            if shard is None:
                shard = open_[split] = _Shard(out / f"{split or UNSPLIT}-{len(done[split]):06d}.tar")
            shard.add(sample_members(dataset, sample, index, image(sample)))
            shard.samples += 1
            if sample.label is None and sample.soft_label:
                report.converted["soft label -> KEY.cls of its largest class"] += 1
            if shard.samples == shard_size:
                finish(split)
    except BaseException as exc:
        for shard in open_.values():
            shard.fh.close()
        if isinstance(exc, DataError):
            _first_error(dataset)  # the error a pass in file order, then in shard order, meets first
        raise
    for split in list(open_):
        finish(split)
    shards = [entry for split in SPLIT_ORDER for entry in done[split]]
    report.converted = +report.converted  # (drop zero counts)
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "task": dataset.task,
                "classes": list(dataset.classes)}
    if dataset.info.class_ids is not None:
        manifest["class_ids"] = dataset.class_ids
    manifest.update(shard_size=shard_size, keys="sample ids percent-encoded, '.' as %2E (urllib.parse.unquote)",
                    shards=shards)
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    report.files += 1


def _in_shard_order(dataset: Dataset) -> Iterator[Sample]:
    """The samples sorted by `shard_order`. A streamed dataset's ids are hashed in one pass over
    samples.jsonl (each line begins with its id, unescaped: `stream.scan` saw to it), and each
    line is then read where it lies and parsed as `SampleStream` parses it."""
    import numpy as np

    samples = dataset.samples
    if not isinstance(samples, SampleStream):
        yield from sorted(samples, key=shard_order)
        return
    digests, starts, sizes, numbers = bytearray(), array("q"), array("q"), array("q")
    key = len(b'{"id":"')
    with open(samples.root / SAMPLES_JSONL, "rb") as fh:
        offset = 0
        for lineno, raw in enumerate(fh, start=1):
            if raw.strip():
                digests += hashlib.sha256(raw[key:raw.index(b'"', key)]).digest()
                starts.append(offset)
                sizes.append(len(raw))
                numbers.append(lineno)
            offset += len(raw)
    order = np.argsort(np.frombuffer(digests, dtype="S32"), kind="stable")  # (ids are unique: no ties)
    del digests
    classes, root = set(dataset.classes), samples.root
    fd = os.open(samples.root / SAMPLES_JSONL, os.O_RDONLY)
    try:
        for at in range(0, len(order), 1 << 16):
            for i in order[at:at + (1 << 16)].tolist():
                line = os.pread(fd, sizes[i], starts[i]).decode("utf-8").rstrip("\n")
                yield parse_sample_line(line, classes, where=SAMPLES_JSONL, line=numbers[i], root=root)
    finally:
        os.close(fd)


def _first_error(dataset: Dataset) -> None:
    """Raise the `DataError` the export meets first when it parses every sample (in file order)
    and then reads the images split by split in shard order, if any: what a failed export reports,
    whatever order it wrote in."""
    for _ in dataset.samples:
        pass
    for split in SPLIT_ORDER:
        for sample in _in_shard_order(dataset):
            if sample.split == split:
                dataset.read_image_bytes(sample)


# --------------------------------------------------------------------------------------------
# Reading shards
# --------------------------------------------------------------------------------------------


@dataclass
class ShardSample:
    """The members of one key of a shard, in the order they came."""

    key: str
    members: dict[str, bytes] = field(default_factory=dict)  # extension -> bytes
    where: str = ""  # "shard.tar:KEY", for messages

    def image(self) -> tuple[str, bytes] | None:
        """(extension, bytes) of the sample's image member, or None."""
        for ext, data in self.members.items():
            if ext in _IMAGE_SUFFIXES:
                return ext, data
        return None


def _cap(ext: str) -> int:
    if ext == "json":
        return MAX_ANNOTATION_JSON_BYTES
    if ext == "cls":
        return MAX_CLS_BYTES
    return MAX_IMAGE_MEMBER_BYTES


def iter_shard(fileobj, where: str, on_bad=None) -> Iterator[ShardSample]:
    """The samples of one tar stream, grouped by key (consecutive members with the same key).

    Members are read into memory, never extracted. A member that is not a plain file (a folder,
    a link, a device), whose name holds a folder or is not ``KEY.EXT``, or that is larger than its
    cap is reported to `on_bad` (a `DataError`) and skipped; a damaged tar ends the shard with a
    `DataError`. Without `on_bad` the first bad member raises.
    """

    def bad(error: DataError) -> None:
        if on_bad is None:
            raise error
        on_bad(error)

    current: ShardSample | None = None
    count = 0
    try:
        with tarfile.open(fileobj=fileobj, mode="r|") as tar:
            for member in tar:
                count += 1
                if count > MAX_MEMBERS:
                    raise DataError(where, f"more than {MAX_MEMBERS:,} members", fix="split the shard")
                name = member.name
                shown = f"{where}:{name}"
                if not member.isreg():
                    kind = "a link" if member.issym() or member.islnk() else ("a folder" if member.isdir()
                                                                             else "not a regular file")
                    if not member.isdir():
                        bad(DataError(shown, f"{kind}; only files are read", fix="write shards of plain files"))
                    continue
                if "/" in name or "\\" in name or name.startswith("..") or "\x00" in name:
                    bad(DataError(shown, "member name holds a folder or '..'; shards are flat",
                                  fix="write shards whose members are KEY.EXT at the top"))
                    continue
                parts = split_member(name)
                if parts is None:
                    bad(DataError(shown, "member name is not KEY.EXT", fix="name members KEY.jpg, KEY.cls, ..."))
                    continue
                key, ext = parts
                if member.size > _cap(ext):
                    bad(DataError(shown, f"member of {member.size:,} bytes, over the limit of {_cap(ext):,} "
                                         f"for .{ext}", fix="check the shard; it is not what it claims to be"))
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if current is not None and current.key != key:
                    yield current
                    current = None
                if current is None:
                    current = ShardSample(key=key, where=f"{where}:{key}")
                if ext in current.members:
                    bad(DataError(shown, "the same member twice", fix="write each KEY.EXT once"))
                    continue
                current.members[ext] = data
    except (tarfile.TarError, EOFError) as exc:
        if current is not None:  # the samples before the damage are whole
            yield current
        if isinstance(exc, EOFError):
            raise DataError(where, "the tar file ends early (truncated)", fix="re-write or remove the shard") from exc
        raise DataError(where, f"not a readable tar file ({exc})", fix="re-write or remove the shard") from exc
    if current is not None:
        yield current


def read_manifest(folder: Path) -> dict | None:
    """OUT/dataset.json of a pipeline export (None when absent or written by something else)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    from pipeline.core.limits import read_capped

    data = load_json(read_capped(path, str(path)), str(path))
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    classes = data.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataError(path, "", field="classes", expected="a list of class names", got=classes,
                        fix="re-export the dataset")
    return data


def shard_paths(root: Path, files: SafeFiles | None = None) -> list[Path]:
    """The *.tar files directly in `root` (natural order), or `root` itself when it is one: only
    what `files` (default: the rule for `root`) may open, so a link out of the folder or a FIFO
    named ``x.tar`` is never opened (an import's `files` counts and warns about each)."""
    root = Path(root)
    safe = files if files is not None else SafeFiles([root])
    if root.is_file():
        return [root] if root.suffix == ".tar" and safe.is_file(root) else []
    if not root.is_dir():
        return []
    names = [e.name for e in os.scandir(root) if e.name.endswith(".tar") and not e.name.startswith(".")]
    return [root / n for n in sorted(names, key=natural_key) if safe.is_file(root / n)]


def detect(root: Path) -> Detection | None:
    shards = shard_paths(root)
    if not shards:
        return None
    if read_manifest(root if Path(root).is_dir() else Path(root).parent) is not None:
        return Detection(score=60, description=f"{len(shards)} WebDataset shards written by pipeline",
                         files=[p.name for p in shards[:50]])
    try:
        with open(shards[0], "rb") as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
            first = next(iter(tar), None)
    except (OSError, tarfile.TarError, EOFError):
        return None
    if first is None or split_member(first.name) is None:
        return None
    return Detection(score=40, description=f"{len(shards)} tar shards of KEY.EXT members (WebDataset)",
                     files=[p.name for p in shards[:50]])


def count(root: Path, paths: list[str]) -> dict[str, int]:
    """Images, objects and classes in the shards, for `pipeline detect` (members read, no image decoded)."""
    root = Path(root)
    images = objects = 0
    labels: set[str] = set()
    for shard in shard_paths(root):
        try:
            with open(shard, "rb") as fh:
                for item in iter_shard(fh, shard.name, on_bad=lambda err: None):
                    images += item.image() is not None
                    record = _json_or_none(item.members.get("json"))
                    if isinstance(record, dict) and isinstance(record.get("objects"), list):
                        objects += len(record["objects"])
                    if "cls" in item.members:
                        labels.add(item.members["cls"].decode("ascii", "replace").strip())
        except (OSError, DataError):
            continue
    manifest = read_manifest(root if root.is_dir() else root.parent)
    classes = len(manifest["classes"]) if manifest is not None else len(labels)
    return {"images": images, "objects": objects, "classes": classes}


def _json_or_none(data: bytes | None):
    try:
        return json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return None


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    shards = shard_paths(root, ctx.files)
    if not shards:
        raise UsageError(f"{root}: no .tar shards", fix="point at the folder of the shards (or one .tar)")
    manifest = read_manifest(root if root.is_dir() else root.parent)
    classes: list[str] = []
    if manifest is not None:
        from pipeline.core.dataset import TASKS

        classes = list(manifest["classes"])
        if manifest.get("task") in TASKS:
            ctx.writer.task = manifest["task"]
        ids = manifest.get("class_ids")
        if isinstance(ids, dict) and all(isinstance(ids.get(c), int) for c in classes):
            ctx.declare_classes(classes, [ids[c] for c in classes], where=MANIFEST)
        else:
            ctx.declare_classes(classes, where=MANIFEST)
    for shard in ctx.progress(shards, total=len(shards), desc="import webdataset", unit="shard"):
        rel = ctx.rel(shard)
        try:
            with open(shard, "rb") as fh:
                for item in iter_shard(fh, rel, on_bad=ctx.bad):
                    _add(item, ctx, classes, split_from_shard(shard.name))
        except DataError as err:
            ctx.bad(err)


def split_from_shard(name: str) -> str | None:
    """The split a shard's name gives (``train-000003.tar`` -> train), or None."""
    m = _SHARD_NAME.match(name)
    return split_from_path(m.group("prefix")) if m else None


def _add(item: ShardSample, ctx: ImportContext, classes: list[str], split: str | None) -> None:
    try:
        sample_id = id_for(item.key)
    except UnicodeDecodeError:
        ctx.bad(DataError(item.where, "key is not percent-encoded UTF-8", fix="re-export the shard"))
        return
    image = item.image()
    if image is None:
        ctx.skip("keys without an image member")
        return
    ext, data = image
    try:
        sample = _record(item, sample_id) if "json" in item.members else _plain(item, sample_id, classes, split)
        if sample is None:
            ctx.skip("keys whose .json is not a pipeline record")
            sample = _plain(item, sample_id, classes, split)
        _check_image(sample, data, item.where)
        if sample.label is not None:
            sample.label = ctx.label(sample.label, where=item.where)
        ctx.add(sample, data=data, ext=ext)
    except DataError as err:
        ctx.bad(err)


def _record(item: ShardSample, sample_id: str) -> Sample | None:
    """The sample a KEY.json record describes (validated as a samples.jsonl line), or None when the
    JSON is not a pipeline record (no ``id``)."""
    from pipeline.core.dataset import parse_sample_line

    text = decode_text(item.members["json"], item.where + ".json", fix="re-export the shard")
    data = load_json(item.members["json"], item.where + ".json")
    if not isinstance(data, dict) or "id" not in data:
        return None
    if data["id"] != sample_id:
        raise DataError(item.where + ".json", "", field="id", expected=f"the key's id {sample_id!r}",
                        got=data["id"], fix="re-export the shard (a member was renamed)")
    # labels are checked against the class list when the dataset is written
    sample = parse_sample_line(text.strip(), _Anything(), where=item.where + ".json")
    sample.image, sample.pack = "", None
    return sample


class _Anything:
    """A class list that holds every name (a record's labels are checked by the dataset writer)."""

    def __contains__(self, name: object) -> bool:
        return True


def _plain(item: ShardSample, sample_id: str, classes: list[str], split: str | None) -> Sample:
    """A sample from members alone: KEY.cls as the class (its name from dataset.json when known)."""
    label = None
    if "cls" in item.members:
        text = item.members["cls"].decode("ascii", "replace").strip()
        if not text.isdigit():
            raise DataError(item.where + ".cls", "", expected="a class index (decimal digits)", got=text[:40],
                            fix="write the class index as text, e.g. 3")
        index = int(text)
        if classes and index >= len(classes):
            raise DataError(item.where + ".cls", "", expected=f"an index below {len(classes)} (dataset.json classes)",
                            got=index, fix="re-export the shard with its dataset.json")
        label = classes[index] if classes else str(index)
    return Sample(id=sample_id, split=split, label=label, source={"file": item.where.rsplit(":", 1)[0],
                                                                   "key": item.key})


def _check_image(sample: Sample, data: bytes, where: str) -> None:
    """The image member decodes (pixel limit first) and matches its record's size and hash."""
    from pipeline.core.images import open_image_bytes

    if sniff(data[:16]) is None:
        raise DataError(where, "image member is not an image (unknown file signature)", fix="re-export the shard")
    img = open_image_bytes(data, where)
    digest = hashlib.sha256(data).hexdigest()
    if sample.sha256 and sample.sha256 != digest:
        raise DataError(where, "", field="sha256", expected=f"the record's {sample.sha256[:12]}…",
                        got=f"{digest[:12]}… (the image member was changed)", fix="re-export the shard")
    if sample.width and (sample.width, sample.height) != img.size:
        raise DataError(where, "", field="width/height", expected=f"{sample.width}x{sample.height} (the record)",
                        got=f"{img.width}x{img.height}", fix="re-export the shard")
    sample.width, sample.height, sample.sha256 = img.width, img.height, digest
