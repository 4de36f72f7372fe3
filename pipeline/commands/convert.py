"""`pipeline import` and `pipeline export`: the format registry on the command line."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.common import engine_options, max_pixels_option, overwrite_option
from pipeline.core import ui
from pipeline.core.dataset import Dataset
from pipeline.formats import FORMATS
from pipeline.formats.base import ON_ERROR, ON_INVALID, ImportReport, parse_class_map
from pipeline.formats.ingest import export_dataset, import_dataset


def print_import_summary(dataset: Dataset, report: ImportReport, out: Path, engine: str | None = None) -> None:
    """The summary of `pipeline import`: what was detected, samples per split, classes, counts, bad files
    (and where the images were read, `engine`, when not here)."""
    rows: list[tuple[str, object]] = []
    if report.detected:
        rows.append(("detected", report.detected))
    rows.append(("samples", f"{len(dataset.samples)} ({_split_text(dataset)})"))
    rows.append(("classes", _classes_text(dataset.classes)))
    ids = dataset.info.class_ids
    if ids is not None and list(ids.values()) != list(range(len(ids))):
        pairs = [f"{c}={i}" for c, i in ids.items()]
        rows.append(("class ids (the source's)", ", ".join(pairs[:12]) + (", ..." if len(pairs) > 12 else "")))
    for key, n in sorted(report.counts.items()):
        rows.append((key, n))
    for reason, n in sorted(report.skipped.items()):
        rows.append((f"skipped: {reason}", n))
    if report.problems:
        rows.append(("left out (bad files)", len(report.problems)))
    if engine:
        rows.append(("images read by", engine))
    rows.append(("output", str(out)))
    for err in report.problems[:20]:
        ui.warn(str(err))
    if len(report.problems) > 20:
        ui.warn(f"... and {len(report.problems) - 20} more bad files")
    for w in report.warnings[:20]:
        ui.warn(w)
    ui.summary(f"imported {len(dataset.samples)} samples", rows)


def _split_text(dataset: Dataset) -> str:
    counts = dataset.splits()
    return ", ".join(f"{k or 'unsplit'} {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))


def _classes_text(classes: list[str], limit: int = 12) -> str:
    shown = ", ".join(classes[:limit]) + (f", ... ({len(classes)} in all)" if len(classes) > limit else "")
    return f"{len(classes)}: {shown}"


FORMAT_CHOICES = ["auto", *FORMATS]  # `pipeline import FORMAT`: the registry's formats, or detect one


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMAT_CHOICES))
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder of the new dataset.")
@click.option("--classes", "classes_file", type=click.Path(path_type=Path),
              help="Text file fixing class names and order (one per line; ids are then positions), over the "
                   "source's own order and ids; other classes are errors.")
@click.option("--map", "maps", multiple=True, metavar="OLD=NEW", help="Rename or merge a class (repeatable).")
@click.option("--on-error", type=click.Choice(ON_ERROR), default="skip", show_default=True,
              help="A bad file: report it and import the rest, or stop at the first.")
@click.option("--on-invalid", type=click.Choice(ON_INVALID), default="error", show_default=True,
              help="Coordinates outside the image (YOLO values outside [0,1]): reject the file, clip, or drop the object.")
@overwrite_option
@click.option("--voc-zero-based/--voc-one-based", "voc_zero_based", default=None,
              help="VOC boxes as 0-based edges (datumaro, CVAT, labelme2voc) or the devkit's 1-based pixels "
                   "[default: 1-based unless the folder is one of those exports].")
@max_pixels_option
@click.option("--images", "images", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Labels are read under SRC and images under DIR alone; nothing outside the two is read "
                   "[default: SRC]. Every labelled format; labelstudio resolves task image URLs here by file name.")
@click.option("--annotations", "annotations", type=click.Choice(["newest", "all"]), default=None,
              help="labelstudio: the newest non-cancelled annotation of each task is the sample's labels; "
                   "'all' keeps each annotator's annotation beside it. cvat: 'all' makes an image labelled in "
                   "several jobs or tasks one sample keeping each one's labels (its first as the sample's) "
                   "[default: newest].")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Processes reading one large COCO file: a forked process reads the second part of its "
                   "annotations while this one reads the first and the images (arrays under 1 MiB: one process) "
                   "[default: the CPUs this process may use, at most 2]. The dataset is the same bytes either way.")
@engine_options
def import_cmd(fmt, src, out, classes_file, maps, on_error, on_invalid, overwrite, voc_zero_based, images,
               annotations, workers, engine, address) -> None:
    """Import labelled data from SRC into a canonical dataset.

    FORMAT is one of imagefolder, voc, yolo, createml, labelme, coco, cvat (CVAT for images 1.1
    XML: task, project or job exports), labelstudio (Label Studio JSON and JSON-MIN exports), webdataset
    (tar shards: KEY.jpg|png with KEY.cls and our KEY.json records; round trip exact), images
    (a folder of unlabelled images, only by name), or auto (detect and say what was found; refused,
    with the candidates, when two formats each cover a part of SRC: see `pipeline detect SRC`). An existing
    dataset at --out is replaced only with --overwrite.

    A bad file (malformed, NaN, a number of over 4,300 digits, a name that is not UTF-8, past a
    parsing limit: 1 MiB per label line, 100,000 points per shape, 100,000 objects per image,
    256-character class names) is reported with its file, line or field and a fix; the rest
    imports. YAML files (data.yaml) are read without aliases. Limits: docs/formats.md.

    With --engine ray the image files of a large tree are read, checked and hashed by Ray workers
    (a local Ray, or the cluster at --address: docs/ray.md); the dataset is the same bytes.

    \b
    Examples:
      pipeline import imagefolder photos/ --out datasets/photos
      pipeline import auto labels/ --out datasets/labels --classes classes.txt
      pipeline import voc raccoon/ --out datasets/raccoon --map raccon=raccoon
      pipeline import cvat cvat-export/ --out datasets/street
      pipeline import labelstudio export.json --images media/ --out datasets/ls --annotations all
      pipeline import images photos/ --out datasets/to-label
      pipeline import webdataset shards/mnist --out datasets/mnist-again
      pipeline import coco annotations/instances_train2017.json --out datasets/coco-train --workers 1
    """
    extra = {"voc_one_based": not voc_zero_based} if voc_zero_based is not None else {}
    if annotations is not None:
        extra["annotations"] = annotations
    from pipeline.engines import make_engine

    runner = make_engine(engine, address)
    dataset, report = import_dataset(
        fmt, src, out, classes_file=classes_file, class_map=parse_class_map(maps),
        on_error=on_error, on_invalid=on_invalid, extra=extra or None, images=images,
        overwrite=overwrite, engine=runner, workers=workers,
    )
    print_import_summary(dataset, report, out, engine=None if runner.is_local else runner.describe())


@click.command("export")
@click.argument("dataset_path", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice(list(FORMATS)), help="Target format.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier export at --out (recognised by its .pipeline-export; never a folder "
                   "of other files, a dataset, or one holding the input).")
@click.option("--ids", "ids", type=click.Choice(["source", "positions"]), default="source", show_default=True,
              help="Class ids written by YOLO and COCO: the source's own (dataset.json class_ids), or positions "
                   "in the class list (YOLO 0..N-1, COCO 1..N; e.g. COCO's gapped ids for Ultralytics training).")
@click.option("--shard-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="webdataset: samples per tar shard [default: 10000].")
def export_cmd(dataset_path, fmt, out, overwrite, ids, shard_size) -> None:
    """Export DATASET to another format.

    What the target format cannot hold (polygons in YOLO boxes, keypoints in VOC) is converted
    where a standard conversion exists, and listed in the summary otherwise; never dropped silently.
    The export folder gets a .pipeline-export naming the format, the source and every file
    written, so --overwrite can tell an earlier export from anything else.

    DATASET may also be an ImageFolder tree (<class>/<image>), imported once into the cache
    and re-imported only when its files change.

    webdataset writes tar shards OUT/{split}-000000.tar, ... of --shard-size samples (KEY.png|jpg as
    stored, KEY.cls, KEY.json with the whole record) and OUT/dataset.json; `pipeline train` streams
    them and `pipeline import webdataset` reads them back.

    YOLO and COCO write the class ids the source had (YOLO's names order, COCO's category ids)
    unless --ids positions.

    \b
    Examples:
      pipeline export datasets/mnist-embedded --format imagefolder --out exports/mnist
      pipeline export datasets/raccoon --format coco --out exports/raccoon-coco
      pipeline export datasets/to-label --format labelstudio --out exports/to-label-ls
      pipeline export datasets/coco-val --format yolo --out exports/val-yolo --ids positions
      pipeline export datasets/mnist --format webdataset --out shards/mnist --shard-size 5000
    """
    from pipeline.train import dataset_folder

    dataset, report = export_dataset(dataset_folder(dataset_path), fmt, out, overwrite=overwrite,
                                     options={"ids": ids, "shard_size": shard_size})
    rows: list[tuple[str, object]] = [("samples", report.written), ("files", report.files)]
    for k, n in sorted(report.converted.items()):
        rows.append((f"converted: {k}", n))
    for k, n in sorted(report.dropped.items()):
        rows.append((f"not representable: {k}", n))
    rows.append(("output", str(out)))
    for w in report.warnings[:20]:
        ui.warn(w)
    ui.summary(f"exported {report.written} samples as {fmt}", rows)
