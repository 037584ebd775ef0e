"""The reliability suite (marker ``soak``, ``make reliability``): each test injects one fault from
../shared/RELIABILITY.md, counts failures instead of stopping at the first, and records a row that
``bench/reliability_report.py`` turns into docs/reliability.md.

``SPOOL_SOAK_SCALE`` (default 1) scales every run count (0.05 for a quick look).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.common import commit
from tests.conftest import REPO

RESULTS = Path(os.environ.get("SPOOL_RELIABILITY_OUT", str(REPO / "bench" / "results" / "reliability.jsonl")))
SCALE = float(os.environ.get("SPOOL_SOAK_SCALE", "1") or 1)

Record = Callable[..., None]
COMMIT = commit()  # each row says what it measured: a row re-run after a fix names its own commit


def runs(full: int) -> int:
    return max(1, round(full * SCALE))


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Record:
    def write(
        row: str, fault: str, *, runs: int, failures: int, figure: str, target: str, met: bool, notes: str = ""
    ) -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "row": row,
            "fault": fault,
            "runs": runs,
            "failures": failures,
            "figure": figure,
            "target": target,
            "met": met,
            "notes": notes,
            "test": request.node.nodeid,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "scale": SCALE,
            "commit": COMMIT,
        }
        with open(RESULTS, "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    return write
