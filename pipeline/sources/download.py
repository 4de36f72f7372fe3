"""What a download brought, as one typed result every remote source returns.

`url.fetch`, `kaggle.fetch`, `hf.fetch` and `crawl.fetch` download into a raw folder and describe
what arrived as a `Download`: the files, how they are to be imported (`kind`), and the lineage
keys that name them (`params`, `inputs`). Sources import nothing; `pipeline.fetch` turns a
`Download` into a dataset with the ingest API (`pipeline.formats.ingest`).

Kinds of download:

- ``archive``: one archive (`files[0]`), extracted under `raw/extracted/` before the import;
- ``files``: loose files imported together (hard-linked into `raw/.import/`);
- ``folder``: a folder imported as it is (`folder`);
- ``images``: loose images with their provenance (`images`), imported as an image dataset;
- ``mixed``: files that cannot be imported together (`arrived` says what they are);
- ``none``: nothing arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from pipeline.core.errors import UsageError
from pipeline.sources.archive import unpack

R = TypeVar("R")

KINDS = ("archive", "files", "folder", "images", "mixed", "none")


def default_raw(out: Path) -> Path:
    """Where raw downloads go when --raw is not given: beside the dataset, `OUT-raw`."""
    out = Path(out)
    return out.with_name(out.name + "-raw")


@dataclass
class Download(Generic[R]):
    """What one source put into `raw`, how to import it, and the lineage entry it becomes.

    `params` and `inputs` go into the lineage of the dataset imported from it unchanged: `params`
    names the source and version, `inputs` holds the sha256 of every file, keyed by where it came
    from. `report` is the source's own account (counts, failures) for the command's summary.
    """

    source: str  # "url", "kaggle", "huggingface" or "crawl"
    raw: Path
    kind: str  # one of KINDS (module docstring)
    report: R
    params: dict = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    stage: str = "fetch"  # the lineage stage of the imported dataset
    files: list[Path] = field(default_factory=list)  # the files to import (`archive`: the archive first)
    folder: Path | None = None
    images: list[tuple[Path, dict]] = field(default_factory=list)  # (image file, provenance)
    arrived: str = ""  # what the files are, in a word ("data", "archive", ...), for a `mixed` download

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Download kind {self.kind!r}: expected one of {', '.join(KINDS)}")

    def unpacked(self) -> Path:
        """The folder to import: the archive extracted (once per archive content), loose files
        linked into one folder, or the folder itself. A `mixed` download is refused here."""
        if self.kind == "archive":
            ((_archive, folder),) = unpack(self.files[:1], self.raw)
            return folder
        if self.kind == "files":
            folder = self.raw / ".import"
            folder.mkdir(exist_ok=True)
            for f in self.files:
                link = folder / f.name
                link.unlink(missing_ok=True)
                link.hardlink_to(f)
            return folder
        if self.kind == "folder" and self.folder is not None:
            return self.folder
        if self.kind == "mixed":
            raise UsageError(
                f"downloaded {len(self.files)} files of different kinds ({self.arrived}); "
                "not sure how to import them together",
                fix=f"they are in {self.raw}; import the right folder with `pipeline import auto`, or use --no-import")
        raise UsageError(f"{self.raw}: a {self.kind} download has no folder to import")
