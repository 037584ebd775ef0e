"""Named crash points for the reliability suite (test-only).

``SPOOL_FAULT_POINT=claim`` makes the daemon ``os._exit(137)`` the first time
it reaches the ``claim`` step (``SPOOL_FAULT_SKIP=N`` lets N hits pass first),
as a ``kill -9`` at exactly that instant would; ``SPOOL_FAULT_RAISE=claim:2``
raises an unexpected exception there twice instead (the bulkheads' test).  The
entry point arms them from its environment once; nothing else reads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

POINTS = ("claim", "append", "spawn", "tmp_write", "rename", "dir_fsync", "completion")

_armed: dict[str, int] = {}
_raising: dict[str, list[int]] = {}  # point -> [hits still to let pass, raises left]


class InjectedFault(RuntimeError):
    """Raised at a named point by ``SPOOL_FAULT_RAISE``: a bug nobody foresaw, at exactly that step."""


def configure(env: Mapping[str, str]) -> None:
    """``SPOOL_FAULT_POINT=claim`` dies there; ``SPOOL_FAULT_RAISE=claim:N[:SKIP]`` raises there N times
    (after letting SKIP hits pass)."""
    _armed.clear()
    _raising.clear()
    name = env.get("SPOOL_FAULT_POINT", "")
    if name:
        if name not in POINTS:
            raise ValueError(f"SPOOL_FAULT_POINT={name!r}; known points: {', '.join(POINTS)}")
        _armed[name] = int(env.get("SPOOL_FAULT_SKIP", "0") or 0)
    raising, _, rest = env.get("SPOOL_FAULT_RAISE", "").partition(":")
    if raising:
        if raising not in POINTS:
            raise ValueError(f"SPOOL_FAULT_RAISE={raising!r}; known points: {', '.join(POINTS)}")
        times, _, skip = rest.partition(":")
        _raising[raising] = [int(skip or 0), int(times or 1)]


def point(name: str) -> None:
    pending = _raising.get(name)
    if pending is not None and pending[1] > 0:
        if pending[0] > 0:
            pending[0] -= 1
        else:
            pending[1] -= 1
            raise InjectedFault(f"injected fault at {name}")
    if name not in _armed:
        return
    if _armed[name] > 0:
        _armed[name] -= 1
        return
    os._exit(137)
