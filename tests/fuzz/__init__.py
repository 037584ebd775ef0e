"""Sizes of the fuzz tests: about a minute together in ``make test``, larger under ``make reliability``.

``SPOOL_FUZZ_SCALE`` multiplies every example count (``make reliability`` sets 20).
"""

from __future__ import annotations

import math
import os

SCALE = float(os.environ.get("SPOOL_FUZZ_SCALE", "1") or 1)


def examples(n: int) -> int:
    return max(1, math.ceil(n * SCALE))
