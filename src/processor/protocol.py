"""The JSON-lines protocol between the daemon and its workers.

The worker never touches the database: it reads one JSON object per line on
stdin and writes one per line on stdout; its stderr is the job log.

daemon -> worker: ``job``, ``go``, ``skip``, ``shutdown``
worker -> daemon: ``ready``, ``probe``, ``progress``, ``segments``, ``result``, ``error``
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 64 * 1024 * 1024  # a segments message of a very long file still fits


def encode(msg: dict[str, Any]) -> bytes:
    return (json.dumps(msg, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def decode(line: bytes) -> dict[str, Any] | None:
    """One message, or None for a line that is not one (stray output is not fatal)."""
    line = line.strip()
    if not line.startswith(b"{"):
        return None
    try:
        msg = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return msg if isinstance(msg, dict) and isinstance(msg.get("type"), str) else None
