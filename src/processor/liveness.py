"""Is the spool served?  What ``spool health`` and ``spool status`` learn from outside the daemon.

A daemon that is dead, or alive but no longer turning its loop, cannot raise an alert about
itself; neither can one writing into a database file that was deleted.  So these facts come from
the filesystem: the daemon lock (held or not), ``state/daemon.json`` (rewritten every couple of
seconds by a working daemon, with why intake is paused), the spool's folders and its database
file.  In a fleet the leases say which daemons are alive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from processor.lock import holder_pid
from schema.jobs import JobState
from schema.store import EventStore
from spool import checks, statefile
from spool.layout import Layout
from spool.scan import Kind, scan


@dataclass
class Liveness:
    alive: bool
    pid: int | None
    paused: str | None = None
    problems: list[str] = field(default_factory=list)
    waiting: int = 0  # jobs queued, running or publishing, plus files in the inbox (at least one)

    def counters(self) -> dict[str, Any]:
        """Metrics for the alert rules (the daemon reports the same names about itself)."""
        return {
            "daemon_alive": 1 if self.alive else 0,
            "daemon_down_with_work": 1 if not self.alive and self.waiting else 0,
            "spool_problems": len(self.problems),
            "intake_paused": 1 if self.paused else 0,
        }


def daemon_state(layout: Layout, now: datetime) -> tuple[int | None, dict[str, Any] | None, float | None]:
    """(lock holder pid, its daemon.json if it wrote one, seconds since it did)."""
    pid = holder_pid(layout.lock)
    state = statefile.read(layout.daemon_state)
    if state is None or pid is None or state.get("pid") != pid:
        return pid, None, None
    try:
        age = (now - datetime.fromisoformat(str(state["updated_at"]))).total_seconds()
    except (KeyError, ValueError):
        return pid, None, None
    return pid, state, age


def inspect(layout: Layout, store: EventStore | None, now: datetime | None = None) -> Liveness:
    """Everything this process can see about whether the spool is being served."""
    now = now or datetime.now(UTC)
    pid, state, age = daemon_state(layout, now)
    problems = checks.folder_problems(layout)
    fresh = state is not None and age is not None and age < statefile.STALE_S
    if store is not None and store.fleet:
        alive = _fleet_alive(store)
    else:
        alive = pid is not None and fresh
        if pid is not None and not fresh:
            since = f"for {age:.0f} s" if age is not None else "at all"
            problems.append(f"the daemon (pid {pid}) holds its lock but has not reported {since}: frozen or stuck")
    paused = None
    if fresh and state is not None:
        problems += [str(p) for p in state.get("problems") or [] if str(p) not in problems]
        paused = state.get("paused") or None
        if store is not None and not store.fleet:
            expected = state.get("db")
            db = checks.database_problem(layout.db, tuple(expected) if isinstance(expected, list) else None)
            if db and db not in problems:
                problems.append(db)
    return Liveness(alive=alive, pid=pid, paused=paused, problems=problems, waiting=_waiting(layout, store))


def _fleet_alive(store: EventStore) -> bool:
    now = store.db_now()
    return any(lease["until"] > now for lease in store.leases())


def _waiting(layout: Layout, store: EventStore | None) -> int:
    n = 0
    if store is not None:
        counts = store.count_by_state()
        live = (JobState.queued, JobState.retry_wait, JobState.running, JobState.publishing)
        n = sum(counts.get(s.value, 0) for s in live)
    if n == 0:
        n = next((1 for e in scan(layout.inbox) if e.kind in (Kind.candidate, Kind.special)), 0)
    return n
