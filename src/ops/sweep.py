"""The orphan sweep: running jobs judged by liveness *and* progress, never by elapsed time alone.

A job recorded as running that this daemon's supervisor does not hold belongs
to a previous daemon (or, in a fleet, to a dead host).  Its worker is

* gone, or its pid now names another process (create_time differs): orphaned,
  nothing is signalled;
* alive but silent for ``stall_s``: its tree is killed (identity checked
  first), then orphaned;
* alive and progressing, however long it has run: left alone, so a long
  job is never run twice (Celery and Oban redeliver by elapsed time; we don't).

In a fleet a job on another host is judged by that host's lease alone; once
it has run out, a running job is orphaned and retried here, and a job that
was publishing is adopted (its transcript is staged in the shared spool).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psutil

from processor.policy import Verdict, judge
from schema.jobs import Job, JobState
from schema.store import EventStore


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
    store: EventStore,
    supervised: set[str],
    now: datetime,
    stall_s: float,
    probe_fn: Callable[[int | None, float | None], tuple[bool, bool]] = probe,
    classify: Callable[[Job], str | None] = lambda job: None,
    may_take: Callable[[Job], bool] = lambda job: True,
) -> list[Finding]:
    findings = []
    for job in store.jobs([JobState.running, JobState.publishing]):
        if job.id in supervised:
            continue
        stamp = job.last_progress_at or job.started_at or job.updated_at
        age = max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds())
        remote = classify(job)
        if job.state is JobState.publishing:  # only a fleet's: a dead host's publication is adopted
            if remote == "lease_expired":
                findings.append(Finding(job, Verdict.lease_expired, age))
            continue
        if remote is not None:  # another host's job: its pid means nothing here; its lease does
            verdict = Verdict.lease_expired if remote == "lease_expired" else Verdict.alive
        elif not may_take(job):  # another live daemon on this host supervises it
            verdict = Verdict.alive
        else:
            exists, matches = probe_fn(job.pid, job.create_time)
            verdict = judge(exists=exists, identity_matches=matches, progress_age_s=age, stall_s=stall_s)
        findings.append(Finding(job, verdict, age))
    return findings


def sweep(
    store: EventStore,
    supervised: set[str],
    now: datetime,
    stall_s: float,
    grace_s: float,
    orphan: Callable[[Job, str, bool], None],
    kill: Callable[[int, float, float], bool],
    classify: Callable[[Job], str | None] = lambda job: None,
    may_take: Callable[[Job], bool] = lambda job: True,
) -> list[Finding]:
    """Act on every finding; returns them (the slow ones included, untouched)."""
    findings = judge_running(store, supervised, now, stall_s, classify=classify, may_take=may_take)
    for f in findings:
        if f.verdict is Verdict.alive:
            continue
        killed = False
        if f.verdict is Verdict.hung and f.job.pid is not None and f.job.create_time is not None:
            killed = kill(f.job.pid, f.job.create_time, grace_s)
        orphan(f.job, f.verdict.value, killed)
    return findings
