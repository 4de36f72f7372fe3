"""consensus: a Label Studio export with two annotators per task gives exactly cleanlab's own CROWDLAB
consensus and quality numbers; the new dataset version, its lineage, the annotator table, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.dataset import load_dataset
from pipeline.core.errors import UsageError
from pipeline.formats.ingest import import_dataset
from pipeline.labeling import consensus as cs
from tests.helpers import digit_png

CLASSES = ["cat", "dog", "fox"]
ANNOTATORS = [7, 8, 9]  # Label Studio user ids (`completed_by`)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


def choice(label: str) -> dict:
    return {"id": "c", "type": "choices", "from_name": "choice", "to_name": "image", "value": {"choices": [label]}}


def export(root: Path, n: int = 30, seed: int = 0) -> dict[int, dict[int, str]]:
    """A Label Studio JSON export of `n` image tasks, each labelled by two of three annotators (user 9
    often wrong); returns task -> {annotator: label} as written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    tasks, truth = [], {}
    for t in range(1, n + 1):
        (root / f"img{t:02d}.png").write_bytes(digit_png(t % 3, t))
        true = CLASSES[t % 3]
        pair = [ANNOTATORS[j] for j in sorted(rng.choice(3, size=2, replace=False))]
        labels = {}
        for who in pair:
            wrong = rng.random() < (0.5 if who == 9 else 0.1)
            labels[who] = CLASSES[(t + 1 + int(rng.integers(2))) % 3] if wrong else true
        truth[t] = labels
        tasks.append({"id": t, "data": {"image": f"/data/upload/1/img{t:02d}.png"},
                      "annotations": [{"id": t * 10 + k, "completed_by": who, "result": [choice(label)],
                                       "updated_at": f"2026-01-0{k + 1}T10:00:00Z"}
                                      for k, (who, label) in enumerate(labels.items())]})
    (root / "export.json").write_text(json.dumps(tasks))
    return truth


@pytest.fixture
def votes(tmp_path):
    truth = export(tmp_path / "ls")
    dataset, _ = import_dataset("labelstudio", tmp_path / "ls", tmp_path / "votes", extra={"annotations": "all"})
    return dataset, truth


def direct_matrix(dataset, truth) -> tuple[list[str], pd.DataFrame]:
    """The (N, M) matrix built here from the export itself, as cleanlab's docs describe it."""
    ids = [s.id for s in dataset.samples]
    columns = [str(a) for a in ANNOTATORS]
    matrix = np.full((len(ids), len(columns)), np.nan)
    for i, sid in enumerate(ids):
        for who, label in truth[int(sid.removeprefix("img"))].items():
            matrix[i, columns.index(str(who))] = dataset.classes.index(label)
    return ids, pd.DataFrame(matrix, columns=columns)


def test_reproduces_cleanlabs_own_consensus_and_quality(votes, tmp_path):
    from cleanlab.multiannotator import get_label_quality_multiannotator

    dataset, truth = votes
    assert sorted(dataset.classes) == CLASSES
    ids, frame = direct_matrix(dataset, truth)
    probs = cs.vote_probabilities(frame.to_numpy(), len(CLASSES))
    expected = get_label_quality_multiannotator(frame, probs, verbose=False)

    result = cs.consensus(tmp_path / "votes", tmp_path / "agreed", annotators_file=tmp_path / "annotators.csv")
    agreed = load_dataset(tmp_path / "agreed")
    quality = expected["label_quality"]
    for i, sid in enumerate(ids):
        s = next(x for x in agreed.samples if x.id == sid)
        record = s.meta["consensus"]
        assert s.label == record["label"] == dataset.classes[int(quality["consensus_label"].iloc[i])]
        assert record["agreement"] == round(float(quality["annotator_agreement"].iloc[i]), 6)
        assert record["quality"] == round(float(quality["consensus_quality_score"].iloc[i]), 6)
        assert record["annotators"] == {str(k): v for k, v in truth[int(sid.removeprefix("img"))].items()}
    stats = expected["annotator_stats"]
    got = {a["annotator"]: a for a in result.annotators}
    for name, row in stats.iterrows():
        assert got[str(name)]["quality"] == float(row["annotator_quality"])
        assert got[str(name)]["agreement_with_consensus"] == float(row["agreement_with_consensus"])
        assert got[str(name)]["labels"] == int(row["num_examples_labeled"])
    assert min(result.annotators, key=lambda a: a["quality"])["annotator"] == "9"  # the careless one

    lineage = agreed.info.lineage[-1]
    assert lineage["stage"] == "consensus" and lineage["params"]["method"] == "crowdlab"
    assert [a["annotator"] for a in lineage["params"]["annotators"]] == [a["annotator"] for a in result.annotators]
    table = (tmp_path / "annotators.csv").read_text().splitlines()
    assert table[0] == ",".join(cs.CSV_HEADER) and len(table) == 1 + len(ANNOTATORS)
    assert {s.sha256 for s in agreed.samples} == {s.sha256 for s in dataset.samples}  # the images, kept


def test_with_a_run_the_model_probabilities_are_weighed_in(votes, tmp_path):
    from cleanlab.multiannotator import get_label_quality_multiannotator

    from pipeline.config import load_config
    from pipeline.train import train

    dataset, truth = votes
    train(tmp_path / "votes", tmp_path / "run", load_config(options={"epochs": 2, "threads": 1, "batch_size": 8,
                                                                     "log_images": 0, "log_graph": False}))
    result = cs.consensus(tmp_path / "votes", tmp_path / "agreed", run=tmp_path / "run")
    ids, frame = direct_matrix(dataset, truth)
    probs = cs.run_probabilities(tmp_path / "run", dataset, dataset.samples)[0]
    assert probs.shape == (len(ids), 3) and np.allclose(probs.sum(axis=1), 1.0)
    expected = get_label_quality_multiannotator(frame, probs, verbose=False)["label_quality"]
    assert [r["quality"] for r in result.rows] == [round(float(q), 6) for q in expected["consensus_quality_score"]]
    assert "best.pt" in result.probabilities


def test_the_command(votes, tmp_path):
    run = CliRunner().invoke(cli, ["consensus", str(tmp_path / "votes"), "--out", str(tmp_path / "agreed")])
    assert run.exit_code == 0, run.output
    assert "annotator 9" in run.output and str(tmp_path / "agreed") in run.output
    again = CliRunner().invoke(cli, ["consensus", str(tmp_path / "votes"), "--out", str(tmp_path / "agreed")])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert CliRunner().invoke(cli, ["consensus", str(tmp_path / "votes"), "--out", str(tmp_path / "agreed"),
                                    "--overwrite"]).exit_code == 0


def test_refusals(votes, tmp_path):
    (tmp_path / "mine.csv").write_text("name,notes\n")
    with pytest.raises(UsageError, match="not an annotator table"):
        cs.consensus(tmp_path / "votes", tmp_path / "agreed", annotators_file=tmp_path / "mine.csv")
    assert (tmp_path / "mine.csv").read_text() == "name,notes\n" and not (tmp_path / "agreed").exists()
    single, _ = import_dataset("labelstudio", tmp_path / "ls", tmp_path / "newest")  # the newest annotation only
    with pytest.raises(UsageError, match="--annotations all"):
        cs.consensus(single.root, tmp_path / "x")
    with pytest.raises(UsageError, match="input"):
        cs.consensus(tmp_path / "votes", tmp_path / "votes", overwrite=True)
