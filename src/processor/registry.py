"""``state/workers.json``: the workers a daemon runs, by (wid, pid, create_time), for its successor.

After a ``kill -9`` of the daemon its workers are killed by the kernel on Linux (they ask for
``PR_SET_PDEATHSIG``); anywhere else, and for whatever a worker spawned, the next daemon started
with the same state directory kills what this file names - only where the recorded identity still
matches, so a reused pid is never signalled - and every process carrying a recorded worker's marker.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from processor.supervisor import WorkerProcess, kill_recorded, sweep_marked
from spool import fsio


def record(path: Path, instance: str, workers: Iterable[WorkerProcess]) -> None:
    entries = [
        {"wid": w.wid, "pid": w.pid, "create_time": w.create_time, "instance": instance} for w in workers if w.pid
    ]
    body = json.dumps(entries).encode()
    with contextlib.suppress(OSError):  # best effort: the kernel's death signal is the first line of defence
        if not path.exists() or path.read_bytes() != body:
            fsio.atomic_write(path, body)


def read(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def kill_leftovers(path: Path, grace_s: float) -> list[str]:
    """Kill the recorded workers of a previous daemon that still live (identity checked); their wids."""
    killed = []
    for e in read(path):
        pid, created, wid = e.get("pid"), e.get("create_time"), str(e.get("wid") or "")
        hit = isinstance(pid, int) and isinstance(created, float) and kill_recorded(pid, created, grace_s)
        if wid and (sweep_marked(wid) or hit):
            killed.append(wid)
        elif hit:
            killed.append(wid or str(pid))
    with contextlib.suppress(OSError):
        os.unlink(path)
    return killed
