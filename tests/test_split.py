"""`pipeline.split`: stratified, leak-free (identical images share a split), stable, keeps what exists."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import Dataset, DatasetInfo, Obj, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.split import quotas, split_dataset, stratum


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _memory(samples: list[Sample], classes: list[str], task: str = "classification") -> Dataset:
    """An in-memory dataset (split_dataset never reads images)."""
    return Dataset(root=Path("mem"), info=DatasetInfo(task=task, classes=classes), samples=samples)


def _cls(sizes: dict[str, int], *, dup_every: int = 0) -> Dataset:
    samples = []
    for c, n in sizes.items():
        for i in range(n):
            content = f"{c}-{i // dup_every}" if dup_every else f"{c}-{i}"
            samples.append(Sample(id=f"{c}/{i:04d}", image=f"images/{c}-{i}.png", width=8, height=8,
                                  sha256=_digest(content), label=c))
    return _memory(samples, list(sizes))


def _counts(samples: list[Sample]) -> Counter:
    return Counter((s.split, s.label) for s in samples)


def test_fresh_split_is_stratified_with_exact_totals() -> None:
    ds = _cls({"a": 50, "b": 30, "c": 7})
    samples, report = split_dataset(ds, val=0.2, test=0.1, seed=0)
    counts = _counts(samples)
    assert report.mode == "assigned" and report.changed == 87
    assert sum(n for (sp, _), n in counts.items() if sp == "test") == round(87 * 0.1)
    assert sum(n for (sp, _), n in counts.items() if sp == "val") == round(87 * 0.2)
    # each class within one image of its exact share
    for c, n in {"a": 50, "b": 30, "c": 7}.items():
        assert abs(counts[("test", c)] - n * 0.1) < 1 and abs(counts[("val", c)] - n * 0.2) < 1


@pytest.mark.parametrize("seed", range(5))
def test_identical_images_never_straddle_splits(seed: int) -> None:
    ds = _cls({"a": 60, "b": 40}, dup_every=3)  # every image has two twins (different ids, same bytes)
    samples, report = split_dataset(ds, val=0.2, test=0.2, seed=seed)
    by_hash: dict[str, set] = {}
    for s in samples:
        by_hash.setdefault(s.sha256, set()).add(s.split)
    assert all(len(v) == 1 for v in by_hash.values())
    assert report.groups_with_duplicates == 33 and report.leaks == 0


def test_duplicates_across_classes_still_share_a_split() -> None:
    ds = _cls({"a": 20, "b": 20})
    ds.samples[25].sha256 = ds.samples[3].sha256  # the same picture labelled a and b
    samples, _ = split_dataset(ds, val=0.3, test=0.3, seed=1)
    assert samples[25].split == samples[3].split


def test_assignment_depends_on_content_and_seed_not_order() -> None:
    ds = _cls({"a": 40, "b": 40})
    first, _ = split_dataset(ds, val=0.25, test=0.25, seed=7)
    shuffled = _memory(list(reversed(ds.samples)), ds.classes)
    renamed = _memory([Sample.from_json({**s.to_json(), "id": f"x{i}"}) for i, s in enumerate(ds.samples)],
                      ds.classes)
    for other in (shuffled, renamed):
        again, _ = split_dataset(other, val=0.25, test=0.25, seed=7)
        assert {s.sha256: s.split for s in again} == {s.sha256: s.split for s in first}
    different, _ = split_dataset(ds, val=0.25, test=0.25, seed=8)
    assert {s.sha256: s.split for s in different} != {s.sha256: s.split for s in first}


def test_existing_splits_are_kept_and_unsplit_samples_filled() -> None:
    ds = _cls({"a": 20, "b": 20})
    for s in ds.samples[:10]:
        s.split = "test"
    ds.samples[30].sha256 = ds.samples[2].sha256  # an unsplit twin of a test image
    samples, report = split_dataset(ds, val=0.5, test=0.0, seed=0)
    assert report.mode == "filled unsplit"
    assert all(s.split == "test" for s in samples[:10]) and samples[30].split == "test"
    rest = [s for s in samples[10:] if s.id != samples[30].id]
    assert Counter(s.split for s in rest) == Counter(train=14, val=15)


def test_redo_reassigns_everything() -> None:
    ds = _cls({"a": 20})
    for s in ds.samples:
        s.split = "test"
    kept, report = split_dataset(ds, val=0.1, test=0.1, seed=0)
    assert report.changed == 0 and report.mode == "kept"
    redone, report = split_dataset(ds, val=0.1, test=0.1, seed=0, redo=True)
    assert Counter(s.split for s in redone) == Counter(train=16, val=2, test=2) and report.changed == 18


def test_val_is_carved_from_train_and_test_untouched() -> None:
    ds = _cls({"a": 50, "b": 50})
    for i, s in enumerate(ds.samples):
        s.split = "test" if i % 5 == 0 else "train"
    samples, report = split_dataset(ds, val=0.1, test=0.1, seed=0)
    assert report.mode == "carved val"
    assert [s.split for s in samples if s.split == "test"] == ["test"] * 20
    assert all((s.split == "test") == (i % 5 == 0) for i, s in enumerate(samples))
    assert _counts(samples) == Counter({("train", "a"): 36, ("train", "b"): 36, ("val", "a"): 4,
                                        ("val", "b"): 4, ("test", "a"): 10, ("test", "b"): 10})


def test_detection_images_stratify_by_their_most_frequent_class() -> None:
    def img(i: int, labels: list[str]) -> Sample:
        return Sample(id=f"img{i}", image=f"images/{i}.png", width=9, height=9, sha256=_digest(str(i)),
                      objects=[Obj(label=lb, bbox=[0, 0, 4, 4]) for lb in labels])

    classes = ["car", "person"]
    assert stratum(img(0, ["car", "person", "person"]), classes) == "person"
    assert stratum(img(1, ["person", "car"]), classes) == "car"  # tie: the class listed first
    assert stratum(img(2, []), classes) == ""
    samples = [img(i, ["car"] * 3 + ["person"]) for i in range(20)] + [img(20 + i, ["person"]) for i in range(10)]
    out, _ = split_dataset(_memory(samples, classes, "detection"), val=0.0, test=0.2, seed=0)
    tests = [s for s in out if s.split == "test"]
    assert Counter(stratum(s, classes) for s in tests) == Counter(car=4, person=2)


@pytest.mark.parametrize(
    "val,test,words",
    [
        (-0.1, 0.1, "--val -0.1: expected a fraction in [0, 1)"),
        (0.1, 1.0, "--test 1.0: expected a fraction in [0, 1)"),
        (float("nan"), 0.0, "--val nan"),
        (0.6, 0.5, "leaves nothing for train"),
    ],
)
def test_fraction_errors(val: float, test: float, words: str) -> None:
    with pytest.raises(UsageError) as info:
        split_dataset(_cls({"a": 3}), val=val, test=test)
    assert words in str(info.value)


def test_quotas_sum_to_the_rounded_total() -> None:
    # 1.5 rounds to 2 in all; the equal remainders (0.5 each) go to the first names
    assert quotas({"a": 5, "b": 5, "c": 5}, 0.1) == {"a": 1, "b": 1, "c": 0}
    assert quotas({"a": 400, "b": 400}, 0.1) == {"a": 40, "b": 40}
    assert quotas({"a": 0}, 0.5) == {"a": 0}


@settings(max_examples=40, deadline=None)
@example(sizes=[25], val=0.0, test=0.02, seed=0)  # 25 * 0.02 is exactly one half: rounded up, as the quotas are
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=5),
    val=st.floats(min_value=0, max_value=0.45),
    test=st.floats(min_value=0, max_value=0.45),
    seed=st.integers(min_value=0, max_value=3),
)
def test_property_totals_and_no_leak(sizes: list[int], val: float, test: float, seed: int) -> None:
    ds = _cls({f"c{i}": n for i, n in enumerate(sizes)}, dup_every=2)
    if not ds.samples:
        return
    out, report = split_dataset(ds, val=val, test=test, seed=seed)
    assert report.leaks == 0
    n = len(out)
    got = Counter(s.split for s in out)
    # groups of two can overshoot nothing: a quota (n * fraction, halves rounded up as `quotas` does) is never
    # exceeded, and misses by less than a group per class
    want_test, want_val = math.floor(n * test + 0.5), math.floor(n * val + 0.5)
    assert got["test"] <= want_test and got["val"] <= want_val
    assert got["test"] >= want_test - 2 * len(sizes) and got["val"] >= want_val - 2 * len(sizes)


_LINE_SPLITS = [None, "train", "val", "test"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_LINE_SPLITS), st.sampled_from(_LINE_SPLITS), st.sampled_from(["", "é"]),
                          st.integers(0, 3)), min_size=1, max_size=30),
       st.sampled_from(["none", "blank", "moved", "truncated"]))
def test_splits_changed_a_block_at_a_time_as_line_by_line(rows, damage: str) -> None:
    """`_replaced_splits` (array operations over a block) gives `_relined`'s lines, or leaves the
    block to it (None) where a line is blank or not as the line format puts it."""
    import numpy as np

    from pipeline.core.dataset import dumps_sample
    from pipeline.split import _CODES, _relined, _replaced_splits

    lines = [dumps_sample(Sample(id=f"s{i:03d}{mark}", image=f"images/{i}{mark}.png", width=3, height=4,
                                 sha256="ab" * 32, split=old, label="a" if k else None,
                                 source={"file": "x" * k}))
             for i, (old, _, mark, k) in enumerate(rows)]
    if damage == "blank":
        lines.insert(len(lines) // 2, "")
    elif damage == "moved":
        lines[-1] = lines[-1].replace('"split":', '"tilps":')
    elif damage == "truncated":
        lines[-1] = lines[-1][:lines[-1].index('"split":')]
    old = np.array([_CODES[r[0]] for r in rows], dtype=np.int8)
    new = np.array([_CODES[r[1]] for r in rows], dtype=np.int8)
    body = ("\n".join(lines) + "\n").encode("utf-8")
    fast = _replaced_splits(body, old, new, new != old)
    try:
        slow = list(_relined(enumerate(lines, start=1), old, new))
    except DataError:
        assert fast is None
        return
    if fast is not None:
        assert fast == (("\n".join(slow) + "\n").encode("utf-8"), len(slow))
    else:
        assert damage != "none"
