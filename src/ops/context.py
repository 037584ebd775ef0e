"""What ops needs from a running daemon, and nothing more (ops must not reach into processor internals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processor.config import Settings
from schema.jobs import Job
from schema.sqlite_store import SQLiteEventStore
from spool.layout import Layout


@dataclass
class OpsContext:
    store: SQLiteEventStore
    layout: Layout
    settings: Settings
    now: Callable[[], datetime]
    log: Any
    supervised: Callable[[], set[str]] = set  # job ids this daemon's supervisor runs right now
    orphan: Callable[[Job, str, bool], None] | None = None  # record job.orphaned + retry
    rescan: Callable[[], int] | None = None
    counters: Callable[[], dict[str, Any]] = dict  # daemon-only numbers (log write errors, watcher restarts)
    extra: dict[str, Any] = field(default_factory=dict)
