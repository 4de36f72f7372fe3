"""`fetch hf` through the real huggingface_hub client against a local Hub that speaks enough of its API.

Endpoints served (as huggingface_hub 0.2x-2.x calls them):
  GET  /api/datasets/{repo}/revision/{rev}       -> {"id", "sha", "siblings"}
  GET  /api/datasets/{repo}/tree/{sha}?recursive  -> [{"type": "file", "path", "size", "oid", "lfs"}]
  HEAD/GET /datasets/{repo}/resolve/{sha}/{path}  -> the file, with X-Repo-Commit, ETag, Content-Length
"""

from __future__ import annotations

import hashlib
import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core.dataset import load_dataset
from tests.helpers import digit_png
from tests.helpers import run_cli as run
from tests.sources.servers import LocalServer

REPO = "team/digits"
SHA = "a" * 39 + "1"


def parquet_bytes(rows: list[tuple[bytes, int]], names: list[str] | None) -> bytes:
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array([{"bytes": b, "path": None} for b, _ in rows], type=image),
                      "label": pa.array([lab for _, lab in rows], type=pa.int64())})
    if names:
        features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=4)
    return buf.getvalue()


CARD = """---
dataset_info:
  features:
  - name: image
    dtype: image
  - name: label
    dtype:
      class_label:
        names:
          '0': zero
          '1': one
          '2': two
---
# digits
"""


class Hub:
    """A local Hub serving one dataset repo at one commit."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.server = LocalServer()
        self.server.fallback = self.handle

    def tree(self) -> list[dict]:
        out = []
        for path, data in sorted(self.files.items()):
            entry = {"type": "file", "path": path, "size": len(data),
                     "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
            if path.endswith(".parquet"):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
            out.append(entry)
        return out

    def handle(self, h) -> None:
        path = h.path.split("?", 1)[0]
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/revision/([^/]+)", path)
        if m:
            if m.group(1) != REPO:
                return h.send_simple(404, b'{"error": "Repository not found"}', "application/json",
                                     {"X-Error-Code": "RepoNotFound"})
            if m.group(2) not in ("main", SHA):
                return h.send_simple(404, b'{"error": "Invalid rev id"}', "application/json",
                                     {"X-Error-Code": "RevisionNotFound"})
            body = {"id": REPO, "sha": SHA, "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(self.files)]}
            return h.send_simple(200, json.dumps(body).encode(), "application/json")
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)", path)
        if m:
            return h.send_simple(200, json.dumps(self.tree()).encode(), "application/json")
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and m.group(3) in self.files:
            data = self.files[m.group(3)]
            etag = hashlib.sha256(data).hexdigest() if m.group(3).endswith(".parquet") else \
                hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            headers = {"X-Repo-Commit": SHA, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if h.command == "GET":
                with self.server.lock:
                    self.server.bytes_sent[m.group(3)] += len(data)
            return h.send_simple(200, data, "application/octet-stream", headers)
        return h.send_simple(404, b'{"error": "Entry not found"}', "application/json",
                             {"X-Error-Code": "EntryNotFound"})

    def __enter__(self) -> Hub:
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return monkeypatch


def test_parquet_repo_end_to_end_and_rerun_downloads_nothing(hub_env, tmp_path, capsys):
    train = [(digit_png(i % 3, i), i % 3) for i in range(9)]
    test = [(digit_png(i % 3, 100 + i), i % 3) for i in range(3)]
    files = {"README.md": CARD.encode(), "data/train-00000-of-00001.parquet": parquet_bytes(train, None),
             "data/test-00000-of-00001.parquet": parquet_bytes(test, None)}
    with Hub(files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.server.base)
        out = tmp_path / "ds"
        assert run(["fetch", "hf", REPO, "--out", str(out)]) == 0
        ds = load_dataset(out)
        assert ds.classes == ["zero", "one", "two"]  # the card's class_label order: names by index 0, 1, 2
        assert len(ds.samples) == 12 and ds.splits() == {"train": 9, "test": 3}
        assert {s.label for s in ds.samples if s.source["row"] == 1} == {"one"}
        entry = ds.info.lineage[-1]
        assert entry["params"]["commit"] == SHA and entry["params"]["repo"] == REPO
        key = f"hf://datasets/{REPO}@{SHA}/data/train-00000-of-00001.parquet"
        assert entry["inputs"][key] == hashlib.sha256(files["data/train-00000-of-00001.parquet"]).hexdigest()
        sent = sum(hub.server.bytes_sent.values())
        assert run(["fetch", "hf", REPO, "--out", str(out)]) == 0
        assert sum(hub.server.bytes_sent.values()) == sent  # verified files are not downloaded again


def test_include_glob_and_schema_metadata_names(hub_env, tmp_path):
    rows = [(digit_png(i % 2, i), i % 2) for i in range(4)]
    files = {"data/train-00000-of-00001.parquet": parquet_bytes(rows, ["cat", "dog"]),
             "data/test-00000-of-00001.parquet": parquet_bytes(rows, ["cat", "dog"])}
    with Hub(files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.server.base)
        out = tmp_path / "ds"
        assert run(["fetch", "hf", REPO, "--include", "data/train-*", "--revision", SHA, "--out", str(out)]) == 0
        ds = load_dataset(out)
        assert ds.classes == ["cat", "dog"] and ds.splits() == {"train": 4}
        assert "data/test-00000-of-00001.parquet" not in hub.server.bytes_sent


def test_imagefolder_repo_with_metadata_jsonl(hub_env, tmp_path):
    files = {f"train/img{i}.png": digit_png(i % 2, i) for i in range(4)}
    files["train/metadata.jsonl"] = "\n".join(
        json.dumps({"file_name": f"img{i}.png", "label": ["even", "odd"][i % 2]}) for i in range(4)).encode()
    with Hub(files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.server.base)
        out = tmp_path / "ds"
        assert run(["fetch", "hf", REPO, "--out", str(out)]) == 0
        ds = load_dataset(out)
        assert ds.classes == ["even", "odd"] and len(ds.samples) == 4 and ds.splits() == {"train": 4}


def test_imagefolder_repo_with_class_folders(hub_env, tmp_path):
    files = {f"data/train/{c}/{i}.png": digit_png(k, i) for k, c in enumerate(["a", "b"]) for i in range(3)}
    with Hub(files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.server.base)
        out = tmp_path / "ds"
        assert run(["fetch", "hf", REPO, "--out", str(out)]) == 0
        ds = load_dataset(out)
        assert ds.classes == ["a", "b"] and len(ds.samples) == 6


def test_unknown_repo_and_revision_are_one_line_errors(hub_env, tmp_path, capsys):
    with Hub({"a.txt": b"x"}) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.server.base)
        assert run(["fetch", "hf", "team/nope", "--out", str(tmp_path / "x")]) == 2
        assert "dataset not found" in capsys.readouterr().err
        assert run(["fetch", "hf", REPO, "--revision", "v9", "--out", str(tmp_path / "x")]) == 2
        assert "no revision 'v9'" in capsys.readouterr().err


def test_raw_only(hub_env, tmp_path):
    files = {"train/0.png": digit_png(0, 0)}
    with Hub(files) as hub:
        hub_env.setenv("HF_ENDPOINT", hub.server.base)
        assert run(["fetch", "hf", REPO, "--no-import", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "raw" / "train" / "0.png").read_bytes() == files["train/0.png"]
    assert not (tmp_path / "d").exists()


def test_streams_parquet_in_batches(tmp_path):
    # the importer reads record batches, never the whole table: a file with many row groups imports fully
    from pipeline.core.dataset import DatasetWriter
    from pipeline.sources.tables import ImportOutcome, parquet_columns, read_parquet

    rows = [(digit_png(i % 2, i), i % 2) for i in range(10)]
    path = tmp_path / "train.parquet"
    path.write_bytes(parquet_bytes(rows, ["a", "b"]))
    cols = parquet_columns(path, {})
    outcome = ImportOutcome(kind="parquet")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t") as w:
        assert read_parquet(path, w, outcome, rel="train.parquet", columns=cols, batch_size=3) == 10
    assert Image.open(tmp_path / "ds" / "images" / "train" / "000000.png").size == (28, 28)
