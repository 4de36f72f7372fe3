"""The labeling loop against a real Label Studio server (not a mock): `pipeline prelabel` writes
tasks, the server (started here on 127.0.0.1 with a temporary SQLite data folder) imports them
through label-studio-sdk, the predictions' scores are checked through its API, annotations are
submitted through its API as a reviewer would, the project is exported through its API, and
`pipeline relabel` must give exactly the reviewed labels, in the samples and in the lineage.

The server and the SDK live in their own environment (`make labelstudio-env`: `.venv-labelstudio`
at the project root; their pins clash with ours): the SDK is driven by `ls_client.py` run with that
environment's Python. Without it, the module is skipped. `LS_VENV` (the Makefile's variable)
names another place for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.core.dataset import DatasetWriter, Sample, load_dataset
from pipeline.labeling.prelabel import predict_samples, prelabel
from pipeline.labeling.relabel import relabel
from tests.helpers import ROOT, invoke

LS_VENV = ROOT / os.environ.get("LS_VENV", ".venv-labelstudio")  # as the Makefile's LS_VENV (absolute or relative)
LS_BIN = LS_VENV / "bin" / "label-studio"
LS_PYTHON = LS_VENV / "bin" / "python"
CLIENT = Path(__file__).with_name("ls_client.py")
TOKEN = "pipeline-test-token-0123456789"  # the reviewer's API token, set through LABEL_STUDIO_USER_TOKEN
STARTUP_LIMIT = 600.0  # seconds the server may take to migrate its new database and answer /health

pytestmark = pytest.mark.skipif(not LS_BIN.is_file(), reason=f"needs the Label Studio server in {LS_VENV} "
                                                                "(make labelstudio-env)")


@dataclass
class Server:
    url: str
    docroot: Path  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: prelabel writes its folder here

    def call(self, action: str, **args: object) -> object:
        """One label-studio-sdk action of ls_client.py, run with the Label Studio environment's Python."""
        proc = subprocess.run([str(LS_PYTHON), str(CLIENT), self.url, TOKEN, action], input=json.dumps(args),
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("labelstudio")
    docroot = root / "review"
    docroot.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update({
        "LABEL_STUDIO_USERNAME": "reviewer@example.org", "LABEL_STUDIO_PASSWORD": "reviewer-password",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(docroot),
        "LATEST_VERSION_CHECK": "false",  # no request to pypi.org
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    started = time.perf_counter()
    log = open(root / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(LS_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(root / "data"), "--enable-legacy-api-token"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Label Studio did not start:\n" + (root / "server.log").read_text()[-4000:])
            time.sleep(1)
        print(f"Label Studio answered after {time.perf_counter() - started:.1f} s")
        yield Server(url=url, docroot=docroot)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _review(server: Server, run: Path, data: Path, out: Path, decide) -> dict:
    """prelabel → Label Studio → annotations → export → relabel; returns what each step saw (and
    prints how long each took, for the record: nothing asserts on it)."""
    steps = Steps()
    with steps("prelabel"):
        report = prelabel(run, data, "labelstudio", server.docroot, overwrite=True)
    with steps("create project, import tasks"):
        setup = server.call("setup", config=(server.docroot / "label_config.xml").read_text(encoding="utf-8"),
                            tasks=str(server.docroot / "tasks.json"), images=str(server.docroot / "images"))
    with steps("list tasks"):
        shown = server.call("tasks", project=setup["project"])
    choices = {}
    for task in shown:
        choice = decide(task["data"]["sample_id"], task)
        if choice is not None:
            choices[str(task["id"])] = choice
    with steps(f"submit {len(choices)} annotations"):
        server.call("annotate", project=setup["project"], choices=choices, from_name="choice")
    export = server.docroot.parent / f"export-{setup['project']}.json"
    with steps("export"):
        server.call("export", project=setup["project"], out=str(export))
    with steps("relabel"):
        result, review = relabel(data, export, out, images=server.docroot)
    print(f"{len(shown)} tasks: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.seconds.items()))
    return {"prelabel": report, "setup": setup, "shown": shown, "choices": choices, "export": export,
            "relabel": result, "review": review}


class Steps:
    """Wall time of each step, printed with the test's output."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start


def _check_exact(data: Path, out: Path, seen: dict) -> None:
    """Every reviewed label arrived, nothing else changed, and the lineage and each sample's
    history list exactly the changes, with the annotation's time and annotator."""
    old = {s.id: s for s in load_dataset(data).samples}
    new = {s.id: s for s in load_dataset(out).samples}
    by_task = {str(t): sid for sid, t in seen["setup"]["tasks"].items()}
    reviewed = {by_task[t]: c for t, c in seen["choices"].items()}
    exported = {t["data"]["sample_id"]: t["annotations"][-1] for t in json.loads(seen["export"].read_text())
                if t["annotations"]}
    assert set(exported) == set(reviewed) and set(new) == set(old)
    for sid, sample in new.items():
        assert sample.label == reviewed.get(sid, old[sid].label)
    expected = [{"id": sid, "field": "label", "old": old[sid].label, "new": reviewed[sid]}
                for sid in sorted(reviewed) if reviewed[sid] != old[sid].label]
    entry = load_dataset(out).info.lineage[-1]
    assert entry["stage"] == "relabel" and entry["changes"] == expected
    assert entry["params"]["changed"] == len(expected) and entry["params"]["source"] == f"labelstudio:{seen['export'].name}"
    assert seen["relabel"].unchanged == len(reviewed) - len(expected)
    for change in expected:
        (history,) = new[change["id"]].meta["relabel"]
        annotation = exported[change["id"]]
        assert history == {"field": "label", "old": change["old"], "new": change["new"],
                           "source": f"labelstudio:{seen['export'].name} (annotator {annotation['completed_by']})",
                           "time": annotation["updated_at"]}
    for sid in set(new) - {c["id"] for c in expected}:
        assert "relabel" not in new[sid].meta


def _check_predictions_shown(server: Server, seen: dict, predicted: dict[str, tuple[str, float]]) -> None:
    """The server holds every prediction with its score and model version, as the data manager shows them."""
    assert len(seen["shown"]) == len(predicted)
    for task in seen["shown"]:
        label, score = predicted[task["data"]["sample_id"]]
        assert task["predictions_score"] == pytest.approx(score, abs=1e-6)
        assert task["predictions_model_versions"] == seen["prelabel"].model_version
        (pred,) = task["predictions"]
        assert pred["result"][0]["value"] == {"choices": [label]} and pred["score"] == pytest.approx(score, abs=1e-6)
    one = seen["shown"][0]["data"]["image"]
    served = server.call("image", url=one)
    assert served["bytes"] == (server.docroot / one.split("?d=")[1]).stat().st_size


def test_review_in_label_studio_comes_back_exactly(server: Server, trained, tmp_path: Path) -> None:
    predicted = predict_samples(load_dataset(trained.data), trained.run)

    def decide(sid: str, task: dict) -> str | None:
        i = sum(map(ord, sid)) % 3
        label = predicted[sid][0]
        if i == 0:
            return label  # the reviewer agrees with the model
        if i == 1:
            return str((int(label) + 1) % 3)  # the reviewer changes the class
        return None  # not reviewed

    seen = _review(server, trained.run, trained.data, tmp_path / "v2", decide)
    _check_predictions_shown(server, seen, predicted)
    assert 0 < len(seen["choices"]) < len(predicted)
    _check_exact(trained.data, tmp_path / "v2", seen)
    # the same review exported as JSON-MIN (one flat row per task) gives the same version
    project = seen["setup"]["project"]
    server.call("export", project=project, out=str(tmp_path / "min.json"), type="JSON_MIN")
    relabel(trained.data, tmp_path / "min.json", tmp_path / "v2-min", images=server.docroot)
    full, flat = load_dataset(tmp_path / "v2"), load_dataset(tmp_path / "v2-min")
    assert [s.label for s in flat.samples] == [s.label for s in full.samples]
    assert flat.info.lineage[-1]["changes"] == full.info.lineage[-1]["changes"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 1,000 annotations submitted one by one; minutes on a busy machine
def test_thousand_unlabelled_mnist_images(server: Server, tmp_path: Path) -> None:
    """The acceptance check: 1,000 unlabelled MNIST images pre-labelled by a run trained on the
    embedded subset's train split; the reviewer keeps right predictions and corrects wrong ones to
    MNIST's own label; the new version holds exactly MNIST's labels, every change in the lineage."""
    from pipeline.sources.mnist import fetch_embedded

    mnist, _ = fetch_embedded(tmp_path / "mnist")
    result = invoke("train", mnist.root, "--out", tmp_path / "run", "--epochs", "1", "--set", "threads=2",
                    "--set", "log_images=0", "--device", "cpu")
    assert result.exit_code == 0, result.output
    test = mnist.split("test")
    assert len(test) == 1000
    truth = {s.id: s.label for s in test}
    with DatasetWriter(tmp_path / "unlabelled", task="classification", stage="test-fixture",
                       classes=mnist.classes) as writer:
        for s in test:
            writer.add_from(mnist, s, Sample(id=s.id, width=s.width, height=s.height, sha256=s.sha256))
    data = tmp_path / "unlabelled"
    predicted = predict_samples(load_dataset(data), tmp_path / "run")
    seen = _review(server, tmp_path / "run", data, tmp_path / "labelled", lambda sid, task: truth[sid])
    _check_predictions_shown(server, seen, predicted)
    _check_exact(data, tmp_path / "labelled", seen)
    assert {s.id: s.label for s in load_dataset(tmp_path / "labelled").samples} == truth
    wrong = sum(predicted[sid][0] != truth[sid] for sid in truth)
    print(f"1,000 MNIST pre-labels: {1000 - wrong} accepted, {wrong} corrected")

