"""label-issues: planted flips found through K-fold out-of-sample probabilities, the report's files and
contract, the rerun that trains nothing, detection through crops, bad options and bad reports."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.core.dataset import DatasetWriter, Obj, Sample, derive, load_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import encode_png
from pipeline.labeling import issues as li
from pipeline.sources.mnist import fetch_embedded
from tests.helpers import digit_like

N, FLIPS = 600, 12


def fast_config():
    return load_config(options={"threads": 1, "batch_size": 32})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("issues")
    os.environ["PIPELINE_CACHE_DIR"] = str(root / "cache")
    yield root
    os.environ.pop("PIPELINE_CACHE_DIR", None)


@pytest.fixture(scope="module")
def noisy(workspace):
    """600 embedded MNIST digits of all ten classes, 12 of them (seeded) given another class."""
    embedded = load_dataset(fetch_embedded(workspace / "embedded")[0].root)
    picked = [Sample.from_json(s.to_json()) for s in embedded.samples[::8][:N]]  # every class
    rng = np.random.default_rng(0)
    flipped = set()
    for i in rng.choice(N, size=FLIPS, replace=False):
        s = picked[int(i)]
        s.label = str((int(s.label) + 1 + int(rng.integers(9))) % 10)
        flipped.add(s.id)
    derive(embedded, workspace / "noisy", picked, stage="test-flips", params={"flips": FLIPS})
    return workspace / "noisy", flipped


@pytest.fixture(scope="module")
def report(noisy, workspace):
    path, flipped = noisy
    result = li.find_issues(path, workspace / "report", folds=3, config=fast_config(), epochs=6)
    return result, flipped


def test_planted_flips_rank_first(report):
    result, flipped = report
    labels = [e for e in result.issues if e["kind"] == "label"]
    assert result.reused is False and result.samples == N
    assert all(e["id"] in flipped for e in labels[:5]), labels[:5]
    assert sum(e["id"] in flipped for e in labels) >= 5
    scores = [e["score"] for e in labels]
    assert scores == sorted(scores) and all(0.0 <= s <= 1.0 for s in scores)
    assert [e["rank"] for e in result.issues] == list(range(1, len(result.issues) + 1))


def test_report_files_keep_the_contract(report):
    result, _ = report
    out = result.out
    assert sorted(os.listdir(out)) == ["features.npy", "folds.json", "issues.csv", "issues.json", "issues.png",
                                       "probs.npy"]
    data = li.load_issues(out)
    assert set(data) == {"dataset", "dataset_sha256", "params", "issues"}
    assert data["dataset_sha256"] == load_dataset(result.dataset).info.samples_sha256
    assert data["params"]["folds"] == 3 and data["params"]["rank_by"] == "self_confidence"
    for e in data["issues"]:
        assert set(e) == {"id", "given", "suggested", "score", "rank", "kind"}
    probs, feats = np.load(out / "probs.npy"), np.load(out / "features.npy")
    assert probs.shape == (N, 10) and feats.shape == (N, 84)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    folds = json.loads((out / "folds.json").read_text())
    assert sorted(set(folds["folds"])) == [0, 1, 2] and len(folds["ids"]) == N
    with open(out / "issues.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [e["id"] for e in data["issues"]]
    sheet = Image.open(out / "issues.png")
    assert sheet.size[0] > 8 * 112 and sheet.size[1] > 112


def test_the_flagged_labels_are_the_lowest_scores_of_all(report):
    """cleanlab's low_self_confidence filter: confident learning's estimate of how many labels are
    wrong, taken from the bottom of the same score the report ranks by."""
    result, _ = report
    data = li.load_issues(result.out)
    assert data["params"]["filter_by"] == "low_self_confidence"
    probs = np.load(result.out / "probs.npy")
    ids = json.loads((result.out / "folds.json").read_text())["ids"]
    dataset = load_dataset(result.dataset)
    label_of = {s.id: dataset.classes.index(s.label) for s in dataset.samples}
    given = np.array([probs[row, label_of[i]] for row, i in enumerate(ids)])
    flagged = [e["id"] for e in data["issues"] if e["kind"] == "label"]
    assert flagged
    lowest = [ids[row] for row in np.argsort(given, kind="stable")[:len(flagged)]]
    assert set(flagged) == set(lowest)


def test_the_score_is_the_given_labels_out_of_sample_probability(report):
    result, _ = report
    probs = np.load(result.out / "probs.npy")
    ids = json.loads((result.out / "folds.json").read_text())["ids"]
    classes = load_dataset(result.dataset).classes
    for e in result.issues[:10]:
        row = ids.index(e["id"])
        assert e["score"] == pytest.approx(probs[row, classes.index(e["given"])], abs=1e-5)
        assert e["suggested"] == classes[int(probs[row].argmax())]


def test_a_rerun_with_other_thresholds_trains_nothing(report, monkeypatch):
    result, flipped = report
    import pipeline.train as train_mod

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(train_mod, "fit_and_predict", no_training)
    before = np.load(result.out / "probs.npy")
    again = li.find_issues(result.dataset, result.out, folds=3, config=fast_config(), epochs=6, threshold=0.05,
                           top=4)
    assert again.reused is True and len(again.issues) == 4
    assert all(e["score"] < 0.05 for e in again.issues)
    np.testing.assert_array_equal(np.load(result.out / "probs.npy"), before)
    assert li.load_issues(result.out)["params"]["threshold"] == 0.05


def test_other_training_options_need_overwrite(report):
    result, _ = report
    with pytest.raises(UsageError, match="--overwrite"):
        li.find_issues(result.dataset, result.out, folds=2, config=fast_config(), epochs=1)


def test_refuses_a_folder_of_other_files(noisy, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="refusing"):
        li.find_issues(noisy[0], tmp_path / "mine", folds=2, config=fast_config(), epochs=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(UsageError, match="input"):
        li.find_issues(noisy[0], noisy[0], folds=2, config=fast_config(), epochs=1)


@pytest.mark.parametrize("options, message", [
    ({"folds": 1}, "--folds 1"),  # one fold leaves nothing to train on
    ({"threshold": 1.5}, "--threshold"),  # scores are probabilities
    ({"threshold": float("nan")}, "--threshold"),
    ({"top": 0}, "--top 0"),
    ({"epochs": 0}, "--epochs 0"),
])
def test_bad_options(noisy, tmp_path, options, message):
    with pytest.raises(UsageError, match=message):
        li.find_issues(noisy[0], tmp_path / "out", config=fast_config(), **options)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [["--folds", "1"], ["--threshold", "2"], ["--top", "0"], ["--epochs", "x"]])
def test_bad_options_on_the_command_line(noisy, tmp_path, args):
    result = CliRunner().invoke(cli, ["label-issues", str(noisy[0]), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and not (tmp_path / "o").exists()


def test_more_folds_than_samples(tmp_path):
    with DatasetWriter(tmp_path / "tiny", task="classification", stage="test", classes=["0", "1"]) as w:
        for i in range(3):
            w.add(Sample(id=f"s{i}", label=str(i % 2), width=28, height=28), data=encode_png(digit_like(i % 2, i)),
                  ext="png")
    with pytest.raises(UsageError, match=f"cannot be split into {li.DEFAULT_FOLDS} folds"):
        li.find_issues(tmp_path / "tiny", tmp_path / "out", config=fast_config(), epochs=1)


def test_detection_boxes_through_their_crops(workspace):
    """Two digit-like objects per image; two boxes carry the wrong class and come first, named by
    their image and object index."""
    classes = ["0", "1", "2"]
    rng = np.random.default_rng(1)
    wrong = {("img-005", 1), ("img-023", 0)}
    with DatasetWriter(workspace / "boxes", task="detection", stage="test", classes=classes) as w:
        for i in range(60):
            canvas = Image.new("L", (64, 32))
            objs = []
            for k in range(2):
                c = int(rng.integers(3))
                canvas.paste(digit_like(c, i * 10 + k), (k * 32 + 2, 2))
                label = classes[(c + 1) % 3] if (f"img-{i:03d}", k) in wrong else classes[c]
                objs.append(Obj(label=label, bbox=[k * 32 + 2.0, 2.0, k * 32 + 30.0, 30.0]))
            w.add(Sample(id=f"img-{i:03d}", width=64, height=32, objects=objs), data=encode_png(canvas), ext="png")
    result = li.find_issues(workspace / "boxes", workspace / "boxes-report", folds=2, config=fast_config(),
                            epochs=12)
    assert result.samples == 120 and result.task == "detection"
    boxes = [e for e in result.issues if e["kind"] == "box-label"]
    assert {(e["id"], e["object"]) for e in boxes[:2]} == wrong
    data = li.load_issues(result.out)
    assert all("object" in e for e in data["issues"])  # every entry of a detection report names its box
    assert (result.out / "crops" / "dataset.json").is_file()
    again = li.find_issues(workspace / "boxes", workspace / "boxes-report", folds=2, config=fast_config(),
                           epochs=12, top=2)
    assert again.reused and [(e["id"], e["object"]) for e in again.issues] == [(e["id"], e["object"])
                                                                              for e in boxes[:2]]


def test_the_command_prints_a_summary(report, tmp_path):
    result, _ = report
    (tmp_path / "fast.yaml").write_text("batch_size: 32\nthreads: 1\n")
    run = CliRunner().invoke(cli, ["label-issues", str(result.dataset), "--out", str(result.out), "--folds", "3",
                                   "--epochs", "6", "--top", "3", "--config", str(tmp_path / "fast.yaml")])
    assert run.exit_code == 0, run.output
    assert "reused" in run.output and "no training" in run.output and str(result.out) in run.output


# --------------------------------------------------------------------------------------------
# A malformed issues.json read back
# --------------------------------------------------------------------------------------------

GOOD = {"dataset": "d", "dataset_sha256": "0" * 64, "params": {},
        "issues": [{"id": "a", "given": "1", "suggested": "7", "score": 0.01, "rank": 1, "kind": "label"},
                   {"id": "b", "given": "x", "suggested": "y", "score": 0.2, "rank": 2, "kind": "box-label",
                    "object": 3}]}


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "issues.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _with(change):
    data = json.loads(json.dumps(GOOD))
    change(data)
    return data


@pytest.mark.parametrize("data, field", [
    ("{not json", None),  # not JSON at all
    ([], None),  # not an object
    (_with(lambda d: d.pop("issues")), "issues"),
    (_with(lambda d: d.update(dataset_sha256=5)), "dataset_sha256"),
    (_with(lambda d: d["issues"][0].update(score=1.5)), "issues[0].score"),  # outside [0, 1]
    (_with(lambda d: d["issues"][0].update(score=True)), "issues[0].score"),
    (_with(lambda d: d["issues"][1].update(rank=5)), "issues[1].rank"),  # not sorted by rank
    (_with(lambda d: d["issues"][0].update(kind="typo")), "issues[0].kind"),
    (_with(lambda d: d["issues"][1].pop("object")), "issues[1].object"),  # box-label without its object
    (_with(lambda d: d["issues"][1].update(object=-1)), "issues[1].object"),  # not an index
    (_with(lambda d: d["issues"][0].pop("suggested")), "issues[0].suggested"),
])
def test_malformed_reports_are_data_errors(tmp_path, data, field):
    path = _write(tmp_path, data)
    with pytest.raises(DataError) as err:
        li.load_issues(path)
    if field:
        assert field in str(err.value)


def test_a_good_report_reads_back(tmp_path):
    assert li.load_issues(_write(tmp_path, GOOD).parent) == GOOD
    with pytest.raises(UsageError, match="no such file"):
        li.load_issues(tmp_path / "absent")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entry=st.dictionaries(st.sampled_from(["id", "given", "suggested", "score", "rank", "kind", "object"]),
                             json_values, max_size=7), top=json_values)
def test_fuzzed_reports_are_read_or_refused_with_a_data_error(tmp_path, entry, top):
    for doc in ({**GOOD, "issues": [entry]}, top):
        path = _write(tmp_path, doc)
        try:
            data = li.load_issues(path)
        except DataError:
            continue
        assert data["issues"][0]["rank"] == 1 if data["issues"] else True


# --------------------------------------------------------------------------------------------
# The pieces
# --------------------------------------------------------------------------------------------


def test_folds_are_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [10, 7, 4])
    folds = li.assign_folds(labels, 3, seed=0)
    for c in range(3):
        counts = np.bincount(folds[labels == c], minlength=3)
        assert counts.max() - counts.min() <= 1  # every class spread over every fold
    assert np.bincount(folds).max() - np.bincount(folds).min() <= 1
    np.testing.assert_array_equal(folds, li.assign_folds(labels, 3, seed=0))
    assert not np.array_equal(folds, li.assign_folds(labels, 3, seed=1))


def test_near_duplicates_and_outliers_follow_datalabs_rules():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 8)) + 5.0  # one cloud away from the origin (cosine distance)
    feats[1] = feats[0] * 1.0000001  # a near-duplicate pair
    feats[2:4] *= -1  # two pointing the other way: far from everything
    near = li.neighbours(feats.astype(np.float32))
    assert near.near_duplicate[0] and near.near_duplicate[1] and near.nearest[0] == 1
    assert near.near_duplicate.sum() == 2
    assert near.outlier[2] and near.outlier[3]
    assert near.outlier_score[2] < np.median(near.outlier_score)
    assert ((0 <= near.duplicate_score) & (near.duplicate_score <= 1)).all()


def test_folds_train_the_given_recipe_without_label_smoothing():
    """Smoothing would flatten the probabilities confident learning reads; everything else is the recipe's."""
    config = load_config()
    assert config.label_smoothing > 0  # the default recipe smooths
    fold = li.fold_config(config, 60_000, 4, None, 3)
    assert fold.label_smoothing == 0.0 and fold.seed == 3 and fold.epochs == li.fold_epochs(config, 60_000, 4)
    assert (fold.lr, fold.batch_size, fold.variant) == (config.lr, config.batch_size, config.variant)
    assert li.training_params(fold, 4)["label_smoothing"] == 0.0  # recorded as trained


def test_fold_epochs_keep_the_whole_run_within_budget():
    config = load_config()  # the default recipe: 3 epochs of 60,000 MNIST images
    assert config.resolved_epochs(60_000) == 3
    assert li.DEFAULT_FOLDS == 4
    assert li.fold_epochs(config, 60_000, 4) == 5  # 4 folds x 45,000 x 5 = 5x one training's 180,000
    assert li.fold_epochs(config, 60_000, 5) == 4  # 5 x 48,000 x 4: 5.3x
    assert li.fold_epochs(config, 60_000, 2) == 15
    # the command's default is the library's
    from pipeline.commands.label_issues import label_issues as command

    assert next(p for p in command.params if p.name == "folds").default == li.DEFAULT_FOLDS
