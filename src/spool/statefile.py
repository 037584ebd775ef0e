"""``state/daemon.json``: what a running daemon says about itself, for commands in other processes.

The daemon rewrites it every couple of seconds (a temp file renamed over it; no fsync: it is a
live status, not a record), so ``spool health`` and ``spool status`` can tell a daemon that holds
its lock but no longer turns its loop (frozen, stuck) from one that works, and why intake is paused.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from spool import fsio

PERIOD_S = 2.0  # how often the daemon rewrites it
STALE_S = 30.0  # older than this, the daemon that wrote it is not turning its loop


def write(path: Path, data: dict[str, Any]) -> None:
    tmp = fsio.temp_name(path)
    try:
        with open(tmp, "w") as fh:
            json.dump(data, fh, default=str)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
