"""pipeline.augment.ops.base: parameter kinds, the helpers op modules share."""

from __future__ import annotations

import math

import pytest

from pipeline.augment.ops.base import (
    ALL_TARGETS,
    FLIP_TARGETS,
    TARGETS,
    WARP_TARGETS,
    Param,
    always,
    is_number,
    named,
    never,
    pair,
    scale_factors,
    sym,
)
from pipeline.core.errors import ConfigError


@pytest.mark.parametrize(("param", "value", "resolved"), [
    (Param("number", 0.0, "d"), 2, 2.0),  # ints become floats
    (Param("int", 0, "d"), 3, 3),
    (Param("range", 0.0, "d"), 5, 5.0),  # a scalar range stays a scalar
    (Param("range", 0.0, "d"), [1, 2], [1.0, 2.0]),
    (Param("range", 0.0, "d"), [2, 2], [2.0, 2.0]),  # lo == hi is a range
    (Param("size", None, "d"), None, None),
    (Param("size", None, "d"), [3, 4], [3, 4]),
    (Param("fill", 0, "d"), 255, 255.0),
    (Param("fill", 0, "d", random=True), "random", "random"),
    (Param("choice", "4", "d", choices=("4", "9")), 9, "9"),  # YAML's 9 is the choice "9"
])
def test_valid_values_resolve_to_their_canonical_type(param: Param, value: object, resolved: object) -> None:
    got = param.validate("r.yaml: ops[0] (x)", "k", value)
    assert got == resolved and type(got) is type(resolved)


@pytest.mark.parametrize(("param", "value", "expected"), [
    (Param("number", 0.0, "d"), -0.5, "a number >= 0"),
    (Param("number", 0.0, "d"), True, "a number >= 0"),  # a bool is not a number
    (Param("number", 0.0, "d"), math.inf, "a number >= 0"),
    (Param("int", 0, "d"), 2.0, "an integer >= 0"),
    (Param("range", 0.0, "d"), [3, 1], "a number or [lo, hi] with lo <= hi"),
    (Param("range", 0.0, "d"), [1, 2, 3], "a number or [lo, hi] with lo <= hi"),
    (Param("size", None, "d"), [4, 0], "[height, width] of positive integers, or null"),
    (Param("fill", 0, "d"), "random", "a number 0-255, got"),  # only where `random` is allowed
    (Param("fill", 0, "d", random=True), 300, "a number 0-255 or 'random'"),
    (Param("choice", "4", "d", choices=("4", "9")), 5, "one of 4, 9"),
])
def test_bad_values_name_the_field_and_what_was_expected(param: Param, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        param.validate("r.yaml: ops[0] (x)", "k", value)
    assert str(err.value).startswith(f"r.yaml: ops[0] (x): k: expected {expected}")


def test_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown parameter kind 'colour'"):
        Param("colour", 0, "d").validate("w", "k", 1)


def test_numbers_are_finite_and_not_bools() -> None:
    assert is_number(1) and is_number(-2.5)
    assert not any(is_number(v) for v in (True, math.nan, math.inf, "1", None))


def test_ranges_read_symmetrically_or_as_given() -> None:
    assert sym(3.0) == (-3.0, 3.0) and sym([1.0, 2.0]) == (1.0, 2.0)
    assert pair(3.0) == (3.0, 3.0) and pair([1.0, 2.0]) == (1.0, 2.0)


def test_zoom_factors_must_be_positive() -> None:
    scale_factors("w", {"scale": [0.5, 2.0]})
    scale_factors("w", {})  # an op without a zoom
    with pytest.raises(ConfigError, match="scale: expected factors > 0"):
        scale_factors("w", {"scale": [0.0, 1.0]})
    with pytest.raises(ConfigError, match="scale: expected a factor > 0"):
        scale_factors("w", {"scale": -1.0})


def test_named_subclasses_are_made_once_per_name_and_class() -> None:
    class Base:
        pass

    first = named(Base, "rotate")
    assert first.__name__ == "rotate" and issubclass(first, Base)
    assert named(Base, "rotate") is first and named(Base, "shift") is not first


def test_target_sets() -> None:
    assert ALL_TARGETS == set(TARGETS)
    assert FLIP_TARGETS < WARP_TARGETS < ALL_TARGETS  # flips refuse keypoints, warps polylines
    assert "keypoints" not in FLIP_TARGETS and "polylines" not in WARP_TARGETS
    assert always({}) and not never({})
