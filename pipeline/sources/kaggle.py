"""Kaggle datasets and competitions, through Kaggle's official client library.

We call `kagglesdk` (the library the `kaggle` command is built on, installed with it) rather than
`import kaggle`: importing the `kaggle` package authenticates at import time, prints to stdout
and exits the process when no credentials exist. `kagglesdk` is imported only when fetching, and
a missing or unusable credential becomes one `UsageError` saying how to provide one.

Credentials, in the order the Kaggle client uses them:

1. `KAGGLE_API_TOKEN` (the token itself, or the path of a file holding it);
2. `~/.kaggle/access_token` (or `access_token.txt`);
3. `KAGGLE_USERNAME` + `KAGGLE_KEY`, or `kaggle.json` (`{"username", "key"}`) in
   `KAGGLE_CONFIG_DIR`, `~/.kaggle/` or `$XDG_CONFIG_HOME/kaggle/`.

A credentials file readable by other users gets a warning. Tokens and keys are never printed,
not even with `--debug` (errors from the client are reduced to their status and message).
The API endpoint follows `KAGGLE_API_ENVIRONMENT` as the client defines it (tests use `TEST`,
which is http://localhost:7777).

Downloads go through `http.Fetcher` from the URL the API redirects to (resume, verification,
atomic rename); a manifest in the raw folder records version, size and sha256, so a re-run at
the same version with the files present downloads nothing.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import ui
from pipeline.core.errors import NetworkError, UsageError
from pipeline.core.paths import atomic_write_text, sha256_file
from pipeline.sources.archive import archive_kind, is_archive_name
from pipeline.sources.download import Download
from pipeline.sources.http import Fetcher, HttpOptions

MANIFEST = ".kaggle-downloads.json"
HOW = ("set KAGGLE_API_TOKEN to a token from https://www.kaggle.com/settings/api, save it in "
       "~/.kaggle/access_token, or put kaggle.json ({\"username\", \"key\"}) in ~/.kaggle/ (chmod 600)")


@dataclass
class Credentials:
    """Where the credential came from (never the secret in any printable field)."""

    source: str
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    key: str | None = field(default=None, repr=False)


@dataclass
class KaggleDownload:
    """What `download` brought."""

    ref: str  # owner/slug or competition name
    kind: str  # "dataset" or "competition"
    version: int | None
    files: dict[str, str] = field(default_factory=dict)  # file name in raw -> sha256
    transferred: int = 0
    present: int = 0


def _warn_if_shared(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name != "nt" and mode & (stat.S_IRGRP | stat.S_IROTH):
        ui.warn(f"{path} is readable by other users; run `chmod 600 {path}`")


def _config_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        dirs.append(Path(os.environ["KAGGLE_CONFIG_DIR"]))
    dirs.append(Path.home() / ".kaggle")
    dirs.append(Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle")
    return dirs


def find_credentials() -> Credentials:
    """The first credential found (see the module docstring), or a `UsageError` explaining how to add one."""
    value = os.environ.get("KAGGLE_API_TOKEN", "").strip()
    if value:
        p = Path(value)
        if len(value) < 4096 and p.is_file():
            _warn_if_shared(p)
            token = p.read_text(encoding="utf-8").strip()
            if token:
                return Credentials(source=f"KAGGLE_API_TOKEN file {p}", token=token)
        else:
            return Credentials(source="KAGGLE_API_TOKEN", token=value)
    for name in ("access_token", "access_token.txt"):
        p = Path.home() / ".kaggle" / name
        if p.is_file():
            token = p.read_text(encoding="utf-8").strip()
            if token:
                _warn_if_shared(p)
                return Credentials(source=str(p), token=token)
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return Credentials(source="KAGGLE_USERNAME/KAGGLE_KEY", username=os.environ["KAGGLE_USERNAME"],
                           key=os.environ["KAGGLE_KEY"])
    for d in _config_dirs():
        p = d / "kaggle.json"
        if p.is_file():
            _warn_if_shared(p)
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
                return Credentials(source=str(p), username=str(data["username"]), key=str(data["key"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"{p}: not a valid kaggle.json (expected {{\"username\": ..., \"key\": ...}})",
                                 fix=HOW) from exc
    raise UsageError("no Kaggle credentials found", fix=HOW)


def _client(creds: Credentials):
    try:
        from kagglesdk import KaggleClient
    except ImportError as exc:
        raise UsageError("the Kaggle client is not installed", fix="pip install kaggle") from exc
    except SystemExit as exc:  # older releases exit on import without credentials
        raise UsageError("the Kaggle client refused to start (no usable credentials)", fix=HOW) from exc
    try:
        return KaggleClient(username=creds.username, password=creds.key, api_token=creds.token)
    except Exception as exc:  # noqa: BLE001 - e.g. an unknown KAGGLE_API_ENVIRONMENT
        raise UsageError(f"cannot set up the Kaggle client: {type(exc).__name__}: {exc}") from exc


def _call(what: str, fn, creds: Credentials):
    """Run one client call; HTTP errors become one line that never includes credentials."""
    import requests

    try:
        return fn()
    except SystemExit as exc:
        raise UsageError("the Kaggle client gave up (no usable credentials)", fix=HOW) from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise UsageError(f"{what}: Kaggle refused the credentials from {creds.source} (HTTP {status})",
                             fix="check the token or key; for competitions, accept the rules on the website first") from None
        if status == 404:
            raise NetworkError(f"{what}: not found on Kaggle (HTTP 404)", fix="check the name and --version") from None
        raise NetworkError(f"{what}: Kaggle answered HTTP {status}", fix="try again later") from None
    except requests.RequestException as exc:
        raise NetworkError(f"{what}: cannot reach Kaggle ({type(exc).__name__})",
                           fix="check your connection and run the same command again") from None


def _read_manifest(raw: Path) -> dict:
    try:
        data = json.loads((raw / MANIFEST).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def download(raw: Path, *, dataset: str | None = None, competition: str | None = None, version: int | None = None,
             file: str | None = None, options: HttpOptions | None = None) -> KaggleDownload:
    """Download a dataset (OWNER/SLUG, optionally one `file` and a `version`) or a competition's files."""
    if bool(dataset) == bool(competition):
        raise UsageError("give either OWNER/DATASET or --competition NAME")
    if dataset and (dataset.count("/") != 1 or not all(dataset.split("/"))):
        raise UsageError(f"{dataset!r}: expected OWNER/DATASET", fix="e.g. pipeline fetch kaggle oddrationale/mnist-in-csv")
    creds = find_credentials()
    client = _client(creds)
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(raw)
    ref = dataset or competition
    result = KaggleDownload(ref=ref, kind="dataset" if dataset else "competition", version=version)
    with client as kaggle:
        if dataset:
            from kagglesdk.datasets.types.dataset_api_service import (
                ApiDownloadDatasetRequest,
                ApiGetDatasetRequest,
            )

            owner, slug = dataset.split("/")
            if version is None:
                req = ApiGetDatasetRequest()
                req.owner_slug, req.dataset_slug = owner, slug
                info = _call(dataset, lambda: kaggle.datasets.dataset_api_client.get_dataset(req), creds)
                result.version = info.current_version_number or None
            name = file.rsplit("/", 1)[-1] if file else f"{slug}.zip"
            key = f"{dataset}@{result.version}/{file or ''}"

            def opener():
                req = ApiDownloadDatasetRequest()
                req.owner_slug, req.dataset_slug = owner, slug
                req.dataset_version_number = result.version
                if file:
                    req.file_name = file
                return kaggle.datasets.dataset_api_client.download_dataset(req)
        else:
            from kagglesdk.competitions.types.competition_api_service import (
                ApiDownloadDataFileRequest,
                ApiDownloadDataFilesRequest,
            )

            name = file.rsplit("/", 1)[-1] if file else f"{competition}.zip"
            key = f"competition:{competition}/{file or ''}"

            def opener():
                if file:
                    req = ApiDownloadDataFileRequest()
                    req.competition_name, req.file_name = competition, file
                    return kaggle.competitions.competition_api_client.download_data_file(req)
                req = ApiDownloadDataFilesRequest()
                req.competition_name = competition
                return kaggle.competitions.competition_api_client.download_data_files(req)

        dest = raw / name
        entry = manifest.get(key)
        have = raw / str(entry.get("file") or name) if entry else dest
        if entry and have.is_file() and have.stat().st_size == entry.get("size") and \
                (result.kind == "dataset" or entry.get("etag")) and sha256_file(have) == entry.get("sha256"):
            if result.kind == "competition":
                # competitions have no versions: ask for the file and compare its ETag, reading no body
                resp = _call(ref, opener, creds)
                etag = resp.headers.get("ETag")
                resp.close()
                if etag != entry.get("etag"):
                    entry = None
            if entry:
                result.files[have.name] = entry["sha256"]
                result.present += 1
                return result
        resp = _call(ref, opener, creds)
        try:
            if not resp.history:
                # no redirect: the API streamed the file itself (only reachable with our credentials)
                got = _save_stream(resp, dest)
            else:
                # redirected to the file: read this response, and resume from its URL if it breaks
                got = _fetch_redirected(resp, dest, name, options)
        finally:
            resp.close()
    if not name.lower().endswith(".zip") and archive_kind(dest) == "zip":
        # Kaggle serves large single files wrapped in a zip under the file's own name
        zipped = dest.with_name(dest.name + ".zip")
        os.replace(dest, zipped)
        name, dest = zipped.name, zipped
        got.path = zipped
    result.transferred += got.transferred
    result.files[name] = got.sha256
    manifest[key] = {"file": name, "sha256": got.sha256, "size": got.size, "etag": got.etag,
                     "version": result.version}
    atomic_write_text(raw / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return result


def fetch(raw: Path, *, dataset: str | None = None, competition: str | None = None, version: int | None = None,
          file: str | None = None, options: HttpOptions | None = None) -> Download[KaggleDownload]:
    """`download`, described for the import: the first archive extracted, else the files together.

    The lineage records the reference, the version (the current one when none is asked for) and
    the sha256 of each file, keyed `kaggle:OWNER/SLUG@VERSION/FILE`.
    """
    raw = Path(raw)
    got = download(raw, dataset=dataset, competition=competition, version=version, file=file, options=options)
    files = [raw / name for name in sorted(got.files)]
    archives = [f for f in files if is_archive_name(f.name)]
    at = f"@{got.version}" if got.version else ""
    return Download(
        source="kaggle", raw=raw, kind="archive" if archives else "files", report=got, files=archives or files,
        params={"source": "kaggle", "kind": got.kind, "ref": got.ref, "version": got.version, "file": file},
        inputs={f"kaggle:{got.ref}{at}/{name}": digest for name, digest in sorted(got.files.items())},
    )


def _fetch_redirected(resp, dest: Path, name: str, options: HttpOptions | None):
    """The API redirected to the file: fetch it resumably (and verified) from there."""
    opts = options or HttpOptions()
    opts.allow_private = True  # the address comes from Kaggle's API, not from the user
    with Fetcher(opts) as fetcher:
        return fetcher.download(resp.url, dest, name=name, response=resp)


def _save_stream(resp, dest: Path):
    """Write a streamed response to `dest` through a temporary file (fsync, rename)."""
    import hashlib

    from pipeline.core.paths import fsync_dir
    from pipeline.sources.http import DownloadResult, check_content

    tmp = dest.with_name(f".{dest.name}.part")
    sha = hashlib.sha256()
    n = 0
    head = b""
    try:
        with open(tmp, "wb") as fh:
            for block in resp.iter_content(1 << 16):
                if len(head) < 512:
                    head = (head + block)[:512]
                sha.update(block)
                n += len(block)
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        why = check_content(dest.name, head, resp.headers.get("Content-Type"), complete=True)
        if why:
            raise NetworkError(f"{resp.url}: {why}")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)
    return DownloadResult(url=resp.url, path=dest, size=n, sha256=sha.hexdigest(), md5="", final_url=resp.url,
                          etag=resp.headers.get("ETag"), transferred=n)
