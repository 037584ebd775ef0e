"""Orphans, in one home: judge a running job nobody here supervises, kill what must die, record, adopt.

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
The scheduled sweep (ops) and the start-up recovery both record through
:meth:`Orphans.record`, so each verdict is worded once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil

from processor.lifecycle import Lifecycle
from processor.policy import Verdict, judge
from processor.supervisor import kill_recorded
from schema import events as ev
from schema.errors import ConcurrencyError, IllegalTransition
from schema.jobs import Job, JobState
from schema.reasons import Reason
from schema.store import EventStore

Probe = Callable[[int | None, float | None], tuple[bool, bool]]
Kill = Callable[[int, float, float], bool]

# verdict -> what job.failed says (the verdicts of policy.Verdict, and recovery's daemon_died)
MESSAGES = {
    Verdict.lease_expired: "the daemon running it stopped renewing its lease; the job moves to a live host",
    Verdict.hung: "its worker (left by a previous daemon) made no progress and was killed",
    Verdict.dead: "its worker (left by a previous daemon) is gone",
    Verdict.pid_mismatch: "its worker's pid now belongs to another process, which was not signalled",
    Reason.daemon_died: "the daemon stopped while this job ran; it resumes from its last checkpoint",
}


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
    probe_fn: Probe = probe,
    classify: Callable[[Job], str | None] = lambda job: None,
    may_take: Callable[[Job], bool] = lambda job: True,
) -> list[Finding]:
    """Every running or publishing job this daemon does not hold, with its verdict (pure but for probe)."""
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


def sweep_jobs(
    findings: list[Finding],
    grace_s: float,
    act: Callable[[Job, str, bool], None],
    kill: Kill = kill_recorded,
) -> list[Finding]:
    """Act on every finding that is not ``alive`` (a hung worker's tree killed first); returns them all."""
    for f in findings:
        if f.verdict is Verdict.alive:
            continue
        killed = False
        if f.verdict is Verdict.hung and f.job.pid is not None and f.job.create_time is not None:
            killed = kill(f.job.pid, f.job.create_time, grace_s)
        act(f.job, f.verdict.value, killed)
    return findings


class Orphans:
    """The daemon's side of orphans: the scheduled sweep's one entry point and recovery's recorder."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        *,
        host: str,
        instance: str,
        supervised: Callable[[], set[str]],
        hold: Callable[[Job], None],
        wake: Callable[[], None],
        classify: Callable[[Job], str | None],
        may_take: Callable[[Job], bool],
        now: Callable[[], datetime],
        log: Any,
        kill: Kill = kill_recorded,
    ) -> None:
        self.lifecycle, self.host, self.instance = lifecycle, host, instance
        self._supervised, self._hold, self._wake = supervised, hold, wake
        self._classify, self._may_take, self._now, self.log, self._kill = classify, may_take, now, log, kill

    def sweep(self) -> list[Finding]:
        """Judge every running job nobody here holds and act on the verdicts; what ops schedules."""
        s = self.lifecycle.settings
        found = judge_running(
            self.lifecycle.store,
            self._supervised(),
            self._now(),
            s.stall_s,
            classify=self._classify,
            may_take=self._may_take,
        )
        acted = [f for f in sweep_jobs(found, s.grace_s, self.act, self._kill) if f.verdict is not Verdict.alive]
        if acted:
            self.log.warning("sweep", orphaned=[(f.job.id, f.verdict.value) for f in acted])
        return found

    def act(self, job: Job, verdict: str, killed: bool) -> None:
        """Adopt a dead host's publication, or record a running job orphaned and retry it.

        ``job`` is as it was judged; if it changed since (another host acted, its own
        daemon recorded a result), nothing is written: the next sweep judges it afresh.
        """
        if job.state is JobState.publishing:
            try:
                self.adopt(job, hold=True)
            except (ConcurrencyError, IllegalTransition) as e:
                self.log.info("sweep.moved_on", job_id=job.id, verdict=verdict, error=str(e)[:200])
            return
        self.record(job, verdict, killed)

    def record(self, job: Job, verdict: str, killed: bool = False) -> bool | None:
        """``job.orphaned`` and a retry, its worker on this host killed first (identity checked).

        Returns whether a worker was killed, or None when the job had moved on.
        """
        here = job.host in (None, "", self.host)  # a pid recorded on another host means nothing here
        kills = verdict in (Verdict.lease_expired, Reason.daemon_died)
        if not killed and kills and here and job.pid is not None and job.create_time is not None:
            killed = self._kill(job.pid, job.create_time, self.lifecycle.settings.grace_s)
        reason = Reason.hung if verdict == Verdict.hung else Reason.daemon_died
        try:
            self.lifecycle.fail(
                job,
                reason,
                MESSAGES.get(verdict, verdict),  # type: ignore[call-overload]
                retryable=True,
                prefix=[ev.JobOrphaned(reason=verdict, pid=job.pid, killed=killed)],
                judged=True,
            )
        except (ConcurrencyError, IllegalTransition) as e:  # in a fleet, another daemon got there first
            self.log.info("sweep.moved_on", job_id=job.id, verdict=verdict, error=str(e)[:200])
            return None
        self._wake()
        return killed

    def adopt(self, job: Job, *, hold: bool) -> Job:
        """Make a dead daemon's publication ours (fenced against its return); ``hold``: finish it on the loop."""
        if not self.lifecycle.store.fleet or job.instance == self.instance:
            return job
        job = self.lifecycle.adopt(job, f"{self.instance}-publish", self.host, self.instance)
        if hold:
            self._hold(job)
        return job
