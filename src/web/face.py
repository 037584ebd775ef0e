"""What every endpoint shares: the settings, the store, and the few things done to jobs.

The web face is a reader and a commander: it reads the projection and the log,
appends the same commands the CLI appends (``JobCancelRequested``,
``JobRequeued``, with the CLI's idempotency keys: a double click or a retried
request is one command), and never runs or moves a job itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from processor import views
from processor.config import Settings
from processor.status import status_data
from processor.submit import daemon_running
from schema import events as ev
from schema.errors import JobNotFound
from schema.jobs import Job, JobState
from schema.store import EventStore
from spool.layout import Layout
from web.errors import ApiError

JOB_REF = re.compile(r"[0-9a-f]{1,32}")


@dataclass
class Face:
    settings: Settings
    store: EventStore
    token: str = ""
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def layout(self) -> Layout:
        return self.settings.layout

    def job(self, ref: str) -> Job:
        """A job by id (or unique prefix); anything but lowercase hex names no job and never reaches SQL."""
        if not JOB_REF.fullmatch(ref):
            raise JobNotFound(ref)
        return self.store.find_job(ref)

    def daemon_running(self) -> bool:
        return daemon_running(self.settings, self.store)

    def status(self) -> dict[str, Any]:
        data = status_data(self.settings, self.store)
        data["web"] = {"started_at": self.started_at, "token": bool(self.token)}
        return data

    def detail(self, job: Job) -> dict[str, Any]:
        doc = views.job_detail(job, self.store.read(ev.job_stream(job.id)))
        doc["name"] = views.display(job.name)
        return doc

    def cancel(self, job: Job) -> Job:
        if job.state.terminal:
            raise ApiError(409, "not_cancellable", f"job {job.id} is already {job.state.value}", state=job.state.value)
        if job.cancel_requested:  # a second click: the first request stands (the key alone would not see it)
            return job
        self.store.append(
            ev.job_stream(job.id), [ev.JobCancelRequested(by="web")], idempotency_key=f"{job.id}:cancel:{job.version}"
        )
        return self.store.job(job.id) or job

    def retry(self, job: Job) -> Job:
        """What ``spool retry`` does, with its refusals as 409s."""
        if job.state not in (JobState.failed, JobState.cancelled):
            raise ApiError(
                409, "not_retryable", f"job {job.id} is {job.state.value}; only failed or cancelled jobs can be retried"
            )
        if job.reason == "invalid_options":
            raise ApiError(409, "invalid_options", f"job {job.id} failed on its options; submit the file again")
        failed = self.layout.failed / (job.failed_path or "")
        if not job.failed_path or not os.path.lexists(failed):
            raise ApiError(409, "input_gone", f"the input of job {job.id} is no longer in failed/; submit it again")
        self.store.append(
            ev.job_stream(job.id),
            [ev.JobRequeued(from_path=job.failed_path, by="web")],
            idempotency_key=f"{job.id}:requeue:{job.version}",
        )
        return self.store.job(job.id) or job


def item(job: Job) -> dict[str, Any]:
    """A job as lists show it: ``spool jobs --json``'s item."""
    return views.job_item(job)
