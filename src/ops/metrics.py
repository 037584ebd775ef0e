"""Metrics from the projection and the filesystem: what the alerts, reports and /metrics read.

Computed the same way inside the daemon and by ``spool health`` outside it;
the daemon adds counters only it knows (log write errors, watcher restarts).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from ground.times import iso
from schema.jobs import Job, JobState
from schema.store import EventStore
from spool.layout import Layout

# name -> what it means (also the help text of the Prometheus gauges)
DESCRIPTIONS = {
    "total_jobs": "jobs ever submitted",
    "jobs_running": "jobs running or publishing",
    "jobs_with_pid": "running jobs whose worker (pid, create_time) is recorded, percent",
    "orphaned_cleaned": "jobs orphaned (worker or daemon died, or hung) within the window",
    "active_processes": "running jobs whose recorded worker process is alive",
    "stuck_processes": "running jobs whose worker is alive but has made no progress for stuck_after_s",
    "avg_heartbeat_delay": "mean seconds since the last heartbeat of running jobs",
    "queue_depth": "jobs queued or waiting for a retry",
    "oldest_queued_age_s": "age of the oldest queued job, seconds",
    "errors_count": "jobs that failed for good within the window",
    "attempt_failures": "failed attempts (retried or final) within the window",
    "log_files_count": "per-job log files, rotated pieces included",
    "log_files_size_mb": "per-job log files, total size",
    "db_size_mb": "event store size (database + WAL)",
    "free_disk_mb": "free space on the spool's filesystem",
    "throughput": "audio seconds transcribed per wall-clock second over the window",
    "succeeded_window": "jobs succeeded within the window",
    "failed_window": "jobs failed for good within the window",
    "daemon_alive": "1 while a daemon serves this spool (its lock held and its loop turning; in a fleet: a live lease)",
    "daemon_down_with_work": "1 when no daemon serves the spool while jobs or inbox files wait",
    "spool_problems": "problems with the spool's folders or database file (missing, unwritable, deleted)",
    "intake_paused": "1 while intake is paused (disk below the floor, store refusing, a spool problem)",
    "folders_recreated": "spool folders found missing and made again within the window",
    "fleet_hosts_alive": "fleets: daemons with a live lease",
    "fleet_hosts_lost": "fleets: hosts whose lease ran out in the last 10 minutes without a clean stop",
    "internal_errors": "unexpected exceptions the daemon's loop caught as a last resort since it started (bugs)",
}


def _alive(job: Job) -> bool:
    if job.pid is None or job.create_time is None:
        return False
    try:
        proc = psutil.Process(job.pid)
        return abs(proc.create_time() - job.create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _age(now: datetime, stamp: str | None) -> float:
    return max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds()) if stamp else 0.0


def log_files(logs: Path) -> list[Path]:
    """Per-job logs and their rotated pieces (the daemon's own log rotates itself)."""
    try:
        return [p for p in logs.iterdir() if p.is_file() and not p.name.startswith("daemon.log") and ".log" in p.name]
    except FileNotFoundError:
        return []


def compute(
    store: EventStore,
    layout: Layout,
    *,
    now: datetime,
    window_s: float,
    stuck_after_s: float,
    counters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    counts = store.count_by_state()
    since = iso(now - timedelta(seconds=window_s))
    window = store.window_counts(since)
    running = store.jobs([JobState.running])
    alive = [j for j in running if _alive(j)]
    stuck = [j for j in alive if _age(now, j.last_progress_at) >= stuck_after_s]
    delays = [_age(now, j.last_heartbeat_at) for j in running]
    logs = log_files(layout.logs)
    log_bytes = 0
    for p in logs:
        with contextlib.suppress(FileNotFoundError):
            log_bytes += p.stat().st_size
    first = store.first_event_at()
    span = min(window_s, _age(now, first)) if first else window_s
    metrics: dict[str, Any] = {
        "total_jobs": sum(counts.values()),
        "jobs_running": counts.get("running", 0) + counts.get("publishing", 0),
        "jobs_with_pid": round(100.0 * sum(1 for j in running if j.pid and j.create_time) / len(running), 1)
        if running
        else 100.0,
        "orphaned_cleaned": window["orphaned"],
        "active_processes": len(alive),
        "stuck_processes": len(stuck),
        "avg_heartbeat_delay": round(sum(delays) / len(delays), 2) if delays else 0.0,
        "queue_depth": counts.get("queued", 0) + counts.get("retry_wait", 0),
        "oldest_queued_age_s": round(_age(now, window["oldest_queued_at"]), 1),
        "errors_count": window["final_failures"],
        "attempt_failures": window["attempt_failures"],
        "log_files_count": len(logs),
        "log_files_size_mb": round(log_bytes / 2**20, 3),
        "db_size_mb": round(store.size_bytes() / 2**20, 3),
        "free_disk_mb": shutil.disk_usage(layout.root).free // 2**20,
        "throughput": round(window["audio_s"] / span, 4) if span > 0 else 0.0,
        "succeeded_window": window["finished"].get("succeeded", 0),
        "failed_window": window["finished"].get("failed", 0),
        "folders_recreated": window["folders_recreated"],
        "daemon_alive": 1,  # computed inside the daemon; from outside, ops.liveness overrides these four
        "daemon_down_with_work": 0,
        "spool_problems": 0,
        "intake_paused": 0,
        "internal_errors": 0,
        "fleet_hosts_alive": 0,
        "fleet_hosts_lost": 0,
        "counts": {s.value: counts.get(s.value, 0) for s in JobState},
    }
    metrics.update(counters or {})
    return metrics


def disk_free_mb(path: Path) -> int:
    return shutil.disk_usage(path).free // 2**20 if os.path.exists(path) else 0
