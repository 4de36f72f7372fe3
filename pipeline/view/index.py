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
            con.execute(f"SET temp_directory = '{_sql_path(tmp / 'spill')}'")
            stats: dict[str, Any] = {}
            count, dataset_findings = _fill(con, root, info, tmp, stats)
        finally:
            con.close()
        meta = {"version": INDEX_VERSION, "dataset": str(root.resolve()), "samples_sha256": digest,
                "samples": count, "dataset_findings": dataset_findings, **stats,
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


def _ranges(path: Path, parts: int) -> list[tuple[int, int, int]]:
    """`parts` byte ranges of `path` that start and end on line boundaries, each with the number of
    its first line (so a worker's errors name the line as `load_dataset` would)."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as fh:
        for k in range(1, parts):
            fh.seek(max(size * k // parts, cuts[-1]))
            fh.readline()
            cuts.append(min(fh.tell(), size))
    cuts.append(size)
    out, line = [], 1
    with open(path, "rb") as fh:
        for start, end in zip(cuts, cuts[1:], strict=False):
            out.append((start, end, line))
            fh.seek(start)
            left = end - start
            while left > 0:
                block = fh.read(min(left, 1 << 24))
                line += block.count(b"\n")
                left -= len(block)
    return [r for r in out if r[1] > r[0]]


@dataclass
class Part:
    """What a worker found in its byte range of samples.jsonl."""

    count: int
    instances: dict[str, dict[str, int]]
    splits: list[str]
    ascending: bool  # ids strictly increasing within the range (so no duplicates in it)
    first: str | None
    last: str | None
    peak_mb: float  # the worker's peak resident memory so far
    pid: int  # the worker process


def index_range(path: str, start: int, end: int, first_line: int, classes: list[str], out: str) -> Part:
    """Validate the lines in bytes [start, end) of samples.jsonl and write their rows and findings
    as Parquet files `out`-samples.parquet and `out`-findings.parquet. Runs in a worker process."""
    import resource

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.check import CHECKS, count_instances, sample_findings

    names = set(classes)
    instances: dict[str, dict[str, int]] = {c: {} for c in classes}
    splits: set[str] = set()
    schema = pa.schema([("lrow", pa.int32()), ("id", pa.string()), ("image", pa.string()), ("split", pa.string()), ("label", pa.string()),
                        ("classes", pa.list_(pa.string())), ("augmented", pa.bool_()), ("sha256", pa.string()),
                        ("off", pa.int64()), ("len", pa.int32()), ("line", pa.int32())])
    fschema = pa.schema([("id", pa.string()), ("code", pa.string()), ("level", pa.string()),
                         ("message", pa.string()), ("seq", pa.int64())])
    cols: list[list] = [[] for _ in schema]
    found: list[list] = [[] for _ in fschema]
    count = 0
    ascending, first, previous = True, None, None
    root = Path(path).parent
    with open(path, "rb") as fh, pq.ParquetWriter(f"{out}-samples.parquet", schema) as rows, \
            pq.ParquetWriter(f"{out}-findings.parquet", fschema) as finds:
        fh.seek(start)
        offset, lineno = start, first_line
        while offset < end:
            raw = fh.readline()
            if not raw:
                break
            text = raw.decode("utf-8")
            if text.strip():
                s = parse_sample_line(text, names, where=SAMPLES_JSONL, line=lineno, root=root)
                if previous is None:
                    first = s.id
                elif s.id <= previous:
                    ascending = False
                previous = s.id
                count_instances(s, instances)
                if s.split:
                    splits.add(s.split)
                for col, value in zip(cols, (count, s.id, s.image, s.split, s.label, _classes(s), _augmented(s), s.sha256,
                                             offset, len(raw.rstrip(b"\r\n")), lineno), strict=True):
                    col.append(value)
                count += 1
                for k, finding in enumerate(sample_findings(s)):  # (seq: the file's order, then the check's)
                    for col, value in zip(found, (s.id, finding.code, CHECKS[finding.code][0], finding.message,
                                                  lineno * 1000 + min(k, 999)), strict=True):
                        col.append(value)
                if len(cols[0]) >= CHUNK:
                    rows.write_table(pa.table(cols, schema=schema))
                    cols = [[] for _ in schema]
                    if found[0]:
                        finds.write_table(pa.table(found, schema=fschema))
                        found = [[] for _ in fschema]
            offset += len(raw)
            lineno += 1
        rows.write_table(pa.table(cols, schema=schema))
        finds.write_table(pa.table(found, schema=fschema))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Part(count, instances, sorted(splits), ascending, first, previous, peak, os.getpid())


def _workers(size: int) -> int:
    """Worker processes for indexing: one per 32 MB of samples.jsonl, at most one per CPU (and 8)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 8, size // (32 << 20)))


PART_BYTES = 8 << 20  # a worker's unit of work: progress and load balance in steps of this size


def _fill(con, root: Path, info: DatasetInfo, tmp: Path, stats: dict[str, Any]) -> tuple[int, list[dict]]:
    """Index every line (in parallel over byte ranges of samples.jsonl), then sort the rows into
    table `samples` and the findings into `findings`."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from pipeline.check import CHECKS, class_findings, duplicate_findings

    path = root / SAMPLES_JSONL
    size = os.path.getsize(path)
    workers = _workers(size)
    ranges = _ranges(path, 1 if workers == 1 else max(workers, -(-size // PART_BYTES)))
    ui.info(f"indexing {path} once ({size / 2**20:,.0f} MB, {workers} process(es)); later starts reuse it")
    jobs = [(str(path), start, end, line, info.classes, str(tmp / f"part-{k:03d}")) for k, (start, end, line)
            in enumerate(ranges)]
    results: list[Part] = []
    with ui.progress(total=size, desc="index samples (once)", unit="B", unit_scale=True) as bar:
        if workers == 1:
            for job in jobs:
                results.append(index_range(*job))
                bar.update(job[2] - job[1])
        else:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for job, part in zip(jobs, pool.map(index_range, *zip(*jobs, strict=True)), strict=True):
                    results.append(part)
                    bar.update(job[2] - job[1])
    count = sum(r.count for r in results)
    instances: dict[str, dict[str, int]] = {c: {} for c in info.classes}
    for part in results:
        for name, per in part.instances.items():
            for split, n in per.items():
                instances.setdefault(name, {})[split] = instances.get(name, {}).get(split, 0) + n
    splits = sorted({sp for r in results for sp in r.splits})
    samples = [_sql_path(tmp / f"part-{k:03d}-samples.parquet") for k in range(len(jobs))]
    findings = [_sql_path(tmp / f"part-{k:03d}-findings.parquet") for k in range(len(jobs))]
    con.execute("CREATE TABLE samples (row INTEGER, id VARCHAR, image VARCHAR, split VARCHAR, label VARCHAR, "
                "classes VARCHAR[], augmented BOOLEAN, sha256 VARCHAR, off BIGINT, len INTEGER, line INTEGER)")
    con.execute("CREATE TABLE findings (id VARCHAR, code VARCHAR, level VARCHAR, message VARCHAR, seq BIGINT)")
    nonempty = [r for r in results if r.count]
    ascending = all(r.ascending for r in nonempty) and all(
        a.last < b.first for a, b in zip(nonempty, nonempty[1:], strict=False))  # type: ignore[operator]
    if ascending:  # written by a stage: sorted by id already, so the line order is the row order
        base = 0
        for name, part in zip(samples, results, strict=True):
            con.execute(f"INSERT INTO samples SELECT lrow + {base}, * EXCLUDE (lrow) FROM read_parquet('{name}')")
            base += part.count
    elif samples:  # sorted here (a file edited by hand); duplicate ids can only occur in this case
        listed = ", ".join(f"'{s}'" for s in samples)
        con.execute(f"INSERT INTO samples SELECT (row_number() OVER (ORDER BY id) - 1)::INTEGER, * EXCLUDE (lrow) "
                    f"FROM read_parquet([{listed}]) ORDER BY id")
        twice = con.execute("SELECT id, max(line), min(line) FROM samples GROUP BY id HAVING count(*) > 1 "
                            "ORDER BY max(line) LIMIT 1").fetchone()
        if twice:
            raise DataError(SAMPLES_JSONL, "duplicate id", line=twice[1], field="id",
                            expected=f"an id not already used on line {twice[2]}", got=twice[0])
    for name in findings:
        con.execute(f"INSERT INTO findings SELECT * FROM read_parquet('{name}') ORDER BY seq")
    for name in samples + findings:
        Path(name.replace("''", "'")).unlink(missing_ok=True)
    peaks: dict[int, float] = {}
    for r in results:
        peaks[r.pid] = max(peaks.get(r.pid, 0.0), r.peak_mb)
    stats["worker_peak_mb"] = [round(peaks[pid], 1) for pid in sorted(peaks) if pid != os.getpid()]
    seq = con.execute("SELECT coalesce(max(seq), 0) FROM findings").fetchone()[0]
    _index_duplicates(con, int(seq), duplicate_findings)
    order = {code: k for k, code in enumerate(CHECKS)}  # (the order of `pipeline check`'s report)
    ranked = sorted(class_findings(instances, info.classes, splits), key=lambda f: order[f.code])
    return count, [f.to_json() for f in ranked]


def _index_duplicates(con, seq: int, duplicate_findings) -> int:
    """`check`'s duplicate, leakage and conflicting-label findings, one group of equal hashes at a time
    (streamed: a million distinct images cost one hash aggregate); each finding is listed under
    every sample of its group."""
    from pipeline.check import CHECKS

    con.execute("CREATE TEMP TABLE dups AS SELECT sha256, min(row) AS first FROM samples GROUP BY sha256 "
                "HAVING count(*) > 1")
    cursor = con.execute("SELECT d.first, s.sha256, s.id, s.split, s.label FROM samples s JOIN dups d "
                         "ON s.sha256 = d.sha256 ORDER BY d.first, s.row")
    pending: list[tuple] = []

    def emit(group: list[tuple]) -> None:
        nonlocal seq
        light = [Sample(id=i, split=sp, label=lb) for _, _, i, sp, lb in group]
        for finding in duplicate_findings({group[0][1]: light}):
            for member in finding.detail.get("samples", [finding.sample]):
                seq += 1
                pending.append((member, finding.code, CHECKS[finding.code][0], finding.message, seq))

    group: list[tuple] = []
    while batch := cursor.fetchmany(10_000):
        for item in batch:
            if group and item[0] != group[0][0]:
                emit(group)
                group = []
            group.append(item)
    if group:
        emit(group)
    if pending:
        import pyarrow as pa

        names = ("id", "code", "level", "message", "seq")
        con.register("_dups", pa.table({k: list(v) for k, v in zip(names, zip(*pending, strict=True), strict=True)}))
        con.execute("INSERT INTO findings SELECT * FROM _dups")
        con.unregister("_dups")
    con.execute("DROP TABLE dups")
    return seq


def _remove_stale(keep: Path, dataset_path: str) -> None:
    """Delete older indexes of the same dataset folder (its samples changed since they were built)."""
    for other in sorted(keep.parent.iterdir()):
        if other == keep or other.name.startswith("."):
            continue
        meta = _read_meta(other)
        if meta is not None and meta.get("dataset") == dataset_path:
            shutil.rmtree(other, ignore_errors=True)
