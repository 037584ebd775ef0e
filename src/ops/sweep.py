"""The orphan sweep: running jobs judged by liveness *and* progress, never by elapsed time alone.

A job recorded as running that this daemon's supervisor does not hold belongs
to a previous daemon (or, in a fleet, to a dead host).  Its worker is

* gone, or its pid now names another process (create_time differs): orphaned,
  nothing is signalled;
* alive but silent for ``stall_s``: its tree is killed (identity checked
  first), then orphaned;
* alive and progressing, however long it has run: left alone, so a long
  job is never run twice (Celery and Oban redeliver by elapsed time; we don't).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psutil

from processor.policy import Verdict, judge
from schema.jobs import Job, JobState
from schema.sqlite_store import SQLiteEventStore


@dataclass(frozen=True)
class Finding:
    job: Job
    verdict: Verdict
    progress_age_s: float


def probe(pid: int | None, create_time: float | None) -> tuple[bool, bool]:
    """(a process with this pid exists, it is the one recorded)."""
    if pid is None:
        return False, False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False, False
        return True, create_time is not None and abs(proc.create_time() - create_time) < 0.01
    except psutil.Error:
        return False, False


def judge_running(
    store: SQLiteEventStore,
    supervised: set[str],
    now: datetime,
    stall_s: float,
    probe_fn: Callable[[int | None, float | None], tuple[bool, bool]] = probe,
) -> list[Finding]:
    findings = []
    for job in store.jobs([JobState.running]):
        if job.id in supervised:
            continue
        exists, matches = probe_fn(job.pid, job.create_time)
        stamp = job.last_progress_at or job.started_at or job.updated_at
        age = max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds())
        findings.append(
            Finding(job, judge(exists=exists, identity_matches=matches, progress_age_s=age, stall_s=stall_s), age)
        )
    return findings


def sweep(
    store: SQLiteEventStore,
    supervised: set[str],
    now: datetime,
    stall_s: float,
    grace_s: float,
    orphan: Callable[[Job, str, bool], None],
    kill: Callable[[int, float, float], bool],
) -> list[Finding]:
    """Act on every finding; returns them (the slow ones included, untouched)."""
    findings = judge_running(store, supervised, now, stall_s)
    for f in findings:
        if f.verdict is Verdict.alive:
            continue
        killed = False
        if f.verdict is Verdict.hung and f.job.pid is not None and f.job.create_time is not None:
            killed = kill(f.job.pid, f.job.create_time, grace_s)
        orphan(f.job, f.verdict.value, killed)
    return findings
