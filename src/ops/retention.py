"""Log retention: per-job logs beyond an age or a total size are deleted, oldest first."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ops.metrics import log_files


@dataclass(frozen=True)
class Pruned:
    files: int
    bytes: int


def prune_logs(logs: Path, *, now_ts: float, max_age_s: float, max_total_bytes: float, keep: set[str]) -> Pruned:
    """Delete logs older than ``max_age_s``, then the oldest until the rest fit in ``max_total_bytes``.

    Logs of jobs in ``keep`` (still running or queued) are never deleted.
    """
    entries = []
    for p in log_files(logs):
        if p.name.split(".log", 1)[0] in keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            st = p.stat()
            entries.append((st.st_mtime, st.st_size, p))
    entries.sort()
    total = sum(size for _, size, _ in entries) + sum(
        p.stat().st_size for p in log_files(logs) if p.name.split(".log", 1)[0] in keep
    )
    files = freed = 0
    for mtime, size, path in entries:
        if now_ts - mtime < max_age_s and total <= max_total_bytes:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            files += 1
            freed += size
            total -= size
    return Pruned(files, freed)
