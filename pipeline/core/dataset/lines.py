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
from collections.abc import Iterable
from json.encoder import encode_basestring
from pathlib import Path

from pipeline.core.dataset.model import Sample

# one encoder for every line (json.dumps with options builds a new one per call)
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dumps_body(sample: Sample) -> str:
    """`sample`'s fields after the id, the image and the pack, as a compact JSON object."""
    return _encode(sample.body_json())


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


def dumps_sample(sample: Sample) -> str:
    """The exact bytes (as text) of one samples.jsonl line: stable key order, compact, UTF-8."""
    return sample_line(sample.id, sample.image, sample.pack, dumps_body(sample))


def sorted_lines(samples: Iterable[Sample]) -> list[str]:
    """The samples.jsonl lines of `samples`, in id order."""
    return [dumps_sample(s) for s in sorted(samples, key=lambda s: s.id)]


def write_lines(path: str | os.PathLike, lines: list[str], chunk: int = 4096) -> str:
    """Write `lines` to `path`, each ended by a newline, and fsync it; returns the file's SHA-256.
    Encoded, hashed and written a few thousand lines at a time: no second copy of a large
    samples.jsonl in memory."""
    digest = hashlib.sha256()
    with open(Path(path), "wb") as fh:
        for i in range(0, len(lines), chunk):
            data = ("\n".join(lines[i:i + chunk]) + "\n").encode("utf-8")
            digest.update(data)
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return digest.hexdigest()
