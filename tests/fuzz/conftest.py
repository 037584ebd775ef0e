"""Fuzz tests: Hypothesis states the invariants, the examples come from it.

``SPOOL_FUZZ_SCALE`` (default 1: about a minute in ``make test``) multiplies every example count;
``make reliability`` runs them bigger.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("SPOOL_FUZZ_SCALE", "1") or 1)


def examples(base: int) -> int:
    return max(1, round(base * SCALE))
