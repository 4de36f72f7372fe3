"""What counts as a number in a label file: one rule for every reader.

JSON and YAML hand readers ints, floats and bools (``true`` is an ``int`` to Python), and Python's
``json`` module also accepts ``NaN`` and ``Infinity``. A coordinate, a size or a score is a real,
finite number and never a bool; `is_number` says so in one place.
"""

from __future__ import annotations

import math

_INT_MAX = (1 << 1024) - (1 << 970) - 1  # the largest int float() takes; one more rounds to inf
_INT_MIN = -_INT_MAX


def is_number(v: object) -> bool:
    """True for a finite int or float that converts to a finite float; False for bools, nan, inf,
    ints too large for a float, strings, None and everything else."""
    t = type(v)  # exact types first: readers call this for every coordinate
    if t is float:
        return v - v == 0.0  # inf - inf and nan - nan are nan
    if t is int:
        return _INT_MIN <= v <= _INT_MAX
    if isinstance(v, float):  # float subclasses (numpy.float64)
        return math.isfinite(v)
    return isinstance(v, int) and not isinstance(v, bool) and _INT_MIN <= v <= _INT_MAX


def is_real(v: object) -> bool:
    """True for an int or float that is not a bool, finite or not: lets a reader tell "not a number"
    from "not finite" in its error (use `is_number` to accept a value)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
