"""The browser's query engine: a DuckDB index of `samples.jsonl`, built once and cached.

A million samples do not fit in Python lists within the memory we allow `pipeline view` (under
1 GB), and a filter must answer in well under a second, so the server keeps no samples in memory.
The first start streams `samples.jsonl` once, validating every line as `load_dataset` does
(errors name the line and the field), and writes one row per sample into a DuckDB file: the fields
the page filters on (split, classes, augmented, id and image for the text search) and where the
sample's line starts in `samples.jsonl` and how long it is. The page's samples are then read back
with one `pread` each and parsed by the same strict parser, so what the page shows is what the
file says. `check`'s findings about a sample's record (`pipeline.check.sample_findings`) and its
duplicate-image findings (`duplicate_findings`) are indexed beside them.

Cache layout (under `tensor_cache.cache_root()`, beside the tensor cache)::

    view/<key>/index.duckdb     tables samples, findings and meta
    view/<key>/meta.json        the dataset's folder, samples_sha256 and the build time

`key` hashes the sha256 of `samples.jsonl` (the dataset's `samples_sha256`), its task and classes
and `INDEX_VERSION`: an edited dataset gets a new index and the stale one for the same folder is
removed. The folder is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core import ui
from pipeline.core.dataset import DATASET_JSON, SAMPLES_JSONL, DatasetInfo, Sample, finish_update
from pipeline.core.dataset.validation import parse_sample_line, read_info
from pipeline.core.errors import DataError, UsageError

INDEX_VERSION = 1
CHUNK = 50_000  # rows handed to DuckDB at once: bounded memory for any dataset size
MEMORY_LIMIT = "384MB"  # DuckDB's own buffers; the server stays well under 1 GB
AUGMENT_STAGES = ("augment",)


@dataclass(frozen=True)
class Filters:
    """What the page asks for; every field optional. Values are checked by `Index.check_filters`."""

    split: str | None = None  # train | val | test | none (unsplit)
    label: str | None = None  # a class: samples whose label, soft label or objects use it
    finding: str | None = None  # a check code, or "any"
    q: str | None = None  # text in the id or the image path (case-insensitive)
    augmented: bool | None = None  # True: augmented copies only; False: originals only
    issues: bool = False  # only samples with a label issue (--issues), in rank order
    max_rank: int | None = None  # with issues: ranks up to this one
    disagree: bool = False  # only samples whose prediction (--run) differs from the label
    edited: bool = False  # only samples with pending edits


@dataclass(frozen=True)
class Row:
    """Where one sample's line is: its row in id order, byte offset and length in samples.jsonl."""

    row: int
    id: str
    offset: int
    length: int


def samples_digest(root: Path) -> str:
    """sha256 of samples.jsonl (what dataset.json records as `samples_sha256`)."""
    h = hashlib.sha256()
    with open(root / SAMPLES_JSONL, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def index_key(digest: str, info: DatasetInfo) -> str:
    text = json.dumps({"samples": digest, "task": info.task, "classes": info.classes, "v": INDEX_VERSION},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _augmented(sample: Sample) -> bool:
    return sample.source.get("stage") in AUGMENT_STAGES or bool(sample.source.get("parents"))


def _classes(sample: Sample) -> list[str]:
    names = {sample.label} if sample.label is not None else set()
    names.update(k for k, v in (sample.soft_label or {}).items() if v > 0)
    names.update(o.label for o in sample.objects or ())
    return sorted(names)


class Index:
    """A read-only view of one dataset's index plus the session's own tables (issues, predictions,
    edited ids) in memory. Thread-safe: every query holds one lock (DuckDB connections are not
    shared between threads)."""

    def __init__(self, root: Path, info: DatasetInfo, path: Path, meta: dict[str, Any]) -> None:
        import duckdb

        self.root = root
        self.info = info
        self.path = path
        self.meta = meta
        self._lock = threading.Lock()
        self._con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": 2})
        self._con.execute(f"ATTACH '{_sql_path(path)}' AS ix (READ_ONLY)")
        self._con.execute("CREATE TEMP TABLE issues (id VARCHAR, rank INTEGER, score DOUBLE, given VARCHAR, "
                          "suggested VARCHAR, kind VARCHAR)")
        self._con.execute("CREATE TEMP TABLE preds (id VARCHAR, predicted VARCHAR, score DOUBLE)")
        self._con.execute("CREATE TEMP TABLE edited (id VARCHAR)")
        self._fd = os.open(root / SAMPLES_JSONL, os.O_RDONLY)
        self._classes = set(info.classes)
        self.has_issues = False
        self.has_predictions = False

    # --- session tables ---------------------------------------------------------------
    def add_issues(self, rows: list[tuple[str, int, float | None, str | None, str | None, str | None]]) -> None:
        with self._lock:
            if rows:
                self._con.executemany("INSERT INTO issues VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.has_issues = True

    def add_predictions(self, ids: list[str], predicted: list[str], scores: list[float]) -> None:
        import pyarrow as pa

        table = pa.table({"id": ids, "predicted": predicted, "score": scores})
        with self._lock:
            self._con.register("_new_preds", table)
            self._con.execute("INSERT INTO preds SELECT * FROM _new_preds")
            self._con.unregister("_new_preds")
            self.has_predictions = True

    def mark_edited(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._lock:
            self._con.executemany("INSERT INTO edited SELECT ? WHERE NOT EXISTS (SELECT 1 FROM edited WHERE id = ?)",
                                  [(i, i) for i in ids])

    # --- lookups ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.meta["samples"])

    def row(self, sample_id: str) -> Row | None:
        with self._lock:
            got = self._con.execute("SELECT row, id, off, len FROM ix.samples WHERE id = ?", [sample_id]).fetchone()
        return Row(*got) if got else None

    def existing(self, ids: list[str]) -> set[str]:
        """Which of `ids` the dataset has."""
        with self._lock:
            got = self._con.execute("SELECT id FROM ix.samples WHERE id IN (SELECT unnest(?))", [ids]).fetchall()
        return {r[0] for r in got}

    def sample(self, row: Row) -> Sample:
        """The sample on `row`, read from samples.jsonl and validated like any line of it."""
        data = os.pread(self._fd, row.length, row.offset)
        return parse_sample_line(data.decode("utf-8"), self._classes, where=SAMPLES_JSONL, line=None, root=self.root)

    def findings_of(self, sample_id: str) -> list[dict[str, str]]:
        with self._lock:
            got = self._con.execute("SELECT code, level, message FROM ix.findings WHERE id = ? ORDER BY seq",
                                    [sample_id]).fetchall()
        return [{"code": c, "level": lv, "message": m} for c, lv, m in got]

    def issue_of(self, sample_id: str) -> dict[str, Any] | None:
        with self._lock:
            got = self._con.execute("SELECT rank, score, given, suggested, kind FROM issues WHERE id = ?",
                                    [sample_id]).fetchone()
        return dict(zip(("rank", "score", "given", "suggested", "kind"), got, strict=True)) if got else None

    def prediction_of(self, sample_id: str) -> dict[str, Any] | None:
        with self._lock:
            got = self._con.execute("SELECT predicted, score FROM preds WHERE id = ?", [sample_id]).fetchone()
        return {"label": got[0], "score": got[1]} if got else None

    # --- queries ----------------------------------------------------------------------
    def _where(self, f: Filters) -> tuple[str, str, list[Any]]:
        joins, conds, params = [], [], []
        if f.split is not None:
            conds.append("s.split IS NULL" if f.split == "none" else "s.split = ?")
            params += [] if f.split == "none" else [f.split]
        if f.label is not None:
            conds.append("list_contains(s.classes, ?)")
            params.append(f.label)
        if f.finding is not None:
            if f.finding == "any":
                conds.append("s.id IN (SELECT id FROM ix.findings)")
            else:
                conds.append("s.id IN (SELECT id FROM ix.findings WHERE code = ?)")
                params.append(f.finding)
        if f.q:
            conds.append("(contains(lower(s.id), ?) OR contains(lower(s.image), ?))")
            params += [f.q.lower(), f.q.lower()]
        if f.augmented is not None:
            conds.append("s.augmented" if f.augmented else "NOT s.augmented")
        if f.issues:
            joins.append("JOIN issues i ON i.id = s.id")
            if f.max_rank is not None:
                conds.append("i.rank <= ?")
                params.append(f.max_rank)
        if f.disagree:
            joins.append("JOIN preds p ON p.id = s.id")
            conds.append("p.predicted IS DISTINCT FROM s.label")
        if f.edited:
            conds.append("s.id IN (SELECT id FROM edited)")
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        return " ".join(joins), where, params

    def query(self, f: Filters, offset: int, limit: int) -> tuple[int, list[Row]]:
        """(how many samples pass the filters, the rows of the page [offset, offset + limit))."""
        joins, where, params = self._where(f)
        order = "i.rank, s.row" if f.issues else "s.row"
        base = f"FROM ix.samples s {joins}{where}"
        with self._lock:
            total = self._con.execute(f"SELECT count(*) {base}", params).fetchone()[0]
            got = self._con.execute(f"SELECT s.row, s.id, s.off, s.len {base} ORDER BY {order} LIMIT ? OFFSET ?",
                                    [*params, limit, offset]).fetchall()
        return int(total), [Row(*r) for r in got]

    def stats(self, f: Filters) -> dict[str, Any]:
        """Counts that follow the filters: samples per split, samples per class, samples per finding."""
        joins, where, params = self._where(f)
        base = f"FROM ix.samples s {joins}{where}"
        with self._lock:
            total = self._con.execute(f"SELECT count(*) {base}", params).fetchone()[0]
            splits = self._con.execute(f"SELECT coalesce(s.split, 'none'), count(*) {base} GROUP BY 1",
                                       params).fetchall()
            classes = self._con.execute(f"SELECT c, count(*) FROM (SELECT unnest(s.classes) AS c {base}) GROUP BY c",
                                        params).fetchall()
            findings = self._con.execute(
                f"SELECT code, count(DISTINCT id) FROM ix.findings WHERE id IN (SELECT s.id {base}) GROUP BY code",
                params).fetchall()
            augmented = self._con.execute(f"SELECT count(*) FILTER (WHERE s.augmented) {base}", params).fetchone()[0]
        split_counts = dict(splits)
        class_counts = dict(classes)
        return {
            "total": int(total),
            "splits": {k: int(split_counts.get(k, 0)) for k in ("train", "val", "test", "none") if k in split_counts},
            "classes": {c: int(class_counts.get(c, 0)) for c in self.info.classes},
            "findings": {k: int(v) for k, v in sorted(findings)},
            "augmented": int(augmented or 0),
        }

    def close(self) -> None:
        with self._lock:
            self._con.close()
            os.close(self._fd)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def open_index(root: str | os.PathLike, *, cache: Path | None = None) -> Index:
    """The dataset's index: the cached one when samples.jsonl is unchanged, otherwise built now."""
    from pipeline.tensor_cache import cache_root

    root = Path(root)
    if not (root / DATASET_JSON).is_file() or not (root / SAMPLES_JSONL).is_file():
        raise UsageError(f"{root}: not a pipeline dataset (no {DATASET_JSON} and {SAMPLES_JSONL})",
                         fix="point at a folder written by `pipeline import`, `fetch` or another stage")
    info = read_info(root)
    digest = samples_digest(root)
    if info.samples_sha256 and digest != info.samples_sha256:
        if not finish_update(root, digest):
            raise DataError(root / DATASET_JSON, "does not match samples.jsonl (an update was interrupted, or the "
                            "file was edited by hand)", field="samples_sha256",
                            fix="re-run the stage that wrote this dataset")
        info = read_info(root)
    folder = Path(cache if cache is not None else cache_root()) / "view" / index_key(digest, info)
    meta = _read_meta(folder)
    if meta is None:
        meta = build_index(root, info, folder, digest)
    return Index(root, info, folder / "index.duckdb", meta)


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("version") != INDEX_VERSION or not (folder / "index.duckdb").is_file():
        return None
    return meta


def build_index(root: Path, info: DatasetInfo, folder: Path, digest: str) -> dict[str, Any]:
    """Stream samples.jsonl into a new index at `folder` (temporary folder, renamed when complete)."""
    import duckdb

    start = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        con = duckdb.connect(str(tmp / "index.duckdb"), config={"memory_limit": MEMORY_LIMIT, "threads": 2})
        try:
            count, dataset_findings = _fill(con, root, info)
        finally:
            con.close()
        meta = {"version": INDEX_VERSION, "dataset": str(root.resolve()), "samples_sha256": digest,
                "samples": count, "dataset_findings": dataset_findings,
                "build_seconds": round(time.perf_counter() - start, 3)}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_stale(folder, meta["dataset"])
    return meta


def _fill(con, root: Path, info: DatasetInfo) -> tuple[int, list[dict]]:
    """Load every line into table `staging`, then sort it into `samples` and index the findings."""
    import pyarrow as pa

    from pipeline.check import CHECKS, class_findings, count_instances, duplicate_findings, sample_findings

    con.execute("CREATE TABLE staging (id VARCHAR, image VARCHAR, split VARCHAR, label VARCHAR, classes VARCHAR[], "
                "augmented BOOLEAN, sha256 VARCHAR, off BIGINT, len INTEGER, line INTEGER)")
    con.execute("CREATE TABLE findings (id VARCHAR, code VARCHAR, level VARCHAR, message VARCHAR, seq INTEGER)")
    classes = set(info.classes)
    cols: dict[str, list] = {k: [] for k in ("id", "image", "split", "label", "classes", "augmented", "sha256",
                                              "off", "len", "line")}
    found: dict[str, list] = {k: [] for k in ("id", "code", "level", "message", "seq")}
    seen: set[str] = set()
    instances: dict[str, dict[str, int]] = {c: {} for c in info.classes}
    splits: set[str] = set()
    count = 0
    seq = 0

    def flush() -> None:
        for name, data, table in (("staging", cols, "_chunk"), ("findings", found, "_found")):
            if data["id"]:
                con.register(table, pa.table(data))
                con.execute(f"INSERT INTO {name} SELECT * FROM {table}")
                con.unregister(table)
                for v in data.values():
                    v.clear()

    size = os.path.getsize(root / SAMPLES_JSONL)
    with open(root / SAMPLES_JSONL, "rb") as fh, ui.progress(total=size, desc="index samples (once)", unit="B",
                                                              ) as bar:
        offset = 0
        for lineno, raw in enumerate(fh, start=1):
            length = len(raw)
            text = raw.decode("utf-8")
            if text.strip():
                s = parse_sample_line(text, classes, where=SAMPLES_JSONL, line=lineno, root=root)
                if s.id in seen:
                    raise DataError(SAMPLES_JSONL, "duplicate id", line=lineno, field="id",
                                    expected="an id used once", got=s.id)
                seen.add(s.id)
                count += 1
                count_instances(s, instances)
                if s.split:
                    splits.add(s.split)
                for key, value in (("id", s.id), ("image", s.image), ("split", s.split), ("label", s.label),
                                   ("classes", _classes(s)), ("augmented", _augmented(s)), ("sha256", s.sha256),
                                   ("off", offset), ("len", len(raw.rstrip(b"\r\n"))), ("line", lineno)):
                    cols[key].append(value)
                for finding in sample_findings(s):
                    seq += 1
                    for key, value in (("id", s.id), ("code", finding.code), ("level", CHECKS[finding.code][0]),
                                       ("message", finding.message), ("seq", seq)):
                        found[key].append(value)
                if len(cols["id"]) >= CHUNK:
                    flush()
            offset += length
            bar.update(length)
    flush()
    seen.clear()
    con.execute("CREATE TABLE samples AS SELECT (row_number() OVER (ORDER BY id) - 1)::INTEGER AS row, * "
                "FROM staging ORDER BY id")
    con.execute("DROP TABLE staging")
    _index_duplicates(con, seq, duplicate_findings)
    return count, [f.to_json() for f in class_findings(instances, info.classes, sorted(splits))]


def _index_duplicates(con, seq: int, duplicate_findings) -> int:
    """`check`'s duplicate, leakage and conflicting-label findings, one group of equal hashes at a time;
    each finding is listed under every sample of its group."""
    groups = con.execute("SELECT sha256, list(id ORDER BY row), list(split ORDER BY row), list(label ORDER BY row) "
                         "FROM samples GROUP BY sha256 HAVING count(*) > 1 ORDER BY min(row)").fetchall()
    from pipeline.check import CHECKS

    rows = []
    for digest, ids, splits, labels in groups:
        light = [Sample(id=i, split=sp, label=lb) for i, sp, lb in zip(ids, splits, labels, strict=True)]
        for finding in duplicate_findings({digest: light}):
            for member in finding.detail.get("samples", [finding.sample]):
                seq += 1
                rows.append((member, finding.code, CHECKS[finding.code][0], finding.message, seq))
    if rows:
        con.executemany("INSERT INTO findings VALUES (?, ?, ?, ?, ?)", rows)
    return seq


def _remove_stale(keep: Path, dataset_path: str) -> None:
    """Delete older indexes of the same dataset folder (its samples changed since they were built)."""
    for other in sorted(keep.parent.iterdir()):
        if other == keep or other.name.startswith("."):
            continue
        meta = _read_meta(other)
        if meta is not None and meta.get("dataset") == dataset_path:
            shutil.rmtree(other, ignore_errors=True)
