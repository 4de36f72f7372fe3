"""Dataset repositories on the Hugging Face Hub, through `huggingface_hub` (repo_type "dataset").

The revision (branch, tag or commit; default `main`) is resolved to its commit hash first and
everything is downloaded at that commit, so the lineage names exactly what was fetched.
Files go to a local folder (`snapshot_download(local_dir=...)`); the client keeps per-file
metadata there, so a re-run at the same commit downloads nothing. Every file is then checked
against the Hub's tree listing: the sha256 of LFS files, the git blob id of the others.

The endpoint is `HF_ENDPOINT` (read when fetching, default https://huggingface.co); the token is
whatever `huggingface_hub` finds (`HF_TOKEN`, or the file written by `hf auth login`). Tokens are
never printed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from pipeline.core import ui
from pipeline.core.errors import NetworkError, UsageError
from pipeline.core.paths import sha256_file
from pipeline.sources.download import Download

DEFAULT_ENDPOINT = "https://huggingface.co"
# The HTTP stacks huggingface_hub runs on (httpx, or its httpx2 fork, over httpcore; requests over urllib3
# in older releases): an exception raised from one of these packages is the network failing.
HTTP_PACKAGES = frozenset({"httpx", "httpx2", "httpcore", "requests", "urllib3", "h11", "h2"})


@dataclass
class HfDownload:
    """What `download` brought: the repo, the resolved commit and each file's sha256."""

    repo: str
    revision: str
    commit: str
    folder: Path
    files: dict[str, str] = field(default_factory=dict)  # path in repo -> sha256
    endpoint: str = DEFAULT_ENDPOINT


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    h.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def is_transport_error(exc: BaseException) -> bool:
    """True for a connection, timeout or protocol error of the HTTP client (refused, reset, DNS, TLS...)."""
    return any(cls.__module__.split(".")[0] in HTTP_PACKAGES for cls in type(exc).__mro__)


def _matches(path: str, include: list[str] | None) -> bool:
    return not include or any(fnmatch(path, pat) for pat in include)


def fetch(repo: str, raw: Path, *, revision: str | None = None, include: list[str] | None = None,
          endpoint: str | None = None) -> Download[HfDownload]:
    """`download`, described for the import: the raw folder as it is (parquet, imagefolder, formats).

    The lineage records the repo, the revision asked for, the resolved commit, the endpoint and
    the include globs, and the sha256 of each file keyed `hf://datasets/REPO@COMMIT/PATH`.
    """
    raw = Path(raw)
    got = download(repo, raw, revision=revision, include=list(include or []) or None, endpoint=endpoint)
    return Download(
        source="huggingface", raw=raw, kind="folder", folder=raw, report=got,
        params={"source": "huggingface", "repo": repo, "revision": got.revision, "commit": got.commit,
                "endpoint": got.endpoint, "include": list(include or [])},
        inputs={f"hf://datasets/{repo}@{got.commit}/{p}": h for p, h in got.files.items()},
    )


def download(repo: str, raw: Path, *, revision: str | None = None, include: list[str] | None = None,
             endpoint: str | None = None) -> HfDownload:
    """Download the files of dataset `repo` at `revision` (matching `include` globs) into `raw`."""
    try:
        from huggingface_hub import HfApi, snapshot_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise UsageError("huggingface_hub is not installed", fix="pip install huggingface_hub") from exc
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UsageError(f"{repo!r}: expected a dataset repository as OWNER/NAME", fix="e.g. ylecun/mnist")
    if ui.is_quiet():
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    api = HfApi(endpoint=endpoint)
    rev = revision or "main"
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    try:
        info = api.dataset_info(repo, revision=rev)
        commit = info.sha
        if not commit:
            raise NetworkError(f"{endpoint}: the Hub did not return a commit for {repo}@{rev}")
        tree = {f.path: f for f in api.list_repo_tree(repo, repo_type="dataset", revision=commit, recursive=True)
                if getattr(f, "size", None) is not None and hasattr(f, "blob_id")}
        wanted = sorted(p for p in tree if _matches(p, include))
        if not wanted:
            raise UsageError(f"{repo}@{commit[:12]}: no files" + (f" match {include}" if include else ""),
                             fix="check --include (a glob such as 'data/*.parquet')")
        ui.info(f"{repo}: revision {rev} is commit {commit}; {len(wanted)} files")
        snapshot_download(repo, repo_type="dataset", revision=commit, allow_patterns=wanted, local_dir=raw,
                          endpoint=endpoint)
    except RevisionNotFoundError as exc:
        raise NetworkError(f"{repo}: no revision {rev!r} on {endpoint}", fix="check --revision") from exc
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise NetworkError(
            f"{repo}: dataset not found on {endpoint}, or it is private or gated",
            fix="check the name; for private or gated datasets log in with `hf auth login` or set HF_TOKEN",
        ) from exc
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError) as exc:
        raise NetworkError(f"{repo}: download from {endpoint} failed ({str(exc).splitlines()[0]})",
                           fix="check your connection and run the same command again") from exc
    except OSError as exc:
        raise NetworkError(f"{repo}: download from {endpoint} failed ({exc})",
                           fix="check your connection and disk space, then run the same command again") from exc
    except Exception as exc:
        if not is_transport_error(exc):
            raise
        detail = str(exc).splitlines()[0] if str(exc).strip() else "no answer"
        raise NetworkError(f"{repo}: cannot reach {endpoint} ({type(exc).__name__}: {detail})",
                           fix="check your connection (and HF_ENDPOINT), then run the same command again") from exc
    result = HfDownload(repo=repo, revision=rev, commit=commit, folder=raw, endpoint=endpoint)
    for path in wanted:
        local = raw / path
        entry = tree[path]
        if not local.is_file():
            raise NetworkError(f"{repo}: {path} is missing after the download", fix="run the same command again")
        digest = sha256_file(local)
        lfs = getattr(entry, "lfs", None)
        if lfs is not None and lfs.sha256 and digest != lfs.sha256:
            local.unlink()
            raise NetworkError(f"{repo}: {path}: sha256 {digest} does not match the Hub's {lfs.sha256}; removed",
                               fix="run the same command again")
        if lfs is None and entry.blob_id and _git_blob_sha1(local) != entry.blob_id:
            local.unlink()
            raise NetworkError(f"{repo}: {path}: git blob id does not match the Hub's {entry.blob_id}; removed",
                               fix="run the same command again")
        result.files[path] = digest
    return result
