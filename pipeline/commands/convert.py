"""`pipeline import` and `pipeline export`: the format registry on the command line."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import click

from pipeline.core import ui
from pipeline.core.errors import UsageError


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
    stage_params: dict | None = None,
    lineage_inputs: dict | None = None,
    parent_lineage: list | None = None,
):
    """Import `src` in format `fmt` ('auto' detects) into a canonical dataset at `out`.

    Returns (dataset, report). Used by `pipeline import` and by `pipeline fetch` after a download.
    """
    from pipeline import formats
    from pipeline.core.dataset import DatasetWriter
    from pipeline.core.paths import is_within
    from pipeline.formats.base import ImportContext, ImportOptions, ImportReport, read_classes_file

    src = Path(src)
    if not src.exists():
        raise UsageError(f"{src}: no such file or folder", fix="check the path")
    if is_within(Path(out), src) and Path(out).resolve() != src.resolve():
        pass  # writing inside the source is allowed; the reader never sees the temp folder (dot-named)
    report = ImportReport()
    if fmt == "auto":
        fmt, description = detect_format(src)
        report.detected = f"{fmt}: {description}"
        ui.info(f"detected {report.detected}")
    module = formats.get(fmt)
    options = ImportOptions(
        classes=read_classes_file(classes_file) if classes_file else None,
        class_map=dict(class_map or {}),
        on_error=on_error,
        on_invalid=on_invalid,
        extra=dict(extra or {}),
    )
    params = {"format": fmt, "src": str(src), "classes": str(classes_file) if classes_file else None,
              "map": options.class_map, "on_error": on_error, "on_invalid": on_invalid, **(stage_params or {})}
    with DatasetWriter(
        out, task=module.TASK, stage="import", classes=options.classes, class_map=options.class_map,
        params=params, inputs=lineage_inputs or {}, parent_lineage=parent_lineage,
    ) as writer:
        ctx = ImportContext(src, writer, options, report)
        module.read(src, ctx)
        if lineage_inputs is None:
            writer.lineage[-1]["inputs"] = {str(src): source_hash(ctx)}
        if not writer.samples:
            raise UsageError(
                f"{src}: nothing imported as {fmt}"
                + (f" ({len(report.problems)} bad files; first: {report.problems[0]})" if report.problems else ""),
                fix="check the path and the format (pipeline import --help)",
            )
        dataset = writer.commit()
    return dataset, report


def source_hash(ctx) -> str:
    """One hash over what an import read: annotation files (as recorded) and every image's bytes."""
    import hashlib

    h = hashlib.sha256()
    for rel, digest in sorted(ctx.inputs.items()):
        h.update(f"{rel}\t{digest}\n".encode())
    for sample in sorted(ctx.writer.samples.values(), key=lambda s: s.id):
        h.update(f"{sample.source.get('file', sample.id)}\t{sample.sha256}\n".encode())
    return h.hexdigest()


def detect_format(src: Path) -> tuple[str, str]:
    """The best-matching format of `src` and what was found, or a UsageError naming the layouts tried."""
    import importlib

    from pipeline import formats

    best = None
    for name in formats.available():
        module = importlib.import_module(formats.FORMATS[name])
        found = module.detect(Path(src))
        if found is not None and (best is None or found.score > best[1].score):
            best = (name, found)
    if best is None:
        raise UsageError(
            f"{src}: no known layout found (tried {', '.join(formats.available())})",
            fix="name the format explicitly, e.g. `pipeline import voc SRC --out DIR`; see pipeline import --help",
        )
    return best[0], best[1].description


def print_import_summary(dataset, report, out: Path) -> None:
    rows: list[tuple[str, object]] = []
    if report.detected:
        rows.append(("detected", report.detected))
    rows.append(("samples", f"{len(dataset.samples)} ({_split_text(dataset)})"))
    rows.append(("classes", _classes_text(dataset.classes)))
    for key, n in sorted(report.counts.items()):
        rows.append((key, n))
    for reason, n in sorted(report.skipped.items()):
        rows.append((f"skipped: {reason}", n))
    if report.problems:
        rows.append(("left out (bad files)", len(report.problems)))
    rows.append(("output", str(out)))
    for err in report.problems[:20]:
        ui.warn(str(err))
    if len(report.problems) > 20:
        ui.warn(f"... and {len(report.problems) - 20} more bad files")
    for w in report.warnings[:20]:
        ui.warn(w)
    ui.summary(f"imported {len(dataset.samples)} samples", rows)


def _split_text(dataset) -> str:
    counts = dataset.splits()
    return ", ".join(f"{k or 'unsplit'} {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))


def _classes_text(classes: list[str], limit: int = 12) -> str:
    shown = ", ".join(classes[:limit]) + (f", ... ({len(classes)} in all)" if len(classes) > limit else "")
    return f"{len(classes)}: {shown}"


FORMAT_CHOICES = ["auto", "imagefolder", "voc", "yolo", "createml", "labelme", "coco"]


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMAT_CHOICES))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@click.option("--classes", "classes_file", type=click.Path(path_type=Path),
              help="Text file fixing class names and order (one per line); other classes are errors.")
@click.option("--map", "maps", multiple=True, metavar="OLD=NEW", help="Rename or merge a class (repeatable).")
@click.option("--on-error", type=click.Choice(["skip", "error"]), default="skip", show_default=True,
              help="A bad file: report it and import the rest, or stop at the first.")
@click.option("--on-invalid", type=click.Choice(["error", "clip", "skip"]), default="error", show_default=True,
              help="Coordinates outside the image (YOLO values outside [0,1]): reject the file, clip, or drop the object.")
@click.option("--voc-zero-based/--voc-one-based", "voc_zero_based", default=None,
              help="VOC boxes as 0-based edges (datumaro, CVAT, labelme2voc) or the devkit's 1-based pixels "
                   "[default: 1-based unless the folder is one of those exports].")
def import_cmd(fmt, src, out, classes_file, maps, on_error, on_invalid, voc_zero_based) -> None:
    """Import labelled data from SRC into a canonical dataset.

    FORMAT is one of imagefolder, voc, yolo, createml, labelme, coco, or auto (detect and say what
    was found).

    \b
    Examples:
      pipeline import imagefolder photos/ --out datasets/photos
      pipeline import auto labels/ --out datasets/labels --classes classes.txt
      pipeline import voc raccoon/ --out datasets/raccoon --map raccon=raccoon
    """
    from pipeline.formats.base import parse_class_map

    dataset, report = import_dataset(
        fmt, src, out, classes_file=classes_file, class_map=parse_class_map(maps),
        on_error=on_error, on_invalid=on_invalid, extra={"voc_one_based": not voc_zero_based} if voc_zero_based is not None else None,
    )
    print_import_summary(dataset, report, out)


def export_dataset(dataset_path: Path, fmt: str, out: Path, *, overwrite: bool = False, options: dict | None = None):
    """Export a dataset to `fmt` at `out` (written to a temporary folder, renamed when complete)."""
    from pipeline import formats
    from pipeline.core.dataset import is_dataset, load_dataset, replace_dir
    from pipeline.formats.base import ExportReport

    dataset = load_dataset(dataset_path)
    if not dataset.samples:
        raise UsageError(f"{dataset_path}: the dataset is empty", fix="import or fetch some data first")
    module = formats.get(fmt)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise UsageError(f"{out}: exists and is not empty", fix="choose another --out or add --overwrite")
        if is_dataset(out):
            raise UsageError(f"{out}: is a pipeline dataset; refusing to overwrite it with an export",
                             fix="choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    report = ExportReport()
    try:
        module.write(dataset, tmp, report, dict(options or {}))
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dataset, report


@click.command("export")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(FORMAT_CHOICES[1:]), help="Target format.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty --out folder.")
def export_cmd(dataset_path, fmt, out, overwrite) -> None:
    """Export DATASET to another format.

    What the target format cannot hold (polygons in YOLO boxes, keypoints in VOC) is converted
    where a standard conversion exists, and listed in the summary otherwise; never dropped silently.

    \b
    Examples:
      pipeline export datasets/mnist-embedded --format imagefolder --out exports/mnist
      pipeline export datasets/raccoon --format coco --out exports/raccoon-coco
    """
    dataset, report = export_dataset(dataset_path, fmt, out, overwrite=overwrite)
    rows: list[tuple[str, object]] = [("samples", report.written), ("files", report.files)]
    for k, n in sorted(report.converted.items()):
        rows.append((f"converted: {k}", n))
    for k, n in sorted(report.dropped.items()):
        rows.append((f"not representable: {k}", n))
    rows.append(("output", str(out)))
    for w in report.warnings[:20]:
        ui.warn(w)
    ui.summary(f"exported {report.written} samples as {fmt}", rows)
