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

import itertools
import json
import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.dataset import SAMPLES_JSONL, Dataset, Sample
from pipeline.core.errors import DataError, UsageError
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


# split codes of the compact columns
_CODES = {"train": 0, "val": 1, "test": 2, None: -1}
_NAMES = {0: "train", 1: "val", 2: "test", -1: None}


class _Interner:
    """Strings to dense indices in order of first appearance (one copy of each string)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def __call__(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
        return i

    def many(self, names: list[str]) -> np.ndarray:
        return np.fromiter((self(n) for n in names), dtype=np.int64, count=len(names))


@dataclass
class Rows:
    """What the split rule reads of each sample, as compact columns (one row per sample, in the
    dataset's order): content group (by sha256, numbered in order of first appearance), stratum
    and split code. Ten million samples take about 130 MB."""

    group: np.ndarray  # int64 index into `digests`
    digests: list[str]
    stratum: np.ndarray  # int64 index into `strata`
    strata: list[str]
    split: np.ndarray  # int8, `_CODES`

    @classmethod
    def of_samples(cls, samples: Iterable[Sample], classes: Sequence[str]) -> Rows:
        digests, strata = _Interner(), _Interner()
        group, strat, split = array("q"), array("q"), array("b")
        for s in samples:
            group.append(digests(s.sha256))
            strat.append(strata(stratum(s, classes)))
            split.append(_CODES[s.split])
        return cls(np.frombuffer(group, dtype=np.int64), digests.names, np.frombuffer(strat, dtype=np.int64),
                   strata.names, np.frombuffer(split, dtype=np.int8))

    @classmethod
    def of_batches(cls, batches: Iterable[dict], classes: Sequence[str]) -> Rows:
        """From `core.dataset.columns.plain_rows` batches (an image label is the stratum there)."""
        import pyarrow.compute as pc

        digests = _Interner()
        strata = list(classes) + [NO_CLASS]
        groups, strats, splits = [], [], []
        for b in batches:
            codes = pc.dictionary_encode(b["sha"])
            mapping = digests.many(codes.dictionary.to_pylist())
            groups.append(mapping[codes.indices.to_numpy()])
            label = b["label"].astype(np.int64)
            strats.append(np.where(label < 0, len(classes), label))
            splits.append(b["split"].astype(np.int8))
        return cls(_joined(groups, np.int64), digests.names, _joined(strats, np.int64), strata,
                   _joined(splits, np.int8))

    def __len__(self) -> int:
        return len(self.group)


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _group_strata(rows: Rows) -> np.ndarray:
    """Each group's stratum: the most frequent among its samples (ties: the name that sorts first)."""
    k = max(len(rows.strata), 1)
    pairs, counts = np.unique(rows.group * k + rows.stratum, return_counts=True)
    g, st = pairs // k, pairs % k
    rank = np.empty(k, dtype=np.int64)
    rank[np.argsort(np.array(rows.strata + [""] * (k - len(rows.strata)), dtype=object), kind="stable")] = np.arange(k)
    order = np.lexsort((rank[st], -counts, g))
    first = order[np.r_[True, g[order][1:] != g[order][:-1]]] if len(order) else order
    out = np.zeros(len(rows.digests), dtype=np.int64)
    out[g[first]] = st[first]
    return out


def _deal(rows: Rows, sizes: np.ndarray, gstrat: np.ndarray, pool: np.ndarray, fractions: dict[str, float],
          seed: int, rest: str) -> dict[int, str]:
    """Assign each group of `pool` (group indices, in order) a split: per stratum, groups in
    seeded-hash order fill each split in `fractions` up to its quota (counted in samples), the
    rest go to `rest`."""
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for g in pool.tolist():
        by_stratum[rows.strata[gstrat[g]]].append(g)
    per = {key: int(sizes[gs].sum()) for key, gs in by_stratum.items()}
    want = {name: quotas(per, f) for name, f in fractions.items()}
    assignment: dict[int, str] = {}
    for key, members in by_stratum.items():
        members.sort(key=lambda g: (derive_seed("split", seed, rows.digests[g]), rows.digests[g]))
        taken = Counter()
        for g in members:
            n = int(sizes[g])
            target = next((name for name in fractions if taken[name] + n <= want[name][key]), rest)
            taken[target] += n
            assignment[g] = target
    return assignment


def assign_splits(rows: Rows, *, val: float, test: float, seed: int = 0,
                  redo: bool = False) -> tuple[np.ndarray, SplitReport]:
    """The new split code of every row (as described in the module docstring) and a report."""
    groups = len(rows.digests)
    sizes = np.bincount(rows.group, minlength=groups)
    present = np.bincount(rows.group * 4 + (rows.split.astype(np.int64) + 1), minlength=groups * 4).reshape(groups, 4)
    report = SplitReport(mode="kept", groups_with_duplicates=int((sizes > 1).sum()))
    fractions = {"test": test, "val": val}
    new = rows.split.copy()
    gstrat = _group_strata(rows)
    everything = np.arange(groups)
    unsplit = rows.split == -1

    def apply(assignment: dict[int, str], where: np.ndarray) -> None:
        codes = np.full(groups, -2, dtype=np.int8)
        for g, name in assignment.items():
            codes[g] = _CODES[name]
        new[where] = codes[rows.group[where]]

    if redo or unsplit.all():
        report.mode = "assigned"
        apply(_deal(rows, sizes, gstrat, everything, fractions, seed, rest="train"), np.ones(len(rows), dtype=bool))
    elif unsplit.any():
        report.mode = "filled unsplit"
        # content already in a split: join it (the first by name, when kept splits already disagree)
        known = np.full(groups, -2, dtype=np.int8)
        for code in sorted((0, 1, 2), key=lambda c: _NAMES[c], reverse=True):  # test < train < val
            known[present[:, code + 1] > 0] = code
        joins = unsplit & (known[rows.group] >= 0)
        new[joins] = known[rows.group[joins]]
        pending = everything[known < 0]
        apply(_deal(rows, sizes, gstrat, pending, fractions, seed, rest="train"), unsplit & ~joins)
    else:
        names = {_NAMES[c] for c in (0, 1, 2) if present[:, c + 1].any()}
        carve = {name: f for name, f in fractions.items() if f > 0 and name not in names}
        if carve:
            report.mode = "carved " + " and ".join(carve)
            only_train = present[:, 1] == sizes
            pool = everything[only_train]
            apply(_deal(rows, sizes, gstrat, pool, carve, seed, rest="train"), only_train[rows.group])

    spread = np.unique(rows.group * 4 + (new.astype(np.int64) + 1)) // 4
    report.leaks = int((np.bincount(spread, minlength=groups) > 1).sum())
    report.changed = int((new != rows.split).sum())
    if not report.changed:
        report.mode = "kept"
    k = max(len(rows.strata), 1)
    pairs, counts = np.unique((new.astype(np.int64) + 1) * k + rows.stratum, return_counts=True)
    for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
        name = _NAMES[pair // k - 1] or "unsplit"
        report.counts.setdefault(name, Counter())[rows.strata[pair % k] or "(no label)"] += n
    return new, report


def _check_request(dataset: Dataset, val: float, test: float) -> None:
    check_fraction("val", val)
    check_fraction("test", test)
    if val + test >= 1.0:
        raise UsageError(f"--val {val} + --test {test} leaves nothing for train", fix="keep val + test below 1")
    if not dataset.samples:
        raise UsageError(f"{dataset.root}: the dataset is empty, nothing to split",
                         fix="import or fetch some data first")


def split_dataset(dataset: Dataset, *, val: float, test: float, seed: int = 0,
                  redo: bool = False) -> tuple[list[Sample], SplitReport]:
    """New samples (copies) with splits assigned as described in the module docstring, and a report."""
    _check_request(dataset, val, test)
    samples = [Sample.from_json(s.to_json()) for s in dataset.samples]
    new, report = assign_splits(Rows.of_samples(samples, dataset.classes), val=val, test=test, seed=seed, redo=redo)
    for s, code in zip(samples, new.tolist(), strict=True):
        s.split = _NAMES[code]
    return samples, report


def split_in_place(dataset: Dataset, *, val: float, test: float, seed: int = 0, redo: bool = False) -> SplitReport:
    """`split_dataset` and, when a split changed, samples.jsonl rewritten in place (`rewrite_samples`,
    lineage params val, test, seed, redo and the mode).

    A streamed dataset (`open_dataset`) is split in bounded memory: the rule reads compact columns
    (from one DuckDB query when the file is plain, else sample by sample) and the new samples.jsonl
    is written line by line, to a temporary file renamed into place."""
    from pipeline.core.dataset import is_streamed, rewrite_samples

    if not is_streamed(dataset):
        samples, report = split_dataset(dataset, val=val, test=test, seed=seed, redo=redo)
        if report.changed:
            rewrite_samples(dataset, samples, stage="split", params=_params(val, test, seed, redo, report))
        return report
    _check_request(dataset, val, test)
    from pipeline.core.dataset.columns import NotPlain, plain_rows

    try:
        rows = Rows.of_batches(plain_rows(dataset.root, dataset.info, len(dataset.samples)), dataset.classes)
    except NotPlain:
        rows = Rows.of_samples(dataset.samples, dataset.classes)
    return _split_rows(dataset, rows, val, test, seed, redo)


def _split_rows(dataset: Dataset, rows: Rows, val: float, test: float, seed: int, redo: bool) -> SplitReport:
    """Assign the splits of a streamed dataset's `rows` and rewrite its samples.jsonl if one changed."""
    from pipeline.core.dataset import rewrite_data

    new, report = assign_splits(rows, val=val, test=test, seed=seed, redo=redo)
    if report.changed:
        rewrite_data(dataset, _new_data(dataset, rows.split, new), stage="split",
                      params=_params(val, test, seed, redo, report))
    return report


def split_folder(root: Path, *, val: float, test: float, seed: int = 0, redo: bool = False) -> SplitReport:
    """`split_in_place` of the dataset folder `root`, opened with `open_dataset`: DuckDB reads the
    rows of a plain file on its own threads while this one checks the file (hash, order); they are
    used only if that check lets the file be streamed."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.core.dataset import is_streamed, open_dataset, read_info
    from pipeline.core.dataset.columns import NotPlain, plain_rows

    info = read_info(root)

    def read_rows() -> Rows | None:
        try:
            return Rows.of_batches(plain_rows(root, info, None), info.classes)
        except NotPlain:
            return None

    with ThreadPoolExecutor(max_workers=1) as pool:
        early = pool.submit(read_rows)
        dataset = open_dataset(root)
        rows = early.result()
    if not is_streamed(dataset) or rows is None or len(rows) != len(dataset.samples) \
            or info.classes != dataset.classes:
        return split_in_place(dataset, val=val, test=test, seed=seed, redo=redo)
    _check_request(dataset, val, test)
    return _split_rows(dataset, rows, val, test, seed, redo)


def _params(val: float, test: float, seed: int, redo: bool, report: SplitReport) -> dict:
    return {"val": val, "test": test, "seed": seed, "redo": redo, "mode": report.mode}


def _new_data(dataset: Dataset, old: np.ndarray, new: np.ndarray) -> Iterator[bytes]:
    """samples.jsonl's bytes with the new splits, a block of whole lines at a time: `_new_lines`,
    with each block of a file our writers wrote (below) done by array operations where it can be.

    A file whose recorded samples_sha256 matched is one our writers wrote, every line already as
    `dumps_sample` renders it: a line keeps its bytes, and a changed split is put in place of the
    old one (after ``"sha256":"…",``, where the line format puts it). Any other file's lines are
    parsed and rendered again."""
    if not dataset.info.samples_sha256:
        lines = _new_lines(dataset, old, new)
        while chunk := list(itertools.islice(lines, 4096)):
            yield ("\n".join(chunk) + "\n").encode("utf-8")
        return
    changed = new != old
    row, lineno, carry = 0, 0, b""
    with open(dataset.root / SAMPLES_JSONL, "rb") as fh:
        while True:
            block = fh.read(1 << 22)
            data = carry + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            body, carry = data[:cut], data[cut:]
            if body:
                done = _replaced_splits(body, old[row:], new[row:], changed[row:])
                if done is None:
                    lines = body.decode("utf-8").split("\n")
                    if body.endswith(b"\n"):
                        lines.pop()
                    out = list(_relined(enumerate(lines, start=lineno + 1), old[row:], new[row:]))
                    done = (("\n".join(out) + "\n").encode("utf-8") if out else b"", len(out))
                    lineno += len(lines)
                else:
                    lineno += done[1]
                yield done[0]
                row += done[1]
            if not block:
                break
    if row != len(new):
        raise ValueError(f"{SAMPLES_JSONL} holds {row} samples, not {len(new)}: it changed while being split")


_TOKENS = {code: json.dumps(name) for code, name in _NAMES.items()}
_SHA_KEY = ',"sha256":"'


def _relined(lines: Iterable[tuple[int, str]], old: np.ndarray, new: np.ndarray) -> Iterator[str]:
    """The non-blank `lines` (line number, text) with their splits changed from `old` to `new`
    (one code per non-blank line, in order) in place, as described in `_new_data`."""
    row = 0
    for lineno, line in lines:
        if not line.strip():
            continue
        before, after = _TOKENS[int(old[row])], _TOKENS[int(new[row])]
        row += 1
        if before == after:
            yield line
            continue
        at = line.find(_SHA_KEY) + len(_SHA_KEY) + 64 + len('","split":')
        if at < len(_SHA_KEY) + 64 or line[at:at + len(before) + 1] != before + ",":
            raise DataError(SAMPLES_JSONL, "not as written (the split is not where the line format puts it)",
                            line=lineno, fix="re-import the dataset")
        yield line[:at] + after + line[at + len(before):]


_TOKEN_TABLE = np.zeros((4, 8), dtype=np.uint8)  # the split tokens' bytes by code + 1 (code -1: null)
for _code, _token in _TOKENS.items():
    _TOKEN_TABLE[_code + 1, :len(_token)] = np.frombuffer(_token.encode(), dtype=np.uint8)
_TOKEN_SIZES = np.array([len(_TOKENS[c]) for c in (-1, 0, 1, 2)])


def _replaced_splits(body: bytes, old: np.ndarray, new: np.ndarray, changed: np.ndarray) -> tuple[bytes, int] | None:
    """(new bytes, lines) of `body` (whole lines ended by newlines, the first of them row 0 of
    `old`/`new`/`changed`) with `_relined`'s changes, made with array operations; None when a line
    is blank or a split is not where the line format puts it (`_relined` then says which)."""
    if not body.endswith(b"\n"):
        return None
    arr = np.frombuffer(body, dtype=np.uint8)
    starts = np.flatnonzero(arr == 10)
    n = len(starts)
    ends = starts.copy()
    starts[1:] = ends[:-1] + 1
    starts[0] = 0
    if n > len(old) or (ends == starts).any() or not (arr[starts] == ord("{")).all():
        return None  # (a blank line, or more lines than rows: the file changed)
    rows = np.flatnonzero(changed[:n])
    if not len(rows):
        return body, n
    key = _SHA_KEY.encode()
    found = np.array([body.find(key, s) for s in starts[rows].tolist()], dtype=np.int64)
    before = old[rows].astype(np.int64) + 1
    after = new[rows].astype(np.int64) + 1
    at = found + len(_SHA_KEY) + 64 + len('","split":')
    size = _TOKEN_SIZES[before]
    if (found < 0).any() or (at + size >= ends[rows]).any():
        return None
    for k in range(_TOKEN_TABLE.shape[1] + 1):  # the old token and its comma, byte by byte
        want = np.where(k < size, _TOKEN_TABLE[before, np.minimum(k, 7)], ord(","))
        here = k <= size
        if not (arr[(at + k)[here]] == want[here]).all():
            return None
    keep = np.ones(len(arr), dtype=bool)  # the old tokens out ...
    for k in range(int(size.max())):
        keep[(at + k)[k < size]] = False
    kept = arr[keep]
    grow = _TOKEN_SIZES[after]  # ... the new ones in, where each old one began
    where = np.repeat(at - np.concatenate(([0], np.cumsum(size)[:-1])), grow)
    offset = np.arange(len(where)) - np.repeat(np.cumsum(grow) - grow, grow)
    return np.insert(kept, where, _TOKEN_TABLE[np.repeat(after, grow), offset]).tobytes(), n


def _new_lines(dataset: Dataset, old: np.ndarray, new: np.ndarray) -> Iterator[str]:
    """The lines of a file with no recorded samples_sha256, with the new splits: each sample
    parsed and rendered again (`dumps_sample`)."""
    from pipeline.core.dataset import dumps_sample

    for s, code in zip(dataset.samples, new.tolist(), strict=True):
        s.split = _NAMES[code]
        yield dumps_sample(s)
