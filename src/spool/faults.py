"""Named crash points for the reliability suite (test-only).

``SPOOL_FAULT_POINT=claim`` makes the daemon ``os._exit(137)`` the first time
it reaches the ``claim`` step (``SPOOL_FAULT_SKIP=N`` lets N hits pass first),
as a ``kill -9`` at exactly that instant would.  The entry point arms it from
its environment once; nothing else reads the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

POINTS = ("claim", "append", "spawn", "tmp_write", "rename", "dir_fsync", "completion")

_armed: dict[str, int] = {}


def configure(env: Mapping[str, str]) -> None:
    _armed.clear()
    name = env.get("SPOOL_FAULT_POINT", "")
    if name:
        if name not in POINTS:
            raise ValueError(f"SPOOL_FAULT_POINT={name!r}; known points: {', '.join(POINTS)}")
        _armed[name] = int(env.get("SPOOL_FAULT_SKIP", "0") or 0)


def point(name: str) -> None:
    if name not in _armed:
        return
    if _armed[name] > 0:
        _armed[name] -= 1
        return
    os._exit(137)
