"""The one number rule: finite ints and floats, never bools."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

import numpy as np
import pytest

from pipeline.core.numbers import is_number, is_real


@pytest.mark.parametrize(
    ("value", "number", "real"),
    [
        (0, True, True),  # int
        (-3.5, True, True),  # float
        (1e308, True, True),  # large but finite
        (sys.float_info.max, True, True),  # the largest float
        (10**308, True, True),  # an int a float can hold
        (10**400, False, True),  # an int past the float range (float() would overflow)
        (-(10**400), False, True),  # the same, negative
        (math.nan, False, True),  # JSON NaN: a float, not finite
        (math.inf, False, True),  # JSON Infinity
        (-math.inf, False, True),  # JSON -Infinity
        (True, False, False),  # JSON true is an int to Python, never a number here
        (False, False, False),  # JSON false
        ("3", False, False),  # a numeric string is text
        (None, False, False),  # JSON null
        ([1], False, False),  # a list
        (Fraction(1, 2), False, False),  # not a JSON type
        (np.float64(2.5), True, True),  # numpy's float64 is a float subclass
    ],
)
def test_number_table(value: object, number: bool, real: bool) -> None:
    assert is_number(value) is number
    assert is_real(value) is real


def test_every_number_converts_to_a_finite_float() -> None:
    for v in (0, 7, -2.25, 10**308, sys.float_info.max, -sys.float_info.max):
        assert is_number(v) and math.isfinite(float(v))


def test_int_subclasses_follow_the_int_rule() -> None:
    from enum import IntEnum

    class Size(IntEnum):
        SMALL = 3

    assert is_number(Size.SMALL) and is_number(np.int64(4)) is False  # numpy ints are no Python ints


def test_the_int_bound_is_where_float_overflows() -> None:
    largest = (1 << 1024) - (1 << 970) - 1  # rounds down to the largest float
    assert is_number(largest) and float(largest) == sys.float_info.max
    assert is_number(-largest) and float(-largest) == -sys.float_info.max
    assert not is_number(largest + 1) and not is_number(-largest - 1)
    with pytest.raises(OverflowError):
        float(largest + 1)
