"""Train/val/test splits: stratified by class, leak-free, stable.

Rules, in order:

1. Images with identical content (same sha256) form one group and always share a split, so the
   same picture never sits in train and test.
2. Stratified: each class (a detection image's class is its most frequent object class) gets its
   share of every split. Quotas use the largest-remainder method, so the totals hit the requested
   fractions as closely as whole images allow.
3. Stable: which group goes where depends only on the seed and the group's sha256
   (`rng.derive_seed`), not on sample order, ids or the number of samples around it.
4. Existing splits are kept unless `redo`. Samples without a split are assigned (a sample whose
   content already sits in a split joins it). When every sample has a split but a requested
   split (val or test) has none, it is carved out of train, stratified, as that fraction of
   train; test is never touched by carving. So MNIST's official train/test with ``--val 0.1``
   becomes train 90 % / val 10 % of the old train / test unchanged.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.core.dataset import Dataset, Sample
from pipeline.core.errors import UsageError
from pipeline.core.numbers import is_number
from pipeline.core.rng import derive_seed

NO_CLASS = ""  # stratum of samples without any label (e.g. detection images with no objects)


@dataclass
class SplitReport:
    """What `split_dataset` did, for the summary."""

    mode: str  # "assigned", "carved val", "filled unsplit", "kept"
    changed: int = 0  # samples whose split changed
    groups_with_duplicates: int = 0  # content groups of more than one sample
    leaks: int = 0  # content groups spanning several splits among kept splits (only --redo fixes them)
    counts: dict[str, Counter] = field(default_factory=dict)  # split -> class -> count


def stratum(sample: Sample, classes: Sequence[str]) -> str:
    """The class a sample is stratified by: its label, else its soft label's largest class, else its
    most frequent object class (ties: the class listed first), else `NO_CLASS`."""
    if sample.label is not None:
        return sample.label
    order = {c: i for i, c in enumerate(classes)}
    if sample.soft_label:
        return min(sample.soft_label.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)), kv[0]))[0]
    if sample.objects:
        counts = Counter(o.label for o in sample.objects)
        return min(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)), kv[0]))[0]
    return NO_CLASS


def check_fraction(name: str, value: float) -> None:
    if not (is_number(value) and 0.0 <= value < 1.0):
        raise UsageError(f"--{name} {value}: expected a fraction in [0, 1)", fix=f"e.g. --{name} 0.1")


def quotas(sizes: dict[str, int], fraction: float) -> dict[str, int]:
    """Per-stratum counts summing to round(total * fraction), each as close to size * fraction
    as whole numbers allow (largest remainder; ties broken by stratum name)."""
    total = sum(sizes.values())
    target = math.floor(total * fraction + 0.5)
    exact = {k: n * fraction for k, n in sizes.items()}
    out = {k: math.floor(v) for k, v in exact.items()}
    rest = target - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[: max(rest, 0)]:
        out[k] += 1
    return out


def _groups(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.sha256].append(s)
    return groups


def _group_stratum(members: list[Sample], classes: Sequence[str]) -> str:
    counts = Counter(stratum(s, classes) for s in members)
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _deal(groups: dict[str, list[Sample]], classes: Sequence[str], fractions: dict[str, float],
          seed: int, rest: str) -> dict[str, str]:
    """Assign each group (sha256 -> members) a split: per stratum, groups in seeded-hash order fill
    each split in `fractions` up to its quota (counted in samples), the rest go to `rest`."""
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for digest, members in groups.items():
        by_stratum[_group_stratum(members, classes)].append(digest)
    sizes = {k: sum(len(groups[d]) for d in ds) for k, ds in by_stratum.items()}
    want = {name: quotas(sizes, f) for name, f in fractions.items()}
    assignment: dict[str, str] = {}
    for key, digests in by_stratum.items():
        digests.sort(key=lambda d: (derive_seed("split", seed, d), d))
        taken = Counter()
        for d in digests:
            n = len(groups[d])
            target = next((name for name in fractions if taken[name] + n <= want[name][key]), rest)
            taken[target] += n
            assignment[d] = target
    return assignment


def split_dataset(dataset: Dataset, *, val: float, test: float, seed: int = 0,
                  redo: bool = False) -> tuple[list[Sample], SplitReport]:
    """New samples (copies) with splits assigned as described in the module docstring, and a report."""
    check_fraction("val", val)
    check_fraction("test", test)
    if val + test >= 1.0:
        raise UsageError(f"--val {val} + --test {test} leaves nothing for train", fix="keep val + test below 1")
    if not dataset.samples:
        raise UsageError(f"{dataset.root}: the dataset is empty, nothing to split",
                         fix="import or fetch some data first")
    samples = [Sample.from_json(s.to_json()) for s in dataset.samples]
    before = {s.id: s.split for s in samples}
    groups = _groups(samples)
    classes = dataset.classes
    report = SplitReport(mode="kept", groups_with_duplicates=sum(1 for g in groups.values() if len(g) > 1))
    fractions = {"test": test, "val": val}

    if redo or all(s.split is None for s in samples):
        report.mode = "assigned"
        assignment = _deal(groups, classes, fractions, seed, rest="train")
        for digest, members in groups.items():
            for s in members:
                s.split = assignment[digest]
    elif any(s.split is None for s in samples):
        report.mode = "filled unsplit"
        pending: dict[str, list[Sample]] = {}
        for digest, members in groups.items():
            known = sorted({s.split for s in members if s.split is not None})
            if known:  # content already in a split: join it (the first, when kept splits already disagree)
                for s in members:
                    if s.split is None:
                        s.split = known[0]
            else:
                pending[digest] = members
        assignment = _deal(pending, classes, fractions, seed, rest="train")
        for digest, members in pending.items():
            for s in members:
                s.split = assignment[digest]
    else:
        present = {s.split for s in samples}
        carve = {name: f for name, f in fractions.items() if f > 0 and name not in present}
        if carve:
            report.mode = "carved " + " and ".join(carve)
            pool = {d: m for d, m in groups.items() if all(s.split == "train" for s in m)}
            assignment = _deal(pool, classes, carve, seed, rest="train")
            for digest, members in pool.items():
                for s in members:
                    s.split = assignment[digest]

    report.leaks = sum(1 for g in groups.values() if len({s.split for s in g}) > 1)
    report.changed = sum(1 for s in samples if s.split != before[s.id])
    if not report.changed:
        report.mode = "kept"
    for s in samples:
        report.counts.setdefault(s.split or "unsplit", Counter())[stratum(s, classes) or "(no label)"] += 1
    return samples, report
