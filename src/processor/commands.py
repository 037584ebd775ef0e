"""What other processes ask of the daemon through the log: cancels and manual retries (``spool cancel/retry``).

The CLI (and the web face) only append ``job.cancel_requested`` / ``job.requeued``;
the daemon, the one process that runs jobs, acts on them here, reading the log
from a cursor, and at start on what was asked while no daemon ran.
"""

from __future__ import annotations

import structlog

from processor.jobcontrol import JobControl
from processor.lifecycle import Lifecycle
from schema import events as ev
from schema.jobs import JobState


class Commands:
    def __init__(self, lifecycle: Lifecycle, control: JobControl, cursor: int) -> None:
        self.store, self.lifecycle, self.control, self.cursor = lifecycle.store, lifecycle, control, cursor

    def follow(self) -> None:
        """Act on what was appended since the last look."""
        types = (ev.JobCancelRequested.type, ev.JobRequeued.type)
        for rec in self.store.read_all(self.cursor, types=types):
            self.cursor = max(self.cursor, rec.position)
            job = self.store.job(ev.job_id_of(rec.stream) or "")
            if job is None:
                continue
            if isinstance(rec.event, ev.JobCancelRequested) and job.cancel_requested:
                with structlog.contextvars.bound_contextvars(job_id=job.id):
                    self.control.cancel(job)
            elif isinstance(rec.event, ev.JobRequeued) and job.state is JobState.queued:
                self.lifecycle.reconcile_input(job)
                self.control.wake()
        self.cursor = max(self.cursor, self.store.last_position())

    def pending_cancels(self) -> None:
        """Cancels asked for while no daemon ran (held publications included)."""
        for job in self.store.jobs([JobState.queued, JobState.retry_wait, JobState.publishing]):
            if job.cancel_requested and (job.state is not JobState.publishing or job.id in self.control.owned()):
                self.control.cancel(job)
