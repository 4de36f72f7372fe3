"""What counts as a number in a label file: one rule for every reader.

JSON and YAML hand readers ints, floats and bools (``true`` is an ``int`` to Python), and Python's
``json`` module also accepts ``NaN`` and ``Infinity``. A coordinate, a size or a score is a real,
finite number and never a bool; `is_number` says so in one place.
"""

from __future__ import annotations

import math
import sys

_FLOAT_MAX = sys.float_info.max


def is_number(v: object) -> bool:
    """True for a finite int or float that converts to a finite float; False for bools, nan, inf,
    ints too large for a float, strings, None and everything else."""
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int) and not isinstance(v, bool) and -_FLOAT_MAX <= v <= _FLOAT_MAX


def is_real(v: object) -> bool:
    """True for an int or float that is not a bool, finite or not: lets a reader tell "not a number"
    from "not finite" in its error (use `is_number` to accept a value)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
