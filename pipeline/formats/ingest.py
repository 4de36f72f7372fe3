"""The public ingest API: detect a folder's format, import it as a canonical dataset, export one.

Everything that turns files on disk into a dataset (or a dataset back into files) goes through
here: `pipeline import`/`pipeline export`, `pipeline fetch` after a download, `pipeline train` on
an ImageFolder tree, the benchmarks and the tests.

- `detect_format(src)`: the best-scoring format module's `detect` (`--format auto`); refused
  when two formats each cover a part of the folder (`formats/detect.py`, `pipeline detect`).
- `import_dataset(fmt, src, out)`: one annotation format (`formats.FORMATS`) into a dataset.
- `export_dataset(dataset, fmt, out)`: a dataset into one annotation format.
- `import_any(root, out)`: whatever a download holds: parquet with an image column, pixel
  tables, Hub imagefolder metadata (`formats.tables`), else the annotation formats.
- `import_images(items, out)`: loose image files with their provenance (URL lists, crawls).

Every import writes through `DatasetWriter` (temporary folder, renamed into place when complete),
so a failed import leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pipeline import formats
from pipeline.core import failpoints, outputs, ui
from pipeline.core.dataset import Dataset, DatasetWriter, SampleStream, open_dataset, replace_dir
from pipeline.core.errors import UsageError
from pipeline.core.paths import Refused, SafeFiles, natural_key
from pipeline.formats import unsupported
from pipeline.formats.base import ExportReport, ImportContext, ImportOptions, ImportReport, read_classes_file
from pipeline.formats.common import ImageProbe, light_probe, prefetched

if TYPE_CHECKING:
    from pipeline.formats.tables import ImportOutcome


class ImportResult(NamedTuple):
    """What `import_dataset` wrote and what it found on the way (unpacks as `dataset, report`)."""

    dataset: Dataset
    report: ImportReport


class ExportResult(NamedTuple):
    """The dataset `export_dataset` read and what the target format held of it (unpacks as `dataset, report`)."""

    dataset: Dataset
    report: ExportReport


def detect_format(src: Path, images: Path | None = None) -> tuple[str, str]:
    """The best-matching format of `src` and what was found; a UsageError naming the layouts tried
    and why each said no, or the candidates when two formats each cover a part of `src`
    (`formats.detect.choose`; `formats.detect.survey` lists every candidate). `images`: the
    images folder (``--images DIR``), so `src` may hold label files alone."""
    from pipeline.formats.detect import choose

    return choose(Path(src), images=Path(images) if images is not None else None)


def import_dataset(
    fmt: str,
    src: Path,
    out: Path,
    *,
    classes_file: Path | None = None,
    class_map: dict[str, str] | None = None,
    on_error: str = "skip",
    on_invalid: str = "error",
    extra: dict | None = None,
    images: Path | None = None,
    stage_params: dict | None = None,
    lineage_inputs: dict | None = None,
    parent_lineage: list | None = None,
    overwrite: bool = False,
    engine=None,
    workers: int | None = None,
) -> ImportResult:
    """Import `src` in format `fmt` ('auto' detects) into a canonical dataset at `out`.

    `stage_params` are added to the lineage entry's params; `lineage_inputs` replaces its inputs
    (default: one hash over everything the import read, keyed by `src`). Writing inside `src` is
    allowed: the writer's temporary folder is dot-named, so no reader sees it. `images` (`--images
    DIR`): images are looked up there; nothing outside `src` and `images` is read. An existing
    dataset at `out` is replaced only with `overwrite` (`core.outputs`).

    `engine`: where the image files are read, checked and hashed (``--engine ray``: an entered-on-use
    engine of `pipeline.engines`, whose `map` runs `_probe_files` on chunks of the image files
    under `src` and `images`; the reader then takes their probes instead of reading the files
    again, `common.prefetched`). The dataset is the same bytes either way.

    `workers` (``--workers N``): processes reading one large annotation file (COCO: the second half
    of its annotations array decoded and rendered by a forked process); None: the CPUs this process
    may use, at most 2; 1: this process alone. The dataset is the same bytes either way.
    """
    src = Path(src)
    if not src.exists():
        raise UsageError(f"{src}: no such file or folder", fix="check the path")
    if images is not None and not Path(images).is_dir():
        raise UsageError(f"--images {images}: no such folder", fix="point --images at the folder holding the images")
    report = ImportReport()
    if fmt == "auto" or not getattr(formats.get(fmt), "NAMED_ONLY", False):
        unsupported.refuse(src)  # a Roboflow multi-label CSV or a VoTT export: named, never mis-read
    if fmt == "auto":
        fmt, description = detect_format(src, images)
        report.detected = f"{fmt}: {description}"
        ui.info(f"detected {report.detected}")
    module = formats.get(fmt)
    options = ImportOptions(
        classes=read_classes_file(classes_file) if classes_file else None,
        class_map=dict(class_map or {}),
        on_error=on_error,
        on_invalid=on_invalid,
        extra=dict(extra or {}),
        images=Path(images) if images is not None else None,
        workers=workers,
    )
    params = {"format": fmt, "src": str(src), "classes": str(classes_file) if classes_file else None,
              "map": options.class_map, "on_error": on_error, "on_invalid": on_invalid, **(stage_params or {})}
    if images is not None:
        params["images"] = str(images)
    with DatasetWriter(
        out, task=module.TASK, stage="import", classes=options.classes, class_map=options.class_map,
        params=params, inputs=lineage_inputs or {}, parent_lineage=parent_lineage,
        reads=[src] + ([Path(images)] if images is not None else []), overwrite=overwrite,
        keep_samples=not getattr(module, "STREAMS", False),  # a streaming reader's samples: lines only
    ) as writer:
        ctx = ImportContext(src, writer, options, report)
        if engine is None or engine.is_local:
            module.read(src, ctx)
        else:
            with engine, prefetched(_probe_tree(engine, [src] + ([Path(images)] if images is not None else []))):
                module.read(src, ctx)
        if lineage_inputs is None:
            writer.lineage[-1]["inputs"] = {str(src): source_hash(ctx)}
        if not writer.count():
            raise UsageError(
                f"{src}: nothing imported as {fmt}"
                + (f" ({len(report.problems)} bad files; first: {report.problems[0]})" if report.problems else ""),
                fix="check the path and the format (pipeline import --help)",
            )
        dataset = writer.commit()
    return ImportResult(dataset, report)


PROBE_CHUNK = 64  # image files per task when an engine probes them


def _probe_tree(engine, roots: list[Path]) -> dict[str, ImageProbe]:
    """Light probes (`common.light_probe`) of every image file under `roots`, made by `engine`'s
    workers, by absolute path (files they leave to the reader are not in it)."""
    from pipeline.formats.images import list_images

    paths: list[str] = []
    for root in roots:
        if root.is_dir():
            paths += [os.path.abspath(root / rel) for rel in list_images(root)]
    work = (paths[i:i + PROBE_CHUNK] for i in range(0, len(paths), PROBE_CHUNK))
    probes: dict[str, ImageProbe] = {}
    done = 0
    with ui.progress(total=len(paths), desc="read images", unit="image") as bar:
        for found in engine.map(_no_context, None, _probe_files, work):
            for path, probe in zip(paths[done:done + len(found)], found, strict=True):
                if probe is not None:
                    probes[path] = probe
            done += len(found)
            bar.update(len(found))
    return probes


def _no_context(spec: None) -> None:
    """A worker probing files needs nothing but the paths."""
    return None


def _probe_files(context: None, paths: list[str]) -> list[ImageProbe | None]:
    """`light_probe` of each file (on a worker)."""
    return [light_probe(p) for p in paths]


def source_hash(ctx: ImportContext) -> str:
    """One hash over what an import read: annotation files (as recorded) and every image's bytes."""
    h = hashlib.sha256()
    for rel, digest in sorted(ctx.inputs.items()):
        h.update(f"{rel}\t{digest}\n".encode("utf-8", "surrogateescape"))  # names that are not UTF-8 too
    for _sid, file, sha256 in ctx.writer.added():
        h.update(f"{file}\t{sha256}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def export_dataset(dataset_path: Path, fmt: str, out: Path, *, overwrite: bool = False,
                   options: dict | None = None) -> ExportResult:
    """Export a dataset to `fmt` at `out` (written to a temporary folder, renamed when complete).

    `out` gets an `outputs.EXPORT_MARKER` listing what it holds; `overwrite` replaces only an
    earlier export holding nothing else (`core.outputs.claim_dir`). The samples are streamed
    (`open_dataset`): a writer that goes through them in order holds one at a time."""
    dataset = open_dataset(dataset_path)
    if not dataset.samples:
        raise UsageError(f"{dataset_path}: the dataset is empty", fix="import or fetch some data first")
    module = formats.get(fmt)
    out = Path(out)
    outputs.sweep_stale(out)
    outputs.claim_dir(out, "export", reads=[dataset_path], overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = outputs.temp_name(out)
    tmp.mkdir()
    report = ExportReport()
    try:
        module.write(dataset, tmp, report, dict(options or {}))
        outputs.write_export_marker(tmp, fmt=fmt, source=dataset_path)
        os.sync()  # the exported files on the disk before the rename makes them the export
        failpoints.hit("export.written")
        count_reviews_not_held(module, dataset, report)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(dataset, report)


def count_reviews_not_held(module, dataset: Dataset, report: ExportReport) -> None:
    """Per-sample annotations and predictions a format cannot hold (no ``HOLDS_REVIEWS = True`` in
    its module), counted as not representable: the sample's own label and objects are written."""
    if getattr(module, "HOLDS_REVIEWS", False):
        return
    samples = dataset.samples
    for sample in samples.having("annotations", "predictions") if isinstance(samples, SampleStream) else samples:
        if sample.annotations:
            report.dropped[f"per-annotator annotations ({module.NAME} holds the sample's own labels only)"] += len(
                sample.annotations)
        if sample.predictions:
            report.dropped[f"predictions ({module.NAME} holds none)"] += len(sample.predictions)


# ----------------------------------------------------------------------------------------------
# Whatever a download holds
# ----------------------------------------------------------------------------------------------


def import_any(root: Path, out: Path, *, stage: str, params: dict, inputs: dict[str, str],
               on_error: str = "skip", overwrite: bool = False) -> ImportOutcome:
    """Detect what `root` holds and import it into a canonical dataset at `out`.

    In this order: parquet files with an image column, pixel tables (`label,pixel0..`), Hub
    imagefolder metadata files, else the annotation format `detect_format` finds. `params` and
    `inputs` (source, version or commit, file hashes) go into the lineage entry. An earlier
    dataset at `out` is replaced only with `overwrite`.
    """
    from pipeline.formats import tables

    root = Path(root)
    refused: list[Refused] = []  # links out of `root`, FIFOs: noted and counted in the outcome
    safe = SafeFiles([root], on_refused=refused.append)
    readme = root / "README.md"
    card = tables.card_class_names(readme) if safe.is_file(readme) else {}
    parquets = []
    for p in _files(root, ".parquet", safe):
        cols = tables.parquet_columns(p, card)
        if cols is not None:
            parquets.append((p, cols))
    if parquets:
        return _refusals(_import_tables(out, "parquet", stage, params, inputs, on_error, (root, overwrite),
                                        [(p, p.relative_to(root).as_posix(), cols) for p, cols in parquets],
                                        fixed=_common_names([c[2] for _, c in parquets])), refused, root)
    found = [(p, p.relative_to(root).as_posix(), tables.pixel_table_header(p)) for p in _files(root, ".csv", safe)
             if p.name != "metadata.csv"]
    found = [(p, rel, h) for p, rel, h in found if h is not None]
    if found:
        labelled = [t for t in found if t[2][0] is not None]
        outcome_notes = [f"{rel}: no label column (unlabelled rows); kept in the raw download only"
                         for _, rel, h in found if h[0] is None] if labelled else []
        outcome = _import_tables(out, "pixel-csv", stage, params, inputs, on_error, (root, overwrite),
                                 labelled or found, fixed=None)
        outcome.notes.extend(outcome_notes)
        return _refusals(outcome, refused, root)
    base = tables.content_root(root)
    if tables.tree_files(base, lambda name: name in ("metadata.jsonl", "metadata.csv"), SafeFiles([base])):
        outcome = tables.ImportOutcome(kind="metadata")
        with DatasetWriter(out, task="classification", stage=stage, params=params, inputs=inputs, reads=[root],
                           overwrite=overwrite) as w:
            outcome.imported = tables.read_metadata_folder(base, w, outcome)
            _check_nonempty(outcome, base, on_error)
            outcome.dataset = w.commit()
        return _refusals(outcome, refused, root)
    fmt, description = detect_format(base)
    dataset, report = import_dataset(fmt, base, out, on_error=on_error, stage_params=params, lineage_inputs=inputs,
                                     overwrite=overwrite)
    return _refusals(tables.ImportOutcome(kind=fmt, dataset=dataset, imported=len(dataset.samples),
                                          problems=list(report.problems),
                                          notes=[f"detected {description}"] + list(report.warnings),
                                          skipped=dict(report.skipped)), refused, root)


def import_images(items: list[tuple[Path, dict]], out: Path, *, stage: str, params: dict,
                  inputs: dict[str, str], label: str | None = None, overwrite: bool = False) -> ImportOutcome:
    """Import loose image files (with their provenance) as a classification dataset."""
    from pipeline.formats import tables

    outcome = tables.ImportOutcome(kind="images")
    with DatasetWriter(out, task="classification", stage=stage, params=params, inputs=inputs,
                       classes=[label] if label else [], reads=[p for p, _ in items], overwrite=overwrite) as w:
        outcome.imported = tables.read_images(items, w, outcome, label)
        if not outcome.imported:
            raise UsageError("no image could be imported" + (f" (first problem: {outcome.problems[0]})"
                                                             if outcome.problems else ""))
        outcome.dataset = w.commit()
    return outcome


def _files(root: Path, suffix: str, safe: SafeFiles) -> list[Path]:
    from pipeline.formats.tables import tree_files

    return tree_files(root, lambda name: name.endswith(suffix), safe)


def _refusals(outcome: ImportOutcome, refused: list[Refused], root: Path) -> ImportOutcome:
    """`outcome` with the paths the search for tables skipped (links out of `root`, FIFOs) noted
    and counted, each once (the import that followed may have reported it already)."""
    base = os.path.abspath(root)
    for r in refused:
        path = os.path.abspath(r.path)
        note = r.describe(os.path.relpath(path, base) if path.startswith(base + os.sep) else path)
        if note not in outcome.notes:
            outcome.notes.append(note)
            outcome.skipped[r.reason] = outcome.skipped.get(r.reason, 0) + 1
    return outcome


def _common_names(names: list[list[str] | None]) -> list[str] | None:
    known = [n for n in names if n]
    if known and all(n == known[0] for n in known):
        return list(known[0])
    return None


def _check_nonempty(outcome: ImportOutcome, where: Path, on_error: str) -> None:
    if outcome.problems and on_error == "error":
        raise outcome.problems[0]
    if not outcome.imported:
        first = f" (first problem: {outcome.problems[0]})" if outcome.problems else ""
        raise UsageError(f"{where}: nothing could be imported{first}", fix="check the download (kept in --raw)")


def _import_tables(out: Path, kind: str, stage: str, params: dict, inputs: dict[str, str], on_error: str,
                   claim: tuple[Path, bool], items: list, fixed: list[str] | None) -> ImportOutcome:
    from pipeline.formats import tables

    outcome = tables.ImportOutcome(kind=kind)
    items = sorted(items, key=lambda t: natural_key(t[1]))
    root, overwrite = claim
    with DatasetWriter(out, task="classification", stage=stage, params=params, inputs=inputs, classes=fixed,
                       reads=[root], overwrite=overwrite) as writer:
        for path, rel, extra in items:
            if kind == "parquet":
                outcome.imported += tables.read_parquet(path, writer, outcome, rel=rel, columns=extra)
            else:
                outcome.imported += tables.read_pixel_csv(path, writer, outcome, rel=rel)
        _check_nonempty(outcome, out, on_error)
        outcome.dataset = writer.commit()
    return outcome
