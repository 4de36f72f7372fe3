"""Where a stage may write: the one rule every output folder and output file goes through.

A stage never deletes or overwrites what it did not create. Every output says what wrote it:

- a dataset by its ``dataset.json`` and ``samples.jsonl`` (`pipeline import`, `fetch`, `crawl`,
  `crop`, `augment`);
- an export by ``.pipeline-export`` (`EXPORT_MARKER`): the format, the source dataset and
  every file the export wrote;
- a training run by its ``run.json``;
- a `label-issues` folder by its ``issues.json`` (`ISSUES_MARKER`; it holds only `ISSUES_ENTRIES`);
- a report file by its own content: a `check --out` JSON report is a JSON object with the report's
  keys, a `preview`/`stats` PNG carries a ``Software`` text chunk naming the command
  (`mark_png`).

`claim_dir` and `claim_file` decide, before anything is written, whether an output path may be
used. They refuse, with one line naming the path, what it holds and what to do:

1. a path that is an input of the running command, or contains one;
2. a path inside a dataset folder, input or not (a dataset holds only what its writer put there);
3. a file or a symbolic link where a folder goes (and a folder or other non-file where a file goes);
4. a non-empty folder without the marker of the same kind (someone else's files, another kind of
   output, or a dataset or export holding files its writer did not write);
5. an earlier output of the same kind without ``--overwrite`` (folders only; a stage that resumes
   or always replaces its own output, like `train`, passes ``overwrite=True``).

A new output may go inside a folder that is not a dataset, an import's SRC included (the readers
skip dot-named folders and pipeline datasets, so a re-import with ``--overwrite`` replaces the
earlier one there and reads nothing of it).

Writers then build the new output beside its destination under a dot-name and rename it into
place (`pipeline.core.dataset.writer.replace_dir`); `sweep_stale` removes what a killed writer
left beside `out`, and puts back an earlier output a kill caught between the two renames.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from pipeline.core.errors import UsageError

EXPORT_MARKER = ".pipeline-export"  # written last into every export folder
RUN_MARKER = "run.json"
DATASET_FILES = ("dataset.json", "samples.jsonl")
# what a dataset writer puts at the top of a dataset folder, and the temporaries of an in-place update
DATASET_ENTRIES = frozenset({"dataset.json", "samples.jsonl", "images"})
UPDATE_TEMPORARIES = (".samples.jsonl.tmp-", ".dataset.json.tmp-")
ISSUES_MARKER = "issues.json"
# what `pipeline label-issues` writes into its folder (crops/: a detection dataset's object crops)
ISSUES_ENTRIES = frozenset({"issues.json", "issues.csv", "issues.png", "probs.npy", "features.npy", "folds.json",
                            "crops"})
KINDS = ("dataset", "export", "run", "issues")
REPORTS = {"check": "a check report", "preview": "a preview", "stats": "a statistics plot"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEY = b"Software"


# ----------------------------------------------------------------------------------------------
# What a path holds
# ----------------------------------------------------------------------------------------------


def is_dataset_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in DATASET_FILES)


def kind_of(path: Path) -> str | None:
    """The kind of output `path` holds by its marker ("dataset", "export", "run"), or None."""
    if is_dataset_dir(path):
        return "dataset"
    if (path / EXPORT_MARKER).is_file():
        return "export"
    if (path / RUN_MARKER).is_file():
        return "run"
    if (path / ISSUES_MARKER).is_file():
        return "issues"
    return None


def enclosing_dataset(path: Path) -> Path | None:
    """The nearest folder above `path` (not `path` itself) that is a dataset, or None."""
    for parent in Path(os.path.abspath(path)).parents:
        if is_dataset_dir(parent):
            return parent
    return None


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _first_foreign(out: Path, kind: str) -> str | None:
    """A file or folder in the output folder `out` (holding `kind`'s marker) that its writer did
    not write, or None."""
    if kind == "dataset":
        for child in sorted(os.listdir(out)):
            if child not in DATASET_ENTRIES and not child.startswith(UPDATE_TEMPORARIES):
                return child
        listed = _dataset_files(out)
        for dirpath, dirnames, filenames in os.walk(out / "images"):
            dirnames.sort()
            for name in sorted(filenames):
                rel = Path(dirpath, name).relative_to(out).as_posix()
                if rel not in listed:
                    return rel
        return None
    if kind == "export":
        try:
            listed = set(json.loads((out / EXPORT_MARKER).read_text(encoding="utf-8"))["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return EXPORT_MARKER
        for dirpath, dirnames, filenames in os.walk(out):
            dirnames.sort()
            for name in sorted(filenames):
                rel = Path(dirpath, name).relative_to(out).as_posix()
                if rel != EXPORT_MARKER and rel not in listed:
                    return rel
        return None
    if kind == "issues":
        return next((child for child in sorted(os.listdir(out)) if child not in ISSUES_ENTRIES), None)
    return None


def _dataset_files(root: Path) -> set[str]:
    """The image files and packs a dataset's samples.jsonl names (unreadable lines name none)."""
    names = set()
    with open(root / "samples.jsonl", "rb") as fh:
        for line in fh:
            try:
                sample = json.loads(line)
            except ValueError:
                continue
            if not isinstance(sample, dict):
                continue
            pack = sample.get("pack")
            if isinstance(pack, dict) and isinstance(pack.get("file"), str):
                names.add(pack["file"])
            elif isinstance(sample.get("image"), str):
                names.add(sample["image"])
    return names


def _holds(path: Path) -> str:
    """What an existing folder holds, in words, for an error message."""
    kind = kind_of(path)
    if kind is not None:
        return {"dataset": "a pipeline dataset", "export": "a pipeline export", "run": "a training run",
                "issues": "a label-issues report"}[kind]
    return f"files no pipeline stage wrote (no {EXPORT_MARKER}, dataset.json or run.json)"


# ----------------------------------------------------------------------------------------------
# The rule
# ----------------------------------------------------------------------------------------------


def check_inputs(out: Path, reads: Iterable[str | os.PathLike], *, option: str = "--out") -> None:
    """Refuse an output path that is an input of the command, contains one or lies in a dataset."""
    target = _resolved(out)
    for read in reads:
        source = _resolved(read)
        if target == source:
            raise UsageError(f"{option} {out}: is an input of this command; refusing to write over it",
                             fix=f"choose an {option} outside the input")
        if _within(source, target):
            raise UsageError(f"{option} {out}: holds the input {read}; refusing to replace it",
                             fix=f"choose an {option} outside the input")
    dataset = enclosing_dataset(target)
    if dataset is not None:
        raise UsageError(f"{option} {out}: lies inside the dataset {dataset}; a dataset holds only what its "
                         "writer put there", fix=f"choose an {option} outside {dataset}")


def check_download_dir(raw: str | os.PathLike, option: str = "--raw") -> None:
    """Refuse a download folder that is a dataset or lies inside one (downloads are added to it)."""
    raw = Path(raw)
    check_inputs(raw, (), option=option)
    if is_dataset_dir(raw):
        raise UsageError(f"{option} {raw}: is a pipeline dataset; downloads would be added to it",
                         fix=f"choose another {option}")


def claim_dir(out: str | os.PathLike, kind: str, *, reads: Iterable[str | os.PathLike] = (),
              overwrite: bool = False, option: str = "--out") -> bool:
    """Whether the folder `out` may receive a new output of `kind` ("dataset", "export", "run"):
    returns True when it holds an earlier one that will be replaced, False when it is free (absent
    or empty); raises UsageError otherwise (see the module doc)."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    out = Path(out)
    reads = [Path(r) for r in reads]
    check_inputs(out, reads, option=option)
    if os.path.islink(out):
        raise UsageError(f"{option} {out}: is a symbolic link; refusing to replace it", fix=f"choose another {option}")
    if not out.exists():
        return False
    if not out.is_dir():
        raise UsageError(f"{option} {out}: exists and is a file", fix=f"choose another {option}")
    if not any(out.iterdir()):
        return False
    found = kind_of(out)
    if found != kind:
        what = {"export": "an export", "issues": "a label-issues report"}.get(kind, f"a {kind}")
        raise UsageError(f"{option} {out}: exists and holds {_holds(out)}; refusing to replace it with {what}",
                         fix=f"choose another {option}, or remove that folder yourself")
    foreign = _first_foreign(out, kind)
    if foreign is not None:
        raise UsageError(f"{option} {out}: holds {_holds(out)} and also {foreign!r}, which its writer did not "
                         "write; refusing to replace it", fix=f"move {foreign!r} out of {out}, or choose another {option}")
    if not overwrite:
        raise UsageError(f"{option} {out}: already holds {_holds(out)}",
                         fix=f"add --overwrite to replace it, or choose another {option}")
    return True


def claim_file(out: str | os.PathLike, report: str, *, reads: Iterable[str | os.PathLike] = (),
               option: str = "--out") -> None:
    """Whether the file `out` may receive `report` ("check", "preview", "stats"): absent, or an
    earlier output of the same command (`is_report`); raises UsageError otherwise."""
    out = Path(out)
    check_inputs(out, reads, option=option)
    if os.path.islink(out):
        raise UsageError(f"{option} {out}: is a symbolic link; refusing to write through it",
                         fix=f"choose another {option}")
    if not os.path.lexists(out):
        return
    if not out.is_file():
        raise UsageError(f"{option} {out}: exists and is not a file", fix=f"choose another {option}")
    if not is_report(out, report):
        raise UsageError(f"{option} {out}: exists and is not {REPORTS[report]} written by `pipeline {report}`; "
                         "refusing to overwrite it", fix=f"choose another {option}, or remove that file yourself")


def is_report(path: Path, report: str) -> bool:
    """Whether the file at `path` is an earlier output of `pipeline <report> --out`."""
    if report == "check":
        try:
            data = json.loads(Path(path).read_bytes()[: 1 << 30].decode("utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("written_by") == "pipeline check"
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return png_software(head) == f"pipeline {report}"


# ----------------------------------------------------------------------------------------------
# Markers
# ----------------------------------------------------------------------------------------------


def write_export_marker(folder: Path, *, fmt: str, source: str | os.PathLike) -> None:
    """Record, as the last file of an export folder, what wrote it and every file it holds."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        files += [Path(dirpath, name).relative_to(folder).as_posix() for name in sorted(filenames)]
    marker = {"written_by": "pipeline export", "format": fmt, "source": str(source), "files": sorted(files)}
    with open(folder / EXPORT_MARKER, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(marker, ensure_ascii=False, indent=1) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def mark_png(data: bytes, report: str) -> bytes:
    """`data` (a PNG) with a ``Software: pipeline <report>`` text chunk after its header."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    body = _PNG_KEY + b"\0" + f"pipeline {report}".encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    end_of_header = len(PNG_SIGNATURE) + 8 + struct.unpack(">I", data[8:12])[0] + 4
    return data[:end_of_header] + chunk + data[end_of_header:]


def png_software(data: bytes) -> str | None:
    """The ``Software`` text of a PNG's chunks before its image data, or None."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, name = struct.unpack(">I4s", data[pos:pos + 8])
        if name == b"IDAT":
            return None
        body = data[pos + 8:pos + 8 + length]
        if name == b"tEXt" and body.startswith(_PNG_KEY + b"\0"):
            return body[len(_PNG_KEY) + 1:].decode("latin-1")
        pos += 12 + length
    return None


# ----------------------------------------------------------------------------------------------
# What killed writers leave
# ----------------------------------------------------------------------------------------------


def temp_name(out: Path, what: str = "tmp") -> Path:
    """The dot-named temporary path beside `out` for this process (`sweep_stale` knows the pattern)."""
    import uuid

    return out.with_name(f".{out.name}.{what}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def sweep_stale(out: Path) -> None:
    """Clean up beside `out` after writers that were killed (their pid no longer runs): their
    temporary folders go; an earlier output moved aside for a replacement (``.old-``) comes back
    when `out` is missing (the kill came between the two renames), and goes otherwise."""
    parent = out.parent
    if not parent.is_dir():
        return
    for what in ("old", "tmp"):  # (an old one back first: a half-written tmp never replaces it)
        prefix = f".{out.name}.{what}-"
        for p in sorted(parent.iterdir()):
            if not p.name.startswith(prefix):
                continue
            try:
                pid = int(p.name[len(prefix):].split("-")[0])
            except ValueError:
                continue
            if pid_alive(pid):
                continue
            if what == "old" and not os.path.lexists(out):
                os.rename(p, out)
            else:
                shutil.rmtree(p, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
