"""Startup recovery: make the filesystem agree with the event log, for every crash window.

Runs once, after the lock is taken and before the first scan:

* a job recorded as running belongs to a dead daemon: kill its worker tree
  if (pid, create_time) still match, then ``job.orphaned`` and a retry;
* a job publishing its outputs finishes publishing;
* a queued or waiting job whose input is still in inbox/ (crash between
  ``job.submitted`` and the claim) or in failed/ (``spool retry``) gets it back;
* a finished job whose work/ dir remains finishes its move to done/ or failed/;
* a work/ dir that no job owns returns its input to the inbox.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from processor.lifecycle import Lifecycle
from processor.orphans import Orphans
from schema.errors import ConcurrencyError
from schema.jobs import Job, JobState
from schema.reasons import Reason
from spool import fsio, moves


@dataclass
class RecoveryReport:
    orphaned: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items() if v}


def recover(
    lifecycle: Lifecycle,
    orphans: Orphans,
    log: Any,
    may_take: Callable[[Job], bool] = lambda job: True,
) -> RecoveryReport:
    """``may_take``: in a fleet, whether a job left running or publishing is this daemon's to finish
    (its own previous instance, or a host whose lease ran out); another live host's work is left alone."""
    store, layout = lifecycle.store, lifecycle.layout
    report = RecoveryReport()
    live = store.jobs([JobState.running, JobState.publishing, JobState.queued, JobState.retry_wait])
    for job in live:
        if job.state is JobState.running and may_take(job):
            killed = orphans.record(job, Reason.daemon_died)
            if killed is not None:
                report.orphaned.append(job.id)
                report.killed += [job.id] if killed else []
        elif job.state is JobState.publishing and may_take(job):
            adopted = _adopted(orphans, job)
            if adopted is not None and lifecycle.quiet_wait(adopted) <= 0:
                with lifecycle.attempt(adopted.worker):
                    lifecycle.publish_when_quiet(adopted)
                report.published.append(job.id)
    for job in store.jobs([JobState.queued, JobState.retry_wait]):
        if not lifecycle.reconcile_input(job):
            lifecycle.fail_now(job, "input_missing", "the input is gone from work/, inbox/ and failed/")
            report.lost.append(job.id)
    _work_dirs(lifecycle, report, log)
    for top in (layout.outbox, layout.failed, layout.done, layout.reports):
        report.temps += [str(p) for p in fsio.sweep_temps(top)]
    if report.summary():
        log.warning("recovery", **report.summary())
    return report


def _adopted(orphans: Orphans, job: Job) -> Job | None:
    try:
        return orphans.adopt(job, hold=False)
    except ConcurrencyError:  # another host adopted it first
        return None


def _work_dirs(lifecycle: Lifecycle, report: RecoveryReport, log: Any) -> None:
    layout, store = lifecycle.layout, lifecycle.store
    try:
        entries = sorted(os.listdir(layout.work))
    except FileNotFoundError:
        return
    for name in entries:
        path = layout.work / name
        if name.startswith(".") or not path.is_dir():
            continue
        job = store.job(name)
        if job is None:
            returned = moves.unclaim(layout, path)
            report.returned += returned
            log.warning("recovery.unknown_work_dir", dir=name, returned=len(returned))
        elif job.state is JobState.succeeded:
            moves.finish(layout, job.id, job.source, job.done_path)
            report.finished.append(job.id)
        elif job.state in (JobState.failed, JobState.cancelled):
            lifecycle.quarantine(job)
            report.finished.append(job.id)
