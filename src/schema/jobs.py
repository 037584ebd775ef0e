"""A job's state and the pure fold that derives it from its events.

``apply(job, event, at=..., version=...)`` is the only way a :class:`Job`
changes.  It never reads a clock or a disk: replaying the same events gives the
same job, which is what ``spool replay --verify`` checks against the stored
projection.  Transitions not in :data:`TRANSITIONS` raise
:class:`IllegalTransition` naming the current and the allowed states.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from schema import events as ev
from schema.errors import IllegalTransition
from schema.reasons import Reason


class JobState(enum.StrEnum):
    """Where a job is in its life.  String-valued so the database stays readable."""

    queued = "queued"
    """Claimed into work/<job>/ and waiting for a free worker."""
    running = "running"
    """An attempt is on a worker whose (pid, create_time) is recorded."""
    retry_wait = "retry_wait"
    """The last attempt failed; the next may start at ``not_before``."""
    publishing = "publishing"
    """Outputs are staged; moving them into outbox/ is in progress or interrupted."""
    succeeded = "succeeded"
    """Terminal: outputs in outbox/."""
    failed = "failed"
    """Terminal: input in failed/ with an error.json saying why."""
    cancelled = "cancelled"
    """Terminal: stopped on request; input in failed/ with reason ``cancelled``."""

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})
ACTIVE = frozenset({JobState.running, JobState.publishing})

# event type -> states it may be applied in (None: only to a job that does not exist yet)
_LIVE = {JobState.queued, JobState.running, JobState.retry_wait, JobState.publishing}
TRANSITIONS: dict[str, frozenset[JobState] | None] = {
    ev.JobSubmitted.type: None,
    ev.JobStarted.type: frozenset({JobState.queued, JobState.retry_wait}),
    ev.JobProbed.type: frozenset({JobState.running}),
    ev.JobHeartbeat.type: frozenset({JobState.running}),
    ev.JobProgressed.type: frozenset({JobState.running}),
    ev.JobSegments.type: frozenset({JobState.running}),
    ev.JobTranscribed.type: frozenset({JobState.running}),
    ev.JobDuplicate.type: frozenset({JobState.running}),
    ev.JobSucceeded.type: frozenset({JobState.publishing}),
    ev.JobFailed.type: frozenset(_LIVE),
    ev.JobRetryScheduled.type: frozenset({JobState.retry_wait}),
    ev.JobOrphaned.type: frozenset({JobState.running}),
    ev.JobAdopted.type: frozenset({JobState.publishing}),
    ev.JobCancelRequested.type: frozenset(JobState),
    ev.JobCancelled.type: frozenset({JobState.queued, JobState.running, JobState.retry_wait, JobState.publishing}),
    ev.JobRequeued.type: frozenset({JobState.failed, JobState.cancelled}),
    ev.JobInputChanged.type: frozenset({JobState.running, JobState.retry_wait, JobState.queued, JobState.publishing}),
}


@dataclass(frozen=True, kw_only=True)
class Job:
    """The projection of one job's stream.  Every field is derived from events."""

    id: str
    state: JobState
    version: int
    source: str
    size: int
    mtime_ns: int
    options: dict[str, Any]
    options_key: str
    sidecar: str | None
    submitted_at: str
    updated_at: str
    settled_by: str = "looks"
    attempts: int = 0  # attempts started in the current round (reset by a requeue)
    total_attempts: int = 0
    shutdowns: int = 0  # attempts ended by a clean daemon stop: no evidence against the job
    worker: str | None = None
    host: str | None = None  # where the current attempt runs (fleets)
    instance: str | None = None  # which daemon runs it (fleets: judged by its lease)
    pid: int | None = None
    create_time: float | None = None
    engine: str | None = None
    model: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    sha256: str | None = None
    duration_s: float | None = None
    position_s: float = 0.0
    checkpoint_s: float = 0.0  # end of the last checkpointed segment
    segments: int = 0  # checkpointed segments of the current content
    last_heartbeat_at: str | None = None
    last_progress_at: str | None = None
    heartbeats: int = 0
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    not_before: str | None = None
    cancel_requested: bool = False
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    out_stem: str | None = None
    staged: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    language: str | None = None
    elapsed_s: float | None = None
    done_path: str | None = None
    failed_path: str | None = None
    requeued_from: str | None = None
    orphaned: int = 0

    @property
    def holds_inbox_name(self) -> bool:
        """Taken in place (it stood still, its writer may only have paused): its inbox name stays the job's.

        Such an input is claimed by a hard link, so a writer that appends or reopens the file by
        name writes into the very file being transcribed; the name is released (unlinked) only
        when the job's verdict is final.  A file handed over by rename, or brought back by
        ``spool retry``, leaves its name free.
        """
        return self.settled_by in ("looks", "mtime") and self.requeued_from is None

    @property
    def name(self) -> str:
        return self.source.rsplit("/", 1)[-1]

    @property
    def progress(self) -> float:
        """0..1 share of the audio transcribed (1 once succeeded)."""
        if self.state is JobState.succeeded:
            return 1.0
        if not self.duration_s:
            return 0.0
        return max(0.0, min(1.0, self.position_s / self.duration_s))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(**{**d, "state": JobState(d["state"])})


def apply(job: Job | None, event: ev.Event, *, at: str, version: int) -> Job:
    """Fold one event into a job.  ``at`` is the event's ISO UTC time."""
    allowed = TRANSITIONS.get(event.type)
    if isinstance(event, ev.JobSubmitted):
        if job is not None:
            raise IllegalTransition(job.id, job.state.value, event.type, [])
        return Job(
            id=event.job_id,
            state=JobState.queued,
            version=version,
            source=event.source,
            size=event.size,
            mtime_ns=event.mtime_ns,
            options=dict(event.options),
            options_key=event.options_key,
            sidecar=event.sidecar,
            settled_by=event.settled_by,
            submitted_at=at,
            updated_at=at,
        )
    if job is None:
        raise IllegalTransition("?", "absent", event.type, [ev.JobSubmitted.type])
    if allowed is None or job.state not in allowed:
        raise IllegalTransition(job.id, job.state.value, event.type, [s.value for s in (allowed or ())])
    changes = _changes(job, event, at)
    return replace(job, **changes, version=version, updated_at=at)


def _changes(job: Job, e: ev.Event, at: str) -> dict[str, Any]:  # noqa: C901 - one arm per event
    if isinstance(e, ev.JobStarted):
        return dict(
            state=JobState.running,
            attempts=job.attempts + 1,
            total_attempts=job.total_attempts + 1,
            worker=e.worker,
            host=e.host or None,
            instance=e.instance or None,
            pid=e.pid,
            create_time=e.create_time,
            engine=e.engine,
            model=e.model,
            started_at=at,
            last_heartbeat_at=at,
            last_progress_at=at,
            position_s=e.resume_from,
            not_before=None,
            reason=None,
            message=None,
            exit_code=None,
            signal=None,
        )
    if isinstance(e, ev.JobProbed):
        return dict(sha256=e.sha256, duration_s=e.duration_s, last_progress_at=at)
    if isinstance(e, ev.JobHeartbeat):
        return dict(
            last_heartbeat_at=at,
            heartbeats=job.heartbeats + 1 + e.compacted,
            cpu_percent=e.cpu_percent,
            rss_bytes=e.rss_bytes,
        )
    if isinstance(e, ev.JobProgressed):
        return dict(position_s=e.position_s, duration_s=e.duration_s, last_progress_at=at)
    if isinstance(e, ev.JobSegments):
        return dict(
            checkpoint_s=max(job.checkpoint_s, e.upto_s),
            position_s=max(job.position_s, e.upto_s),
            segments=job.segments + len(e.segments),
            last_progress_at=at,
        )
    if isinstance(e, ev.JobTranscribed):
        return dict(
            state=JobState.publishing,
            out_stem=e.out_stem,
            staged=list(e.outputs),
            language=e.language,
            duration_s=e.duration_s,
            elapsed_s=e.elapsed_s,
            position_s=e.duration_s,
            pid=None,
            create_time=None,
        )
    if isinstance(e, ev.JobDuplicate):
        return dict(
            state=JobState.publishing,
            out_stem=e.out_stem,
            staged=list(e.outputs),
            duplicate_of=e.of_job,
            pid=None,
            create_time=None,
        )
    if isinstance(e, ev.JobSucceeded):
        return dict(
            state=JobState.succeeded,
            outputs=list(e.outputs),
            done_path=e.done_path,
            finished_at=at,
            staged=[],
        )
    if isinstance(e, ev.JobFailed):
        return dict(
            state=JobState.failed if e.final else JobState.retry_wait,
            attempts=job.attempts if e.counted else max(0, job.attempts - 1),
            shutdowns=job.shutdowns + (e.reason == Reason.interrupted),
            reason=e.reason,
            message=e.message,
            exit_code=e.exit_code,
            signal=e.signal,
            pid=None,
            create_time=None,
            worker=None,
            failed_path=e.failed_path if e.final else None,
            finished_at=at if e.final else None,
            not_before=None,
        )
    if isinstance(e, ev.JobRetryScheduled):
        return dict(not_before=e.not_before)
    if isinstance(e, ev.JobOrphaned):
        return dict(orphaned=job.orphaned + 1)
    if isinstance(e, ev.JobAdopted):
        return dict(worker=e.worker, host=e.host, instance=e.instance, pid=None, create_time=None)
    if isinstance(e, ev.JobCancelRequested):
        return dict(cancel_requested=not job.state.terminal)
    if isinstance(e, ev.JobCancelled):
        return dict(
            state=JobState.cancelled,
            reason="cancelled",
            message="cancelled on request",
            pid=None,
            create_time=None,
            worker=None,
            failed_path=e.failed_path,
            finished_at=at,
            cancel_requested=False,
            staged=[],  # a held transcript is dropped with the job, and its outbox name freed
            out_stem=None,
        )
    if isinstance(e, ev.JobRequeued):
        changed = {"options": dict(e.options), "options_key": e.options_key} if e.options is not None else {}
        return dict(
            **changed,
            state=JobState.queued,
            attempts=0,
            reason=None,
            message=None,
            failed_path=None,
            requeued_from=e.from_path,
            finished_at=None,
            not_before=None,
            cancel_requested=False,
        )
    if isinstance(e, ev.JobInputChanged):
        return dict(
            state=JobState.retry_wait,
            not_before=e.not_before,
            size=e.size,
            mtime_ns=e.mtime_ns,
            sha256=None,
            checkpoint_s=0.0,
            position_s=0.0,
            segments=0,
            staged=[],
            out_stem=None,
            pid=None,
            create_time=None,
            worker=None,
            attempts=max(0, job.attempts - 1),
        )
    raise AssertionError(f"no fold arm for {e.type}")  # pragma: no cover - TRANSITIONS guards


def fold(events: list[tuple[ev.Event, str]]) -> Job | None:
    """Fold a whole stream, given as (event, at) pairs in version order."""
    job: Job | None = None
    for version, (event, at) in enumerate(events, start=1):
        job = apply(job, event, at=at, version=version)
    return job
