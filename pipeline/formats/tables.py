"""Readers for the shapes datasets take on Kaggle and the Hugging Face Hub (`ingest.import_any`
chooses among them and the annotation formats for a downloaded folder).

- **Pixel tables** (Kaggle digit-recognizer `label,pixel0..pixel783`, Fashion-MNIST CSV
  `label,pixel1..pixel784`): one square grayscale image per row, read row by row.
- **Parquet with an image column** (the Hub's `datasets` layout): a struct column `{bytes, path}`
  and a ClassLabel column whose names come from the parquet schema metadata (key `huggingface`,
  as `datasets` writes it) or from the `dataset_info` block of the README's YAML header. Read as
  record batches with pyarrow, so a split larger than memory still imports.
- **Hub imagefolder with metadata** (`metadata.jsonl` / `metadata.csv` with a `file_name`
  column, as `datasets`' ImageFolder builder reads it): labels from a `label` column or else the
  class folder.
- **Loose images** (URL lists, crawls): unlabelled samples or one `--label` for all, with
  provenance in each sample's `source`.
- Everything else goes to the annotation formats (`pipeline.formats.ingest.detect_format`):
  ImageFolder trees, VOC, YOLO, CreateML, labelme, COCO.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core import ui
from pipeline.core.dataset import DatasetWriter, Sample
from pipeline.core.errors import DataError
from pipeline.core.images import EXT_FOR_FORMAT, JUNK_NAMES, encode_png, open_image_bytes, sniff
from pipeline.core.limits import load_yaml
from pipeline.core.paths import SafeFiles, natural_sorted, read_regular, sha256_bytes
from pipeline.formats.splits import split_from_path

_PIXEL = re.compile(r"^pixel_?(\d+)$", re.IGNORECASE)
LABEL_COLUMNS = ("label", "labels", "class", "target", "category")
IGNORED_NAMES = {"readme.md", ".gitattributes", ".gitignore", "dataset_infos.json", "license", "license.txt"}


@dataclass
class ImportOutcome:
    """What an import found and wrote, for the command's summary."""

    kind: str  # "pixel-csv", "parquet", "metadata", "images" or a format name
    dataset: object = None
    imported: int = 0
    problems: list[DataError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def safe_files(root: Path, outcome: ImportOutcome) -> SafeFiles:
    """The rule for what an import of `root` may open (`pipeline.core.paths.SafeFiles`), its
    refusals (links out of `root`, FIFOs, ...) counted in `outcome.skipped` and noted."""

    def refused(r) -> None:
        outcome.skipped[r.reason] = outcome.skipped.get(r.reason, 0) + 1
        try:
            shown = Path(os.path.abspath(r.path)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            shown = r.path
        outcome.notes.append(r.describe(shown))

    return SafeFiles([root], on_refused=refused)


def tree_files(root: Path, match, safe: SafeFiles) -> list[Path]:
    """Files under `root` whose name `match`es, natural-sorted by relative path, skipping anything
    whose path has a part starting with a dot; only what `safe` allows is listed."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in safe.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".") and match(f)]
    return natural_sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _image_ext(data: bytes) -> str | None:
    fmt = sniff(data[:16])
    return EXT_FOR_FORMAT.get(fmt) if fmt else None


# ----------------------------------------------------------------------------------------------
# Pixel tables
# ----------------------------------------------------------------------------------------------


def pixel_table_header(path: Path) -> tuple[int | None, list[int], int] | None:
    """(label column index or None, pixel column indices in pixel order, side) of a pixel CSV, or None."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError):
        return None
    if not header:
        return None
    pixels = []
    label = None
    for i, name in enumerate(header):
        m = _PIXEL.match(name.strip())
        if m:
            pixels.append((int(m.group(1)), i))
        elif name.strip().lower() in LABEL_COLUMNS and label is None:
            label = i
    n = len(pixels)
    side = math.isqrt(n)
    if n < 4 or side * side != n:
        return None
    pixels.sort()
    return label, [i for _, i in pixels], side


def read_pixel_csv(path: Path, writer: DatasetWriter, outcome: ImportOutcome, *, rel: str) -> int:
    """Add one sample per row of a pixel table; bad rows are reported (file:line: field) and left out."""
    found = pixel_table_header(path)
    assert found is not None
    label_col, pixel_cols, side = found
    split = split_from_path(rel)
    stem = Path(rel).with_suffix("").as_posix()
    added = 0
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for lineno, row in enumerate(ui.progress(reader, desc=f"import {Path(rel).name}", unit="row"), start=2):
            if not row:
                continue
            try:
                values = np.array([int(row[i]) for i in pixel_cols], dtype=np.int64)
            except (ValueError, IndexError):
                outcome.problems.append(DataError(rel, "bad pixel row", line=lineno, field="pixel",
                                                  expected=f"{len(pixel_cols)} integers 0..255", got=row[:4]))
                continue
            if values.min() < 0 or values.max() > 255:
                outcome.problems.append(DataError(rel, "pixel out of range", line=lineno, field="pixel",
                                                  expected="0..255", got=int(values.max())))
                continue
            label = None
            if label_col is not None:
                label = row[label_col].strip() if label_col < len(row) else ""
                if not label:
                    outcome.problems.append(DataError(rel, "empty label", line=lineno, field=f"column {label_col + 1}"))
                    continue
                label = writer.resolve_label(label, where=f"{rel}:{lineno}")
            img = Image.fromarray(values.astype(np.uint8).reshape(side, side), mode="L")
            sample = Sample(id=f"{stem}/{lineno - 1:06d}", split=split, label=label, width=side, height=side,
                            source={"file": rel, "row": lineno - 1})
            writer.add(sample, data=encode_png(img), ext="png")
            added += 1
    return added


# ----------------------------------------------------------------------------------------------
# Parquet
# ----------------------------------------------------------------------------------------------


def card_class_names(readme: Path) -> dict[str, list[str]]:
    """ClassLabel names per feature from a dataset card's `dataset_info` YAML (all configs merged)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        meta = load_yaml(text[3:end], str(readme))
    except DataError:
        return {}
    infos = (meta or {}).get("dataset_info") if isinstance(meta, dict) else None
    if isinstance(infos, dict):
        infos = [infos]
    names: dict[str, list[str]] = {}
    for info in infos or []:
        for feat in (info or {}).get("features") or []:
            if not isinstance(feat, dict):
                continue
            dtype = feat.get("dtype")
            cl = dtype.get("class_label") if isinstance(dtype, dict) else None
            raw = cl.get("names") if isinstance(cl, dict) else None
            if isinstance(raw, dict):
                ordered = sorted(raw.items(), key=lambda kv: int(kv[0]))
                names.setdefault(str(feat.get("name")), [str(v) for _, v in ordered])
            elif isinstance(raw, list):
                names.setdefault(str(feat.get("name")), [str(v) for v in raw])
    return names


def parquet_columns(path: Path, card_names: dict[str, list[str]]) -> tuple[str, str | None, list[str] | None] | None:
    """(image column, label column, class names) of a parquet file, or None when it has no image column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    features: dict = {}
    raw = (schema.metadata or {}).get(b"huggingface")
    if raw:
        try:
            features = (json.loads(raw).get("info") or {}).get("features") or {}
        except (ValueError, AttributeError):
            features = {}
    image_col = None
    for f in schema:
        is_struct = pa.types.is_struct(f.type)
        if is_struct and {"bytes"} <= {c.name for c in f.type}:
            if (features.get(f.name) or {}).get("_type") == "Image" or image_col is None:
                image_col = f.name
    if image_col is None:
        return None
    label_col, names = None, None
    for name, feat in features.items():
        if isinstance(feat, dict) and feat.get("_type") == "ClassLabel" and name in schema.names:
            label_col, names = name, [str(n) for n in feat.get("names") or []] or None
            break
    if label_col is None:
        for name in card_names:
            if name in schema.names:
                label_col, names = name, card_names[name]
                break
    if label_col is None:
        for name in schema.names:
            if name.lower() in LABEL_COLUMNS:
                label_col = name
                break
    return image_col, label_col, names


def read_parquet(path: Path, writer: DatasetWriter, outcome: ImportOutcome, *, rel: str,
                 columns: tuple[str, str | None, list[str] | None], batch_size: int = 256) -> int:
    """Stream one parquet file in record batches and add a sample per row."""
    import pyarrow.parquet as pq

    image_col, label_col, names = columns
    split = split_from_path(rel)
    stem = Path(rel).with_suffix("").as_posix()
    pf = pq.ParquetFile(path)
    wanted = [image_col] + ([label_col] if label_col else [])
    added = 0
    row = 0
    bar = ui.progress(total=pf.metadata.num_rows, desc=f"import {Path(rel).name}", unit="row")
    try:
        for batch in pf.iter_batches(batch_size=batch_size, columns=wanted):
            images = batch.column(0)
            labels = batch.column(1).to_pylist() if label_col else [None] * batch.num_rows
            blobs = images.field("bytes").to_pylist()
            for i in range(batch.num_rows):
                index = row
                row += 1
                where = f"{rel}: row {index}"
                data = blobs[i]
                if not data:
                    outcome.problems.append(DataError(where, "no image bytes", field=image_col,
                                                      fix="images stored by path only are not supported"))
                    continue
                ext = _image_ext(data)
                try:
                    if ext is None:
                        raise DataError(where, "not an image (unknown file signature)", field=image_col)
                    img = open_image_bytes(data, where)
                except DataError as err:
                    outcome.problems.append(err)
                    continue
                label = labels[i]
                if label is not None:
                    if isinstance(label, int) and names:
                        if not 0 <= label < len(names):
                            outcome.problems.append(DataError(where, "class index out of range", field=label_col,
                                                              expected=f"0..{len(names) - 1}", got=label))
                            continue
                        label = names[label]
                    label = writer.resolve_label(str(label), where=where)
                sample = Sample(id=f"{stem}/{index:06d}", split=split, label=label, width=img.width,
                                height=img.height, source={"file": rel, "row": index})
                writer.add(sample, data=data, ext=ext)
                added += 1
            bar.update(batch.num_rows)
    finally:
        bar.close()
    return added


# ----------------------------------------------------------------------------------------------
# Hub imagefolder with metadata files
# ----------------------------------------------------------------------------------------------


def _metadata_rows(path: Path) -> Iterable[tuple[int, dict]]:
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        yield lineno, json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(path.name, f"not valid JSON ({exc.msg})", line=lineno) from exc
    else:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), start=2):
                yield lineno, row


def read_metadata_folder(root: Path, writer: DatasetWriter, outcome: ImportOutcome) -> int:
    """Add the images listed by every `metadata.jsonl`/`metadata.csv` under `root`."""
    added = 0
    safe = safe_files(root, outcome)
    files = tree_files(root, lambda name: name in ("metadata.jsonl", "metadata.csv"), safe)
    for meta in files:
        base = meta.parent
        mrel = meta.relative_to(root).as_posix()
        for lineno, row in _metadata_rows(meta):
            if not isinstance(row, dict) or not row.get("file_name"):
                outcome.problems.append(DataError(mrel, "no file_name", line=lineno, field="file_name"))
                continue
            name = str(row["file_name"])
            target = (base / name)
            try:
                target.resolve().relative_to(root.resolve())
            except ValueError:
                outcome.problems.append(DataError(mrel, "file outside the dataset", line=lineno, field="file_name",
                                                  got=name))
                continue
            rel = target.relative_to(root).as_posix()
            if not safe.is_file(target):  # (a link out of the root or a FIFO is also noted)
                outcome.problems.append(DataError(mrel, "no such image", line=lineno, field="file_name", got=name))
                continue
            label = None
            for key in LABEL_COLUMNS:
                if row.get(key) not in (None, ""):
                    label = str(row[key])
                    break
            if label is None and Path(name).parent != Path("."):
                label = Path(name).parent.name
            try:
                data = read_regular(target, rel)
                ext = _image_ext(data)
                if ext is None:
                    raise DataError(rel, "not an image (unknown file signature)")
                img = open_image_bytes(data, rel)
                if label is not None:
                    label = writer.resolve_label(label, where=f"{mrel}:{lineno}")
            except DataError as err:
                outcome.problems.append(err)
                continue
            sample = Sample(id=Path(rel).with_suffix("").as_posix(), split=split_from_path(mrel), label=label,
                            width=img.width, height=img.height, source={"file": rel, "metadata": mrel})
            writer.add(sample, data=data, ext=ext)
            added += 1
    return added


# ----------------------------------------------------------------------------------------------
# Loose images
# ----------------------------------------------------------------------------------------------


def read_images(items: list[tuple[Path, dict]], writer: DatasetWriter, outcome: ImportOutcome,
                label: str | None) -> int:
    """Add image files with their provenance (`source`): URL, page, alt text."""
    added = 0
    for path, source in items:
        try:
            data = read_regular(path, path.name)
            ext = _image_ext(data)
            if ext is None:
                raise DataError(path.name, "not an image (unknown file signature)")
            img = open_image_bytes(data, path.name)
        except DataError as err:
            outcome.problems.append(err)
            continue
        sid = sha256_bytes(data)[:16]
        sample = Sample(id=sid, label=writer.resolve_label(label) if label else None, width=img.width,
                        height=img.height, source=dict(source))
        writer.add(sample, data=data, ext=ext)
        added += 1
    return added


# ----------------------------------------------------------------------------------------------
# Where a download's content starts
# ----------------------------------------------------------------------------------------------


def _visible(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if not p.name.startswith(".") and p.name.lower() not in IGNORED_NAMES
            and p.name.lower() not in JUNK_NAMES]


def content_root(root: Path) -> Path:
    """Descend through folders that hold nothing but one folder (zips often wrap everything in one).

    A lone split folder (`train/`) is kept: its name is the split.
    """
    root = Path(root)
    for _ in range(8):
        items = _visible(root)
        if (len(items) == 1 and items[0].is_dir() and not items[0].is_symlink()  # never through a link
                and split_from_path(items[0].name) is None):
            root = items[0]
        else:
            break
    return root
