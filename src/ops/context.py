"""What ops needs from a running daemon, and nothing more (built by the composition root, spoolscribe/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processor.config import Settings
from schema.store import EventStore
from spool.layout import Layout


@dataclass
class OpsContext:
    store: EventStore
    layout: Layout
    settings: Settings
    now: Callable[[], datetime]
    log: Any
    supervised: Callable[[], set[str]] = set  # job ids this daemon's supervisor runs right now
    sweep: Callable[[], list[Any]] | None = None  # the orphan sweep (processor.orphans): judge, kill, record
    rescan: Callable[[], int] | None = None
    counters: Callable[[], dict[str, Any]] = dict  # daemon-only numbers (log write errors, watcher restarts)
    is_leader: Callable[[], bool] = lambda: True  # fleets: only the leader runs the sweeps
    extra: dict[str, Any] = field(default_factory=dict)
