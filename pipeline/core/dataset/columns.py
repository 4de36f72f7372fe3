"""Whole-file queries of samples.jsonl with DuckDB: what the stages that need every sample at
once (stats, check, split, the tensor cache) read instead of a Python object per sample.

DuckDB reads JSON lines natively, on every core, at about a second per million lines here
(parsing them one by one in Python takes seven). It answers only for *plain* files: every line
as `validation.parse_sample_line` accepts it (checked in SQL: types, the sha256 pattern, splits,
labels of dataset.json, paths inside the folder) and holding no objects, soft labels, reviews,
packs or stage records (`meta`). For any other file (a line that fails a check, or one holding
those fields) `plain_counts` returns None and `plain_rows` raises `NotPlain`, and the stage reads
the samples themselves: the strict Python parser then reports any error exactly as before. SQL never accepts what the parser refuses;
it may refuse what the parser accepts, which only costs speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pipeline.core.dataset.model import SAMPLES_JSONL, DatasetInfo

SPLIT_CODES = {"train": 0, "val": 1, "test": 2, None: -1}
_BATCH = 1 << 17  # rows per Arrow batch

_FIELDS = ("id", "image", "width", "height", "sha256", "split", "label", "soft_label", "objects",
           "annotations", "predictions", "source", "meta", "pack")

# A JSON column cast to VARCHAR is the value's JSON text: a string's begins with a quote, an
# object's with a brace, a positive integer's is plain digits (what would not read so is refused).
_OK = """
    starts_with(id::VARCHAR, '"') AND id::VARCHAR <> '""'
    AND starts_with(image::VARCHAR, '"') AND image::VARCHAR <> '""'
    AND NOT regexp_matches(image->>'$', '^(/|\\\\|[A-Za-z]:)|(^|/)\\.\\.(/|$)')
    AND regexp_full_match(width::VARCHAR, '[1-9][0-9]{0,17}')
    AND regexp_full_match(height::VARCHAR, '[1-9][0-9]{0,17}')
    AND regexp_full_match(sha256::VARCHAR, '"[0-9a-f]{64}"')
    AND (split IS NULL OR split::VARCHAR IN ('"train"', '"val"', '"test"'))
    AND (label IS NULL OR (starts_with(label::VARCHAR, '"') AND list_contains($classes, label->>'$')))
    AND (source IS NULL OR starts_with(source::VARCHAR, '{'))
    AND (meta IS NULL OR meta::VARCHAR = '{}')
    AND soft_label IS NULL AND objects IS NULL AND annotations IS NULL AND predictions IS NULL AND pack IS NULL
"""


def _connect():
    import duckdb

    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.execute("SET memory_limit = '256MB'")
    return con


def _source(path: Path) -> str:
    columns = ", ".join(f"'{name}': 'JSON'" for name in _FIELDS)
    quoted = str(path).replace("'", "''")
    return f"read_json('{quoted}', format = 'newline_delimited', columns = {{{columns}}})"


def plain_counts(root: Path, info: DatasetInfo, expected: int | None) -> list[tuple] | None:
    """(split code, class index or -1, width, height, count) of every combination present, when the
    file is plain (module docstring) and holds `expected` lines (any number: None); else None."""
    import duckdb

    query = f"""
        SELECT CASE split::VARCHAR WHEN '"train"' THEN 0 WHEN '"val"' THEN 1 WHEN '"test"' THEN 2 ELSE -1 END AS sp,
               coalesce(list_position($classes, label->>'$'), 0) - 1 AS cls,
               TRY_CAST(width::VARCHAR AS BIGINT) AS w, TRY_CAST(height::VARCHAR AS BIGINT) AS h,
               count(*) AS n, bool_and(coalesce({_OK}, false)) AS ok
        FROM {_source(root / SAMPLES_JSONL)} GROUP BY ALL"""
    try:
        con = _connect()
        rows = con.execute(query, {"classes": list(info.classes)}).fetchall()
    except duckdb.Error:
        return None  # not JSON lines DuckDB reads (the parser says why, or reads them itself)
    if not all(r[5] for r in rows) or (expected is not None and sum(r[4] for r in rows) != expected):
        return None
    return [r[:5] for r in rows]


class NotPlain(Exception):
    """The file is not plain (module docstring): read its samples instead."""


def plain_rows(root: Path, info: DatasetInfo, expected: int | None, *, ids: bool = False,
               images: bool = False) -> Iterator[dict]:
    """Batches of per-row columns of a plain file, in file order: ``split`` (int8, `SPLIT_CODES`),
    ``label`` (int32 class index, -1 none), ``width``/``height`` (int64), ``sha`` (the digests, an
    Arrow string array), and with `ids`/`images` the ``id``/``image`` strings (Arrow arrays).
    Raises `NotPlain` (before its first batch, or later: the caller drops what it took) when the
    file is not plain or does not hold `expected` lines (any number: None)."""
    import duckdb

    seen = 0
    try:
        for batch in _batches(root, info, ids, images):
            if not batch.column("ok").to_numpy(zero_copy_only=False).all():
                raise NotPlain
            seen += batch.num_rows
            yield _columns(batch, ids, images)
    except duckdb.Error as exc:
        raise NotPlain from exc
    if expected is not None and seen != expected:
        raise NotPlain


def _batches(root: Path, info: DatasetInfo, ids: bool, images: bool) -> Iterator:
    """The query of `plain_rows`, batch by batch."""
    extra = (", id->>'$' AS id" if ids else "") + (", image->>'$' AS image" if images else "")
    query = f"""
        SELECT CASE split::VARCHAR WHEN '"train"' THEN 0 WHEN '"val"' THEN 1 WHEN '"test"' THEN 2 ELSE -1 END::TINYINT AS sp,
               (coalesce(list_position($classes, label->>'$'), 0) - 1)::INTEGER AS cls,
               TRY_CAST(width::VARCHAR AS BIGINT) AS w, TRY_CAST(height::VARCHAR AS BIGINT) AS h,
               sha256->>'$' AS sha, coalesce({_OK}, false) AS ok {extra}
        FROM {_source(root / SAMPLES_JSONL)}"""
    con = _connect()
    reader = con.sql(query, params={"classes": list(info.classes)}).to_arrow_reader(_BATCH)
    yield from reader


def _columns(batch, ids: bool, images: bool) -> dict:
    out: dict = {
        "split": batch.column("sp").to_numpy(),
        "label": batch.column("cls").to_numpy(),
        "width": batch.column("w").to_numpy(),
        "height": batch.column("h").to_numpy(),
        "sha": batch.column("sha"),
    }
    if ids:
        out["id"] = batch.column("id")
    if images:
        out["image"] = batch.column("image")
    return out
