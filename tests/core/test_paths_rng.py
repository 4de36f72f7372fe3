"""Natural sort, safe names, atomic writes, derived seeds."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.paths import atomic_write_bytes, natural_sorted, safe_stem
from pipeline.core.rng import derive_seed, rng_for


def test_natural_sort_orders_numbers_by_value() -> None:
    assert natural_sorted(["img10", "img2", "img1", "Img3"]) == ["img1", "img2", "Img3", "img10"]


def test_safe_stem_keeps_unicode_and_blocks_escapes() -> None:
    assert safe_stem("ü/chat été") == "ü/chat_été"
    assert ".." not in safe_stem("../../etc/passwd").split("/")
    assert safe_stem("a:b*c") == "a_b_c"


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "x" / "f.bin", b"abc")
    assert (tmp_path / "x" / "f.bin").read_bytes() == b"abc"
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["f.bin"]


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(0, "augment", "a", 1) == derive_seed(0, "augment", "a", 1)
    assert derive_seed(0, "augment", "a", 1) != derive_seed(0, "augment", "a", 2)
    assert rng_for(1, "x").integers(0, 1 << 30) == rng_for(1, "x").integers(0, 1 << 30)
