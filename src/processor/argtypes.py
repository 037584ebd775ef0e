"""argparse types shared by every package that registers ``spool`` commands: one wording per mistake."""

from __future__ import annotations

import argparse
import math
import re


def count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    if not re.fullmatch(r"\s*[0-9]{1,9}\s*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 1e9):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value
