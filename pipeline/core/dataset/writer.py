"""Writing datasets: `DatasetWriter` (everything into a temporary folder, fsynced, renamed into
place), `rewrite_samples` (samples.jsonl and dataset.json replaced in place, atomically per file),
`derive`, `replace_dir` and the lineage records.

Writers never touch the destination until the dataset is complete. The ``samples_sha256``
recorded in dataset.json lets a reader detect an in-place update cut between its two renames.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import queue
import shutil
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.core import failpoints, outputs
from pipeline.core.dataset.io import StoredSamples, content_hash, load_dataset
from pipeline.core.dataset.lines import RenderedObjects, dumps_sample, sorted_lines, write_lines
from pipeline.core.dataset.model import (
    DATASET_JSON,
    IMAGES_DIR,
    SAMPLES_JSONL,
    TASKS,
    Dataset,
    DatasetInfo,
    Obj,
    Sample,
    class_ids_for,
)
from pipeline.core.errors import DataError, UsageError
from pipeline.core.packs import PACK_SUFFIX, PackWriter, pack_name
from pipeline.core.paths import fsync_dir, link_or_copy, natural_sorted, safe_stem, sha256_bytes


def now_iso() -> str:
    """The current UTC time, to the second, in ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def lineage_entry(stage: str, params: dict | None = None, inputs: dict[str, str] | None = None) -> dict:
    """One lineage record: stage, tool version, parameters, content hashes of inputs, time."""
    return {
        "stage": stage,
        "tool": f"pipeline {__version__}",
        "params": _jsonable(params or {}),
        "inputs": dict(inputs or {}),
        "time": now_iso(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _write_file(path: Path, data: bytes, *, sync: bool = True) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())


def _info_bytes(info: DatasetInfo) -> bytes:
    return (json.dumps(info.to_json(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished folder `tmp` to `out`, replacing the earlier output there (which the
    caller checked with `outputs.claim_dir`); a kill between the two renames leaves it beside
    `out`, where `outputs.sweep_stale` puts it back."""
    old = None
    if out.exists():
        old = outputs.temp_name(out, "old")
        os.rename(out, old)
        failpoints.hit("replace_dir")
    os.rename(tmp, out)
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class BackgroundSync:
    """Flushes files to the disk from one thread, in the order they were queued, so the caller's
    work goes on meanwhile; `wait` returns once every queued flush is done and raises the first
    error one met. The thread starts with the first file."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[OSError] = []

    def put(self, path: Path | None) -> None:
        """Queue a flush of `path`; `None`: every file (`os.sync`)."""
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._loop, args=(self._queue,), daemon=True, name="fsync")
            self._thread.start()
        self._queue.put(path)

    def stop(self) -> None:
        """Let the thread end after the flushes queued so far, without waiting for them."""
        if self._queue is not None:
            self._queue.put(_STOP)
            self._queue = None

    def wait(self) -> None:
        """Every queued flush done; the first error one met is raised."""
        if self._thread is not None:
            self.stop()
            self._thread.join()
            self._thread = None
        if self._errors:
            raise self._errors[0]

    def _loop(self, jobs: queue.SimpleQueue) -> None:
        while (path := jobs.get()) is not _STOP:
            self._fsync(path)

    def _fsync(self, path: Path | None) -> None:
        try:
            if path is None:
                os.sync()
                return
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._errors.append(exc)


_STOP = object()  # ends a BackgroundSync's thread


class _Packs:
    """The packs of a dataset being written: each source pack linked in once, under its own name
    or, when another pack here has that name, ``NAME-N.zip``; new packs named so that no linked
    one is overwritten."""

    def __init__(self) -> None:
        self.linked: dict[str, str] = {}  # source pack (resolved path) -> its relative path here
        self.names: set[str] = set()

    def link(self, src: str, rel: str, tmp: Path) -> tuple[str, bool]:
        """Where the pack `src` (a resolved path; `rel` in its own dataset) is in `tmp`, linked now
        if it is not yet; and whether it was copied (across file systems) rather than linked."""
        if src in self.linked:
            return self.linked[src], False
        if rel in self.names:  # two sources with packs of the same name
            stem = rel[: -len(PACK_SUFFIX)]
            rel = next(f"{stem}-{i}{PACK_SUFFIX}" for i in range(1, 1 << 30)
                       if f"{stem}-{i}{PACK_SUFFIX}" not in self.names)
        copied = link_or_copy(src, tmp / rel)
        self.linked[src] = rel
        self.names.add(rel)
        return rel, bool(copied)

    def new_name(self, stage: str) -> str:
        """The relative path of a new pack of `stage`, taken now."""
        i = 0
        while pack_name(stage, i) in self.names:
            i += 1
        rel = pack_name(stage, i)
        self.names.add(rel)
        return rel


class DatasetWriter:
    """Writes a new dataset into a temporary folder and renames it into place on success.

    Usage::

        with DatasetWriter(out, task="classification", stage="import", params={...}) as w:
            w.add(Sample(id="cat/001", label="cat", split=None), src=Path("cat/001.jpg"))
        # `out` now holds the complete dataset; on an exception nothing at `out` changed.

    `classes=None` takes the classes a reader declared (`declare_classes`: the source's own order
    and ids) followed by the natural-sorted union of every other label seen; a fixed list (e.g.
    ``--classes``) makes any other label an error (see `resolve_label`) and wins over declarations.
    `class_ids` are the source ids of a fixed list's classes (a derived dataset keeps its input's). Images are added from bytes (`data=`), from a
    file (`src=`, hard-linked when possible) or already in place (`image=` relative path).
    `workdir` names a persistent temporary folder for resumable stages: files already there
    are kept. `reads`: the folders the stage reads (`out` may be none of them, nor hold or lie
    inside one); `overwrite`: replace an earlier dataset at `out` (see `pipeline.core.outputs`).
    `keep_samples=False`: each sample's line is rendered when it is added and the `Sample` is not
    kept (nor its objects, which a streaming reader may hand over rendered: `add(objects=)`);
    `commit` returns the dataset with its samples read back from disk when first used, so a large
    import holds each sample once, as its line.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        task: str,
        stage: str,
        classes: list[str] | None = None,
        class_ids: dict[str, int] | None = None,
        class_map: dict[str, str] | None = None,
        params: dict | None = None,
        inputs: dict[str, str] | None = None,
        parent_lineage: list[dict] | None = None,
        workdir: str | os.PathLike | None = None,
        render_early: bool = False,
        reads: Iterable[str | os.PathLike] = (),
        overwrite: bool = False,
        keep_samples: bool = True,
    ) -> None:
        if task not in TASKS:
            raise UsageError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.out = Path(out)
        self.task = task
        self.fixed_classes = list(classes) if classes is not None else None
        self.declared: list[str] = []  # the source's own class order (`declare_classes`)
        self._declared: set[str] = set()  # the same names, for membership (a source may declare 100,000)
        self.known_ids: dict[str, int] = dict(class_ids or {})  # class -> the source's id
        self.class_map = dict(class_map or {})
        self.lineage = list(parent_lineage or []) + [lineage_entry(stage, params, inputs)]
        self.samples: dict[str, Sample] = {}
        self._names: set[str] = set()
        self._dirs: set[str] = set()  # folders under tmp already created
        self._tmp_text = ""  # self.tmp as text, set with it
        self._images: set[str] = set()  # image paths already taken, so `_unique` is O(1) per sample
        self._packs = _Packs()
        self._unsynced = False  # image files written without fsync; one os.sync() before commit covers them
        self._syncer = BackgroundSync()  # flushes what `sync_in_background` queues, in order
        self._workdir = Path(workdir) if workdir else None
        self._reads = [Path(r) for r in reads]
        self._overwrite = overwrite
        # render_early: each samples.jsonl line is rendered when its sample is added (the caller
        # promises not to change samples after `add`), so a stage that waits on workers renders
        # while it waits instead of all at once in `commit`.
        self._lines: dict[str, str] | None = {} if render_early or not keep_samples else None
        self._keep = keep_samples
        self._added: dict[str, tuple[str, str | None, str]] = {}  # without keep_samples: id -> (file, split, sha256)
        self._rendered = 0  # samples added by `add_rendered` (no Sample kept)
        self.tmp: Path | None = None
        self.committed = False

    # -- context management --------------------------------------------------------------
    def __enter__(self) -> DatasetWriter:
        outputs.sweep_stale(self.out)
        outputs.claim_dir(self.out, "dataset", reads=self._reads, overwrite=self._overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self._workdir is not None:
            self.tmp = self._workdir
        else:
            self.tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        (self.tmp / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        self._tmp_text = os.fspath(self.tmp)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.committed:
            self.finish()
            return
        self._syncer.stop()  # (a flush under way finishes on its own)
        if exc_type is not None and self._workdir is None and self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- labels ------------------------------------------------------------------------------
    def resolve_label(self, name: str, where: str | Path = "", field: str = "label") -> str:
        """Apply --map renames and check the fixed class list; an unknown class is an error naming `where`."""
        name = self.class_map.get(name, name)
        if self.fixed_classes is not None and name not in self.fixed_classes:
            raise DataError(
                where or "input", "class not in the class list", field=field,
                expected=f"one of {self.fixed_classes}", got=name,
                fix="add it to the --classes file, or rename it with --map OLD=NEW",
            )
        return name

    def declare_classes(self, names: Iterable[str], ids: Iterable[int] | None = None) -> list[str]:
        """Record the source's own classes (after --map) in its order, with its ids where it has
        them (YOLO: the line or key of each name; COCO: category ids). Classes declared by several
        calls keep their first place and id. Ignored when the class list is fixed (--classes
        overrides the source). Returns one message per id that could not be kept (a class given
        two ids, or an id given to two classes): the first wins, the later is renumbered."""
        if self.fixed_classes is not None:
            return []
        names = list(names)
        id_list = list(ids) if ids is not None else None
        if id_list is not None and len(id_list) != len(names):
            raise ValueError("declare_classes: one id per name")
        notes: list[str] = []
        owner = {cid: name for name, cid in self.known_ids.items()}
        for i, name in enumerate(names):
            if name not in self._declared:
                self._declared.add(name)
                self.declared.append(name)
            if id_list is None:
                continue
            cid = id_list[i]
            if name in self.known_ids:
                if self.known_ids[name] != cid:
                    notes.append(f"class {name!r} has id {self.known_ids[name]} and {cid}: id {self.known_ids[name]} kept")
            elif cid in owner:
                notes.append(f"id {cid} names {owner[cid]!r} and {name!r}: {name!r} gets a new id")
            else:
                self.known_ids[name] = cid
                owner[cid] = name
        return notes

    # -- images --------------------------------------------------------------------------------
    def image_relpath(self, sample_id: str, ext: str) -> str:
        ext = ext.lower().lstrip(".") or "png"
        return f"{IMAGES_DIR}/{safe_stem(sample_id)}.{ext}"

    def has_sample(self, sample_id: str) -> bool:
        """Whether a sample with this id was added."""
        return sample_id in self.samples or (self._lines is not None and sample_id in self._lines)

    def uses_image(self, rel: str) -> bool:
        """Whether a sample added so far has `rel` as its image path (or pack member name)."""
        return rel in self._images

    def has_image(self, rel: str) -> bool:
        assert self.tmp is not None
        return (self.tmp / rel).is_file()

    def add(
        self,
        sample: Sample,
        *,
        data: bytes | None = None,
        src: str | os.PathLike | None = None,
        ext: str | None = None,
        line: str | None = None,
        objects: RenderedObjects | None = None,
    ) -> Sample:
        """Add a sample; write its image from `data` or `src`, or trust `sample.image` already in tmp.
        `line`: the sample's `dumps_sample` line when the caller rendered it already (in a worker).
        `objects`: the sample's objects rendered (`sample.objects` None); a writer that keeps its
        samples turns them back into `Obj`s."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if sample.id in self.samples or (self._lines is not None and sample.id in self._lines):
            raise DataError(sample.source.get("file", "input"), "two samples with the same id", field="id",
                            expected="unique ids", got=sample.id)
        if data is not None or src is not None:
            if ext is None:
                ext = os.path.splitext(src)[1] if src is not None else "png"
            rel = self.image_relpath(sample.id, ext)
            rel = self._unique(rel, sample.id)
            dest = self._tmp_text + os.sep + rel  # strings, not pathlib: this runs once per image
            parent = os.path.dirname(dest)
            if parent not in self._dirs:  # one mkdir per folder, not one per image
                os.makedirs(parent, exist_ok=True)
                self._dirs.add(parent)
            if data is not None:
                _write_file(dest, data, sync=False)  # fsync per file costs ~2 ms; commit syncs once
                self._unsynced = True
                if not sample.sha256:
                    sample.sha256 = sha256_bytes(data)
            else:
                if link_or_copy(src, dest, make_parent=False):
                    self._unsynced = True  # copied across file systems: synced before the commit
                if not sample.sha256:
                    from pipeline.core.paths import sha256_file

                    sample.sha256 = sha256_file(dest)
            sample.image = rel
            failpoints.hit("writer.add")
        elif not sample.image:
            raise ValueError("add() needs data=, src= or sample.image")
        if objects is not None and self._keep:
            sample.objects = [Obj.from_json(o) for o in json.loads(objects.text)]
            objects = None
        if self._keep:
            self.samples[sample.id] = sample
        else:
            self._added[sample.id] = (str(sample.source.get("file", sample.id)), sample.split, sample.sha256)
        if self._lines is not None:
            self._lines[sample.id] = line if line is not None else dumps_sample(sample, objects)
        self._images.add(sample.image)
        self._names |= sample.labels()
        if objects is not None:
            self._names |= objects.labels
        return sample

    def count(self) -> int:
        """How many samples were added."""
        return len(self._lines) if self._lines is not None else len(self.samples)

    def added(self) -> list[tuple[str, str, str]]:
        """(id, source file, sha256) of each sample added with `add`, in id order: what an import
        hashes as its input (`formats.ingest.source_hash`)."""
        if self._keep:
            return [(i, str(s.source.get("file", i)), s.sha256) for i, s in sorted(self.samples.items())]
        return [(i, f, sha) for i, (f, _split, sha) in sorted(self._added.items())]

    def add_rendered(self, sample_id: str, image: str, line: str, labels: Iterable[str] = ()) -> None:
        """Add a sample known only by its samples.jsonl `line` (a `dumps_sample` rendering, e.g.
        from a worker process), its image path (already in the temporary folder, or a pack member
        written here) and the class names it uses. Needs ``render_early``. No `Sample` object is
        built or kept: a stage that streams many thousands of samples pays neither for building
        them nor for freeing them, and `finish` (not `commit`) completes the dataset without
        loading them back."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if self._lines is None:
            raise ValueError("add_rendered() needs a DatasetWriter with render_early=True")
        if sample_id in self._lines:
            raise DataError("input", "two samples with the same id", field="id", expected="unique ids", got=sample_id)
        self._lines[sample_id] = line
        self._images.add(image)
        self._names.update(labels)
        self._rendered += 1

    def add_from(self, dataset: Dataset, source: Sample, sample: Sample | None = None) -> Sample:
        """Add `sample` (default: a copy of `source`) with `source`'s image from `dataset`: a file is
        hard-linked (copied across file systems), a pack is linked once and its members kept."""
        new = sample if sample is not None else Sample.from_json(source.to_json())
        if source.pack is None:
            new.image, new.pack = "", None
            return self.add(new, src=os.path.join(dataset.root, source.image), ext=os.path.splitext(source.image)[1])
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if source.image in self._images:  # the member's name is taken here: store this image as a file
            new.image, new.pack = "", None  # (a renamed sample would no longer match its member's name)
            return self.add(new, data=dataset.read_image_bytes(source), ext=Path(source.image).suffix)
        rel, copied = self._packs.link(str((dataset.root / source.pack["file"]).resolve()), source.pack["file"],
                                       self.tmp)
        self._unsynced |= copied
        new.image = source.image
        new.pack = {"file": rel, "offset": source.pack["offset"], "length": source.pack["length"]}
        new.sha256 = new.sha256 or source.sha256
        return self.add(new)

    def new_pack(self, stage: str) -> tuple[str, PackWriter]:
        """A new, empty pack in this dataset (a name no linked pack uses) and its writer."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        rel = self._packs.new_name(stage)
        return rel, PackWriter(self.tmp / rel)

    def sync_in_background(self, rel: str | None) -> None:
        """Flush `rel` (written and closed under the temporary folder) to the disk from this
        writer's sync thread, so the wait overlaps the caller's work; `finish` waits for every
        queued flush before the rename. `None`: every file (`os.sync`)."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        self._syncer.put(None if rel is None else self.tmp / rel)

    def _unique(self, rel: str, sample_id: str) -> str:
        if rel not in self._images:
            return rel
        stem, dot, ext = rel.rpartition(".")
        digest = hashlib.sha1(sample_id.encode()).hexdigest()[:8]
        return f"{stem}-{digest}.{ext}"

    # -- commit --------------------------------------------------------------------------------
    def classes(self) -> list[str]:
        """The fixed list; else the declared classes, then every other label seen, natural-sorted."""
        if self.fixed_classes is not None:
            return list(self.fixed_classes)
        declared = set(self.declared)
        return list(self.declared) + natural_sorted(n for n in self._names if n not in declared)

    def class_ids(self) -> dict[str, int] | None:
        """The ids recorded in dataset.json: the known source ids (others numbered after them), or
        None when the source had none (ids are then positions)."""
        return class_ids_for(self.classes(), self.known_ids)

    def finish(self) -> DatasetInfo:
        """Write samples.jsonl and dataset.json, sync, and rename the folder into place."""
        assert self.tmp is not None
        classes = self.classes()
        unknown = self._names - set(classes)
        if unknown:
            raise DataError("input", "labels outside the class list", expected=f"one of {classes}",
                            got=natural_sorted(unknown))
        if self._lines is not None:
            lines = [self._lines[i] for i in sorted(self._lines)]
        else:
            lines = sorted_lines(self.samples.values())
        if self._unsynced:
            os.sync()
        info = DatasetInfo(task=self.task, classes=classes, lineage=self.lineage,
                           samples_sha256=write_lines(self.tmp / SAMPLES_JSONL, lines),
                           class_ids=class_ids_for(classes, self.known_ids))
        _write_file(self.tmp / DATASET_JSON, _info_bytes(info))
        self._syncer.wait()
        fsync_dir(self.tmp)
        failpoints.hit("writer.commit")
        replace_dir(self.tmp, self.out)
        self.committed = True
        return info

    def commit(self) -> Dataset:
        """`finish`, then the new dataset (read back from disk when samples were added rendered)."""
        info = self.finish()
        if self._rendered:
            return load_dataset(self.out)
        if not self._keep:
            splits: dict[str | None, int] = {}
            for _file, split, _sha in self._added.values():
                splits[split] = splits.get(split, 0) + 1
            return Dataset(root=self.out, info=info, samples=StoredSamples(self.out, len(self._added), splits))
        return Dataset(root=self.out, info=info, samples=sorted(self.samples.values(), key=lambda s: s.id))


def rewrite_samples(
    dataset: Dataset,
    samples: list[Sample],
    *,
    stage: str,
    params: dict | None = None,
    classes: list[str] | None = None,
) -> Dataset:
    """Replace a dataset's samples.jsonl (and lineage) in place, atomically per file.

    For stages that change metadata only (e.g. `split`); images stay where they are.
    """
    info = _replace_samples(dataset, lambda path: write_lines(path, sorted_lines(samples)), stage=stage,
                            params=params, classes=classes)
    return Dataset(root=dataset.root, info=info, samples=sorted(samples, key=lambda s: s.id))


def rewrite_lines(dataset: Dataset, lines: Iterable[str], *, stage: str, params: dict | None = None) -> DatasetInfo:
    """`rewrite_samples` for a dataset too large to hold: `lines` are the new samples.jsonl lines
    (each as `dumps_sample` renders it, no newline, in id order), written as they come. Returns the
    new dataset.json's contents."""
    return _replace_samples(dataset, lambda path: _write_line_stream(path, lines), stage=stage, params=params)


def rewrite_data(dataset: Dataset, blocks: Iterable[bytes], *, stage: str, params: dict | None = None) -> DatasetInfo:
    """`rewrite_lines` with the new samples.jsonl given as its bytes, a few whole lines (each ended
    by a newline) at a time. Returns the new dataset.json's contents."""
    return _replace_samples(dataset, lambda path: _write_blocks(path, blocks), stage=stage, params=params)


def _write_blocks(path: Path, blocks: Iterable[bytes]) -> str:
    """Write `blocks` one after the other and fsync the file; returns its SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for data in blocks:
            digest.update(data)
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return digest.hexdigest()


def _write_line_stream(path: Path, lines: Iterable[str], chunk: int = 4096) -> str:
    """`write_lines` for an iterable: written a few thousand lines at a time; returns the SHA-256."""
    digest = hashlib.sha256()
    block: list[str] = []
    with open(path, "wb") as fh:
        for line in lines:
            block.append(line)
            if len(block) == chunk:
                data = ("\n".join(block) + "\n").encode("utf-8")
                digest.update(data)
                fh.write(data)
                block = []
        if block:
            data = ("\n".join(block) + "\n").encode("utf-8")
            digest.update(data)
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return digest.hexdigest()


def _replace_samples(dataset: Dataset, write, *, stage: str, params: dict | None,
                     classes: list[str] | None = None) -> DatasetInfo:
    """Write the new samples.jsonl with `write(path) -> sha256` and the new dataset.json beside the
    old ones, then rename both into place (a kill between the renames is finished by the next read)."""
    root = dataset.root
    _sweep_updates(root)
    lineage = list(dataset.info.lineage) + [lineage_entry(stage, params, {str(root): content_hash(root)})]
    new_samples = root / f".{SAMPLES_JSONL}.tmp-{os.getpid()}"
    try:
        digest = write(new_samples)
    except BaseException:
        new_samples.unlink(missing_ok=True)
        raise
    kept = list(classes if classes is not None else dataset.info.classes)
    info = DatasetInfo(task=dataset.info.task, classes=kept, lineage=lineage, samples_sha256=digest,
                       class_ids=class_ids_for(kept, dataset.info.class_ids))
    new_info = root / f".{DATASET_JSON}.tmp-{os.getpid()}"
    _write_file(new_info, _info_bytes(info))  # both complete before either replaces its file: a kill
    failpoints.hit("rewrite.samples")  # between the renames is finished by the next `load_dataset`
    os.replace(new_samples, root / SAMPLES_JSONL)
    failpoints.hit("rewrite.info")
    os.replace(new_info, root / DATASET_JSON)
    fsync_dir(root)
    return info


def _sweep_updates(root: Path) -> None:
    """Remove what an in-place update killed before its first rename left (its pid no longer runs)."""
    for name in sorted(os.listdir(root)):
        for prefix in (f".{SAMPLES_JSONL}.tmp-", f".{DATASET_JSON}.tmp-"):
            if name.startswith(prefix) and name[len(prefix):].isdigit() and not outputs.pid_alive(int(name[len(prefix):])):
                (root / name).unlink(missing_ok=True)


def derive(
    dataset: Dataset,
    out: str | os.PathLike,
    samples: Iterable[Sample],
    *,
    stage: str,
    params: dict | None = None,
    classes: list[str] | None = None,
    task: str | None = None,
    overwrite: bool = False,
) -> Dataset:
    """Write `samples` (whose images live in `dataset`) as a new dataset at `out`, images hard-linked
    (an earlier dataset there replaced only with `overwrite`).;
    the classes keep their source ids."""
    with DatasetWriter(
        out,
        task=task or dataset.task,
        stage=stage,
        classes=classes if classes is not None else dataset.classes,
        class_ids=dataset.info.class_ids,
        params=params,
        inputs={str(dataset.root): dataset.content_hash},
        parent_lineage=dataset.info.lineage,
        reads=[dataset.root],
        overwrite=overwrite,
    ) as w:
        for s in samples:
            w.add_from(dataset, s)
        result = w.commit()
    return result
