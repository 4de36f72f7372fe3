"""The lines of samples.jsonl: one serializer for every sample line, and the file they go to.

A line is compact JSON in UTF-8 with the keys in `Sample.to_json`'s order. It is rendered in two
parts: the sample's body (`dumps_body`: every field after the id, the image and the pack, itself a
JSON object) and then the line (`sample_line`: id, image and pack reference put before the body).
A stage whose workers render their copies before it is known where their images go renders the
body there and the line once the image is stored: the same bytes as `dumps_sample`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import NamedTuple

from pipeline.core.dataset.model import Obj, Sample

# one encoder for every line (json.dumps with options builds a new one per call). Without the
# circular-reference bookkeeping, which is half the encoding time of a line: what it encodes is a
# tree (a sample's fields, objects and attributes, built by the model or read from JSON/XML), and a
# cycle would still stop it (RecursionError) rather than write anything.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False).encode


class RenderedObjects(NamedTuple):
    """A sample's objects already rendered as the JSON array its line holds (`dumps_objects`, or
    `dumps_object` texts joined by `join_objects`), and the class names they use. A reader that
    streams a large file renders each object as it is read instead of keeping an `Obj` for it."""

    text: str
    labels: frozenset[str]


def dumps_object(obj: Obj | dict) -> str:
    """One object as its samples.jsonl text: `Obj.to_json`'s dict (or that dict itself) rendered."""
    return _encode(obj.to_json() if isinstance(obj, Obj) else obj)


@functools.lru_cache(maxsize=1024)
def _label_json(label: str) -> str:
    return encode_basestring(label)


@functools.lru_cache(maxsize=256)
def _ring_format(values: int) -> str:
    """``[[%r,%r],...]`` for a ring of `values` // 2 points: one C-level formatting per ring."""
    return "[" + ",".join(["[%r,%r]"] * (values // 2)) + "]"


def dumps_box_object(label: str, bbox: list[float], rings: Sequence[Sequence[float]] = (),
                     attributes: dict | None = None) -> str:
    """`dumps_object` of ``Obj(label, bbox=bbox, polygon=..., attributes=...)`` written directly
    (a sixth of the encoder's time, once per object of a large COCO file): `bbox` and the rings'
    coordinates finite ints or floats (no bools), each ring given flat (``x1, y1, x2, y2, ...``,
    as COCO writes it, an even count) and converted to floats as the polygon would hold them; no
    rings: no polygon. The same text as the encoder's (numbers as ``repr``, as `json` writes them)."""
    text = '{"label":%s,"bbox":[%r,%r,%r,%r]' % (_label_json(label), *bbox)  # noqa: UP031
    if rings:
        text += ',"polygon":[' + ",".join([_ring_format(len(flat)) % tuple(map(float, flat)) for flat in rings]) + "]"
    if attributes:
        text += ',"attributes":' + _encode(attributes)
    return text + "}"


def join_objects(texts: Iterable[str], labels: Iterable[str]) -> RenderedObjects:
    """The objects array of a line from `dumps_object` texts, in order."""
    return RenderedObjects("[" + ",".join(texts) + "]", frozenset(labels))


def dumps_body(sample: Sample, objects: RenderedObjects | None = None) -> str:
    """`sample`'s fields after the id, the image and the pack, as a compact JSON object. With
    `objects`, those are the sample's objects (its own `objects` must be None): the same text as
    the sample holding them as `Obj`s."""
    if objects is None:
        return _encode(sample.body_json())
    if sample.objects is not None:
        raise ValueError("dumps_body: objects given twice (as Objs and rendered)")
    body = sample.body_json()
    keys = list(body)
    cut = keys.index("soft_label") + 1 if "soft_label" in body else keys.index("label") + 1  # objects' place
    head = _encode({k: body[k] for k in keys[:cut]})
    tail = {k: body[k] for k in keys[cut:]}
    return f'{head[:-1]},"objects":{objects.text}' + (f",{_encode(tail)[1:]}" if tail else "}")


def sample_line(sample_id: str, image: str, pack: dict | None, body: str) -> str:
    """The samples.jsonl line (no newline) of the sample with this id, image path, pack reference
    (``{"file", "offset", "length"}``, or None for an image stored as a file) and `dumps_body`."""
    packed = "" if pack is None else f',"pack":{_pack_json(pack)}'
    return f'{{"id":{encode_basestring(sample_id)},"image":{encode_basestring(image)}{packed},{body[1:]}'


def _pack_json(pack: dict) -> str:
    """`pack` as compact JSON; a plain reference written directly (a quarter of the encoder's time,
    once per packed copy in the process that writes the output)."""
    if len(pack) == 3 and type(pack.get("offset")) is int and type(pack.get("length")) is int \
            and type(pack.get("file")) is str and list(pack) == ["file", "offset", "length"]:
        return f'{{"file":{_json_str(pack["file"])},"offset":{pack["offset"]},"length":{pack["length"]}}}'
    return _encode(pack)


@functools.lru_cache(maxsize=64)
def _json_str(text: str) -> str:
    return encode_basestring(text)  # (a run's few pack names, each encoded once)


def dumps_sample(sample: Sample, objects: RenderedObjects | None = None) -> str:
    """The exact bytes (as text) of one samples.jsonl line: stable key order, compact, UTF-8
    (`objects`: the sample's objects, rendered; see `dumps_body`)."""
    return sample_line(sample.id, sample.image, sample.pack, dumps_body(sample, objects))


def sorted_lines(samples: Iterable[Sample]) -> list[str]:
    """The samples.jsonl lines of `samples`, in id order."""
    return [dumps_sample(s) for s in sorted(samples, key=lambda s: s.id)]


def write_lines(path: str | os.PathLike, lines: list[str], chunk: int = 4096, chunk_chars: int = 1 << 20) -> str:
    """Write `lines` to `path`, each ended by a newline, and fsync it; returns the file's SHA-256.
    Encoded, hashed and written at most `chunk` lines or about `chunk_chars` characters at a
    time (lines of a thousand objects each are long): no second copy of a large samples.jsonl in
    memory."""
    digest = hashlib.sha256()
    with open(Path(path), "wb") as fh:
        i = 0
        while i < len(lines):
            j, size = i, 0
            while j < len(lines) and j - i < chunk and (size < chunk_chars or j == i):
                size += len(lines[j]) + 1
                j += 1
            data = ("\n".join(lines[i:j]) + "\n").encode("utf-8")
            digest.update(data)
            fh.write(data)
            i = j
        fh.flush()
        os.fsync(fh.fileno())
    return digest.hexdigest()
