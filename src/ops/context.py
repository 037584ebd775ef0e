"""What ops needs from a running daemon, and nothing more (ops must not reach into processor internals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processor.config import Settings
from schema.jobs import Job
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
    orphan: Callable[[Job, str, bool], None] | None = None  # record job.orphaned + retry
    rescan: Callable[[], int] | None = None
    counters: Callable[[], dict[str, Any]] = dict  # daemon-only numbers (log write errors, watcher restarts)
    is_leader: Callable[[], bool] = lambda: True  # fleets: only the leader runs the sweeps
    classify: Callable[[Job], str | None] = lambda job: None  # fleets: 'alive' / 'lease_expired' off this host
    may_take: Callable[[Job], bool] = lambda job: True  # fleets: whose orphans this daemon may declare
    extra: dict[str, Any] = field(default_factory=dict)
