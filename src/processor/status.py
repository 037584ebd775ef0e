"""What `spool status` (and `top`, and the health report) shows: one dictionary from the store and the spool."""

from __future__ import annotations

from typing import Any

from processor import views
from processor.config import Settings
from schema.jobs import JobState
from schema.store import EventStore


def status_data(settings: Settings, store: EventStore) -> dict[str, Any]:
    from processor import liveness
    from spool.scan import Kind, scan

    layout = settings.layout
    live = liveness.inspect(layout, store)
    counts = store.count_by_state()
    running = [views.job_item(j) for j in store.jobs([JobState.running, JobState.publishing])]
    inbox = sum(1 for e in scan(layout.inbox) if e.kind in (Kind.candidate, Kind.special))
    return {
        "root": str(layout.root),
        "daemon": {"running": live.alive, "pid": live.pid, "stale": live.pid is not None and not live.alive},
        "paused": live.paused,
        "problems": live.problems,
        "counts": {s: counts.get(s, 0) for s in views.STATE_ORDER},
        "queue_depth": counts.get("queued", 0) + counts.get("retry_wait", 0),
        "inbox_files": inbox,
        "running": running,
        "alerts": store.firing_alerts() if hasattr(store, "firing_alerts") else [],
        **({"fleet": fleet_data(store)} if store.fleet else {}),
    }


def fleet_data(store: EventStore, recent_s: float = 600.0) -> list[dict[str, Any]]:
    """The fleet's daemons: live ones, and those whose lease ended in the last ``recent_s``."""
    from datetime import datetime, timedelta

    now = store.db_now()
    since = (datetime.fromisoformat(now) - timedelta(seconds=recent_s)).isoformat(timespec="microseconds")
    holder = store.leader_session()
    leader = holder.instance if holder else None
    running: dict[str, int] = {}
    for job in store.jobs([JobState.running, JobState.publishing]):
        running[job.instance or ""] = running.get(job.instance or "", 0) + 1
    return [
        {
            "host": lease["host"],
            "instance": lease["instance"],
            "pid": lease["pid"],
            "alive": lease["until"] > now,
            "lease_until": lease["until"],
            "leader": lease["instance"] == leader,
            "jobs_running": running.get(lease["instance"], 0),
        }
        for lease in sorted(store.leases(), key=lambda row: (row["host"], row["until"]))
        if lease["until"] > since
    ]
