"""Typed errors. Library code raises them; the CLI turns them into one line and exit code 2.

A good message names the thing (file, line, field), what was expected, what was found,
and what to do about it, e.g.::

    samples.jsonl:12: width: expected a positive integer, got -3. Fix: re-import the dataset.
"""

from __future__ import annotations

import re
from pathlib import Path

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` safe to print on one line: control characters and the undecodable bytes of a file
    name that is not UTF-8 (surrogate escapes) as backslash escapes, e.g. ``b\\xff.jpg``."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(_escape, text)


def _escape(m: re.Match) -> str:
    ch = m.group()
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape of a byte
        return f"\\x{code - 0xDC00:02x}"
    return ch.encode("unicode_escape").decode("ascii") if code < 0xD800 else f"\\u{code:04x}"


class PipelineError(Exception):
    """An error the user can fix. Printed as one line, exit code 2, no traceback (unless --debug)."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = printable(message)
        self.fix = printable(fix) if fix else fix
        super().__init__(self.__str__())

    def __reduce__(self):
        # rebuilt from its attributes, not from its constructor's arguments (`DataError` takes
        # several): the error of a worker process or a Ray worker arrives as it was raised
        return _rebuild, (type(self), dict(self.__dict__))

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}. Fix: {self.fix}" if not self.message.endswith(".") else f"{self.message} Fix: {self.fix}"
        return self.message


class UsageError(PipelineError):
    """Bad options or arguments: a missing path, an unknown name, a bad config key."""


class DataError(PipelineError):
    """Bad input data: a malformed file, a value out of range, an unreadable image."""

    def __init__(
        self,
        where: str | Path,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
        got: object = None,
        fix: str | None = None,
    ) -> None:
        self.where = printable(str(where))
        self.line = line
        self.field = field
        loc = self.where + (f":{line}" if line is not None else "")
        parts = [loc]
        if field:
            parts.append(field)
        if expected is not None:
            body = f"expected {expected}, got {_short(got)}"
            if message:
                body = f"{message}: {body}"
        else:
            body = message
        parts.append(body)
        super().__init__(": ".join(parts), fix=fix)


class ConfigError(UsageError):
    """A bad YAML file or an unknown/ill-typed config key."""


class NetworkError(PipelineError):
    """A download or remote request failed in a way the user can act on (offline, 404, checksum)."""


def _rebuild(cls: type[PipelineError], state: dict) -> PipelineError:
    """A pickled `PipelineError` back (see `PipelineError.__reduce__`)."""
    err = cls.__new__(cls)
    err.__dict__.update(state)
    err.args = (str(err),)
    return err


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
