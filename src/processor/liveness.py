"""Is the spool served?  What ``spool health`` and ``spool status`` learn from outside the daemon.

A daemon that is dead, or alive but no longer turning its loop, cannot raise an alert about
itself; neither can one writing into a database file that was deleted.  So these facts come from
the filesystem: the daemon lock (held or not), ``state/daemon.json`` (rewritten every couple of
seconds by a working daemon, with why intake is paused), the spool's folders and its database
file.  In a fleet the leases say which daemons are alive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from processor.lock import holder_pid
from schema import events as ev
from schema.jobs import JobState
from schema.store import EventStore
from spool import checks, statefile
from spool.layout import Layout
from spool.scan import Kind, scan

LOST_RECENT_S = 600.0  # a host whose lease ran out this recently (no clean stop) is reported lost


@dataclass
class Liveness:
    alive: bool
    pid: int | None
    paused: str | None = None
    problems: list[str] = field(default_factory=list)
    waiting: int = 0  # jobs queued, running or publishing, plus files in the inbox (at least one)
    hosts_alive: int | None = None  # fleets: daemons with a live lease
    hosts_lost: list[str] = field(default_factory=list)  # fleets: leases run out recently, without a clean stop

    def notes(self) -> list[str]:
        """What the report lists beside the alerts: each problem, each lost host."""
        return [
            *self.problems,
            *(f"host {h} stopped renewing its lease (dead, frozen or cut off)" for h in self.hosts_lost),
        ]

    def counters(self) -> dict[str, Any]:
        """Metrics for the alert rules (the daemon reports the same names about itself)."""
        counters = {
            "daemon_alive": 1 if self.alive else 0,
            "daemon_down_with_work": 1 if not self.alive and self.waiting else 0,
            "spool_problems": len(self.problems),
            "intake_paused": 1 if self.paused else 0,
        }
        if self.hosts_alive is not None:
            counters |= {"fleet_hosts_alive": self.hosts_alive, "fleet_hosts_lost": len(self.hosts_lost)}
        return counters


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
    hosts_alive: int | None = None
    lost: list[str] = []
    if store is not None and store.fleet:
        hosts_alive, lost = fleet_hosts(store)
        alive = hosts_alive > 0
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
    return Liveness(
        alive=alive,
        pid=pid,
        paused=paused,
        problems=problems,
        waiting=_waiting(layout, store),
        hosts_alive=hosts_alive,
        hosts_lost=lost,
    )


def fleet_hosts(store: EventStore, recent_s: float = LOST_RECENT_S) -> tuple[int, list[str]]:
    """(daemons with a live lease, hosts whose lease ran out within ``recent_s`` without a clean stop)."""
    now = store.db_now()
    since = (datetime.fromisoformat(now) - timedelta(seconds=recent_s)).isoformat(timespec="microseconds")
    leases = store.leases()
    alive = [lease for lease in leases if lease["until"] > now]
    expired = [lease for lease in leases if since < lease["until"] <= now]
    if not expired:
        return len(alive), []
    stopped = {
        r.event.instance
        for r in store.read_all(0, types=(ev.DaemonStopped.type,))
        if isinstance(r.event, ev.DaemonStopped) and r.at >= since
    }
    live_hosts = {lease["host"] for lease in alive}
    lost = sorted(
        {lease["host"] for lease in expired if lease["instance"] not in stopped and lease["host"] not in live_hosts}
    )
    return len(alive), lost


def _waiting(layout: Layout, store: EventStore | None) -> int:
    n = 0
    if store is not None:
        counts = store.count_by_state()
        live = (JobState.queued, JobState.retry_wait, JobState.running, JobState.publishing)
        n = sum(counts.get(s.value, 0) for s in live)
    if n == 0:
        n = next((1 for e in scan(layout.inbox) if e.kind in (Kind.candidate, Kind.special)), 0)
    return n
