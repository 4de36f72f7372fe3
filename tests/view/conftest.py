"""Fixtures of the browser tests: small datasets, a session on each, and a real uvicorn server on a
free 127.0.0.1 port running the app in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.view.session import Options, Session


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


def session_for(root: Path, tmp: Path, **options) -> Session:
    return Session(root, Options(edits=tmp / f"{root.name}.edits.jsonl", cache=tmp / "cache", **options))


@dataclass
class Served:
    url: str
    port: int
    session: Session


@contextmanager
def serving(session: Session, *, token: str | None = None) -> Iterator[Served]:
    """The app on a real uvicorn server, bound to a free 127.0.0.1 port, in a thread of this process."""
    import uvicorn

    from pipeline.view.app import create_app
    from pipeline.view.server import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}"]
    config = uvicorn.Config(create_app(session, token=token, allowed_hosts=hosts), log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    ready = threading.Event()

    original = server.startup

    async def startup(sockets=None):
        await original(sockets=sockets)
        ready.set()

    server.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert ready.wait(30), "the server did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}/", port, session)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def write_issues(folder: Path, rows: list[dict], dataset_sha256: str = "0" * 64) -> Path:
    """An issues.json in the shape `pipeline label-issues` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"dataset": "fixture", "dataset_sha256": dataset_sha256, "params": {"method": "fixture"}, "issues": rows}
    (folder / "issues.json").write_text(json.dumps(doc), encoding="utf-8")
    return folder


def write_dataset(root: Path, task: str, classes: list[str], lines: list[dict], images: dict[str, bytes]) -> Path:
    """A dataset folder written by hand (samples.jsonl lines as given, sorted by id), for cases the
    writer would refuse or that need packs: `images` maps relative paths to bytes."""
    import hashlib

    root.mkdir(parents=True)
    for rel, data in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in sorted(lines, key=lambda d: d["id"]))
    (root / "samples.jsonl").write_text(body, encoding="utf-8")
    info = {"format": "pipeline-dataset", "version": 1, "task": task, "classes": classes,
            "samples_sha256": hashlib.sha256(body.encode()).hexdigest(), "lineage": []}
    (root / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    return root


def packed_dataset(root: Path) -> Path:
    """Three classification samples whose images are members of one image pack, one of them an
    augmented copy of another."""
    import hashlib

    from pipeline.core.packs import PackWriter, pack_name
    from tests.helpers import digit_png

    root.mkdir(parents=True)
    lines = []
    with PackWriter(root / pack_name("augment", 0)) as pack:
        for i in range(3):
            data = digit_png(i, i)
            image = f"images/augmented/p-{i}.png"
            offset = pack.add(image, data)
            source = {"stage": "augment", "parents": ["p-0"]} if i == 2 else {"file": "digits"}
            lines.append({"id": f"p-{i}", "image": image,
                          "pack": {"file": pack_name("augment", 0), "offset": offset, "length": len(data)},
                          "width": 28, "height": 28, "sha256": hashlib.sha256(data).hexdigest(), "split": "train",
                          "label": str(i), "source": source})
    body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    (root / "samples.jsonl").write_text(body, encoding="utf-8")
    info = {"format": "pipeline-dataset", "version": 1, "task": "classification", "classes": ["0", "1", "2"],
            "samples_sha256": hashlib.sha256(body.encode()).hexdigest(), "lineage": []}
    (root / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    return root
