"""The canonical dataset: the one on-disk contract every stage reads and writes.

A dataset is a folder::

    dataset.json     format version, task, ordered classes (and their source ids), lineage, hash of samples.jsonl
    samples.jsonl    one sample per line, sorted by id
    images/          the image files the samples point at (small ones may live in image packs,
                     images/packs/*.zip: see `pipeline.core.packs`)

Coordinates inside the package are absolute-pixel floats, boxes as ``[x1, y1, x2, y2]``
(x to the right, y down, the image spanning ``[0, width] x [0, height]``). Format modules convert
to and from their own conventions and nowhere else. See ``datasets/README.md`` for the full
description with an example.

The parts: `model` (Obj, Sample, DatasetInfo, Dataset), `validation` (the strict readers of
dataset.json and of samples.jsonl lines), `io` (loading and streaming a dataset folder), `stream`
(`open_dataset`: the same dataset with its samples streamed, in bounded memory), `columns` (whole-file
DuckDB queries of plain samples.jsonl files), `lines`
(the one serializer of samples.jsonl lines) and `writer` (DatasetWriter, in-place rewrites,
lineage). Every public name is importable from here.

Writers never touch the destination until the dataset is complete: everything is written into a
temporary sibling folder, fsynced, and renamed into place (`DatasetWriter`). In-place updates of
the metadata (`rewrite_samples`) write the new ``samples.jsonl`` and ``dataset.json`` first, then
rename them into place one after the other; the ``samples_sha256`` recorded in ``dataset.json``
lets a reader detect an update that was cut between the two renames, and finish it
(`finish_update`) when its writer no longer runs.
"""

from pipeline.core.dataset.io import (
    StoredSamples,
    check_samples_hash,
    content_hash,
    finish_update,
    is_dataset,
    iter_samples,
    load_dataset,
)
from pipeline.core.dataset.lines import (
    RenderedObjects,
    dumps_body,
    dumps_box_object,
    dumps_object,
    dumps_sample,
    join_objects,
    sample_line,
    sorted_lines,
    write_lines,
)
from pipeline.core.dataset.model import (
    DATASET_JSON,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGES_DIR,
    SAMPLES_JSONL,
    SPLITS,
    TASKS,
    Annotation,
    Dataset,
    DatasetInfo,
    Obj,
    Prediction,
    Sample,
    class_ids_for,
)
from pipeline.core.dataset.stream import SampleStream, is_streamed, open_dataset
from pipeline.core.dataset.validation import parse_sample_line, read_info
from pipeline.core.dataset.writer import (
    BackgroundSync,
    DatasetWriter,
    derive,
    lineage_entry,
    now_iso,
    replace_dir,
    rewrite_data,
    rewrite_lines,
    rewrite_samples,
)

__all__ = [
    "DATASET_JSON", "FORMAT_NAME", "FORMAT_VERSION", "IMAGES_DIR", "SAMPLES_JSONL", "SPLITS", "TASKS",
    "Annotation", "BackgroundSync", "Dataset", "DatasetInfo", "DatasetWriter", "Obj", "Prediction", "RenderedObjects",
    "Sample", "SampleStream", "StoredSamples", "check_samples_hash", "class_ids_for", "content_hash", "derive", "dumps_body",
    "dumps_box_object", "dumps_object", "dumps_sample", "finish_update", "is_dataset", "is_streamed", "iter_samples",
    "join_objects", "lineage_entry", "load_dataset", "now_iso", "open_dataset", "parse_sample_line", "read_info",
    "replace_dir", "rewrite_data", "rewrite_lines", "rewrite_samples", "sample_line",
    "sorted_lines", "write_lines",
]
