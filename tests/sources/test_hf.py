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

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core.dataset import load_dataset
from tests.helpers import digit_png
from tests.helpers import run_cli as run
from tests.sources.servers import REPO, SHA, Hub


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
        assert run(["fetch", "hf", REPO, "--out", str(out), "--overwrite"]) == 0
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
    from pipeline.formats.tables import ImportOutcome, parquet_columns, read_parquet

    rows = [(digit_png(i % 2, i), i % 2) for i in range(10)]
    path = tmp_path / "train.parquet"
    path.write_bytes(parquet_bytes(rows, ["a", "b"]))
    cols = parquet_columns(path, {})
    outcome = ImportOutcome(kind="parquet")
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t") as w:
        assert read_parquet(path, w, outcome, rel="train.parquet", columns=cols, batch_size=3) == 10
    assert Image.open(tmp_path / "ds" / "images" / "train" / "000000.png").size == (28, 28)
