"""Pure checks for values that come from outside: configuration, options, requests.

Validation happens at the edge, completely, once (DESIGN.md, "Bulkheads"):
every package that takes a value from a person or a file asks the same
questions, so they live here, on the ground floor every package may import.
Each function returns what is wrong in words a user can act on, or None.
"""

from __future__ import annotations

import math
from typing import Any

MAX_TEXT = 4096  # PATH_MAX on Linux: no setting needs more
MAX_INT = 2**53  # exact in JSON and as a float: larger is never meant, and breaks comparisons
MAX_FLOAT = 1e9  # ~31 years in seconds: larger overflows date arithmetic (timedelta, PostgreSQL intervals)


def show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it (repr), cut short so one bad value cannot flood a message."""
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)  # as TOML spells it
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_number(value: Any) -> bool:
    """An int or a float, and not a bool (``True`` is an ``int`` to Python, never to a user)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_problem(value: Any, *, integer: bool = False) -> str | None:
    """Why ``value`` is not a finite number of sensible size (a whole one if ``integer``)."""
    if not is_number(value) or (integer and not isinstance(value, int)):
        return f"{show(value)} is not {'a whole number' if integer else 'a number'}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{show(value)} is not a finite number"
    limit = MAX_INT if isinstance(value, int) else MAX_FLOAT
    if abs(value) > limit:
        return f"{show(value)} is too large (at most {limit:g} in size)"
    return None


def control_chars(text: str, allow: str = "") -> list[str]:
    """The control characters (C0, DEL, C1) in ``text``, except those in ``allow``."""
    return [c for c in text if (ord(c) < 32 or 127 <= ord(c) < 160) and c not in allow]


def text_problem(value: Any, *, allow: str = "", max_len: int = MAX_TEXT) -> str | None:
    """Why ``value`` is not text that can become a path, URL, argument or log line.

    Text must encode as UTF-8 (an environment variable holding undecodable
    bytes arrives as surrogates), hold no NUL or other control characters (a
    path with NUL cannot be opened; a newline splits a log line) and be of
    bounded length.
    """
    if not isinstance(value, str):
        return f"{show(value)} is not text"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{show(value)} is not valid UTF-8 text"
    bad = control_chars(value, allow)
    if bad:
        return f"{show(value)} holds the control character {bad[0]!r}"
    if len(value) > max_len:
        return f"text of {len(value)} characters is too long (at most {max_len})"
    return None
