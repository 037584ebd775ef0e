"""The event catalogue: every fact spoolscribe records, named in the past tense.

Events are frozen, keyword-only dataclasses holding JSON-able values only, so
the mapper can store them without custom encoders and a replay rebuilds them
bit for bit.  Paths are stored as ``str`` decoded with ``surrogateescape``:
non-UTF-8 file names survive the round trip through JSON (``\\udcXX``
escapes) unchanged.

Stream naming: ``job-<id>`` for one job's life, ``daemon`` for facts about the
daemon, alerts and maintenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

DAEMON_STREAM = "daemon"


def job_stream(job_id: str) -> str:
    return f"job-{job_id}"


def job_id_of(stream: str) -> str | None:
    return stream[4:] if stream.startswith("job-") else None


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events; ``type`` is the stored name, ``class_version`` its shape."""

    type: ClassVar[str] = ""
    class_version: ClassVar[int] = 1


# --- job lifecycle -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JobSubmitted(Event):
    """A settled file in inbox/ became a job; its claim into work/ follows this event."""

    type: ClassVar[str] = "job.submitted"
    class_version: ClassVar[int] = 2  # v2: ticket
    job_id: str
    source: str  # path relative to inbox/
    size: int
    mtime_ns: int
    options: dict[str, Any] = field(default_factory=dict)  # resolved, validated
    options_key: str = ""  # digest of the options that change a transcript
    sidecar: str | None = None  # inbox-relative sidecar moved along with the input
    settled_by: str = "looks"  # rename | mtime (complete on arrival) | looks (stood still settle_s) | special
    ticket: str | None = None  # nonce of the hand-over ticket (spool submit): the submitter knows its job by it


@dataclass(frozen=True, kw_only=True)
class JobStarted(Event):
    """An attempt began on a worker whose identity is recorded before it counts as running."""

    type: ClassVar[str] = "job.started"
    attempt: int
    worker: str
    pid: int
    create_time: float
    engine: str
    model: str
    resume_from: float = 0.0  # seconds of audio already checkpointed
    host: str = ""  # the host of the worker (fleets: liveness is judged by that host's lease)
    instance: str = ""  # the daemon instance that runs it


@dataclass(frozen=True, kw_only=True)
class JobProbed(Event):
    """The worker measured the input: its content hash and its audio duration."""

    type: ClassVar[str] = "job.probed"
    sha256: str
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class JobHeartbeat(Event):
    """The supervisor saw the worker alive: resource use and how far it got."""

    type: ClassVar[str] = "job.heartbeat"
    cpu_percent: float
    rss_bytes: int
    position_s: float
    compacted: int = 0  # heartbeats folded into this one by compaction


@dataclass(frozen=True, kw_only=True)
class JobProgressed(Event):
    """The engine advanced to a new audio position."""

    type: ClassVar[str] = "job.progress"
    position_s: float
    duration_s: float


@dataclass(frozen=True, kw_only=True)
class JobSegments(Event):
    """Finished segments, checkpointed so a retry resumes after ``upto_s``."""

    type: ClassVar[str] = "job.segments"
    segments: list[dict[str, Any]]
    upto_s: float


@dataclass(frozen=True, kw_only=True)
class JobTranscribed(Event):
    """All outputs are staged in work/<job>/out/; publishing them into outbox/ follows."""

    type: ClassVar[str] = "job.transcribed"
    out_stem: str  # outbox-relative path without extension
    outputs: list[str]  # file names staged in work/<job>/out/
    language: str
    duration_s: float
    elapsed_s: float


@dataclass(frozen=True, kw_only=True)
class JobDuplicate(Event):
    """The input's content and options match a finished job: its transcript is reused."""

    type: ClassVar[str] = "job.duplicate"
    of_job: str
    out_stem: str
    outputs: list[str]  # staged copies; empty when the original outputs are reused in place


@dataclass(frozen=True, kw_only=True)
class JobSucceeded(Event):
    """Outputs are in outbox/; the original moved to done/ (or was deleted)."""

    type: ClassVar[str] = "job.succeeded"
    outputs: list[str]  # outbox-relative paths
    done_path: str | None  # done-relative path, None when the policy deletes


@dataclass(frozen=True, kw_only=True)
class JobFailed(Event):
    """An attempt failed.  ``final`` means no retry follows and the input goes to failed/."""

    type: ClassVar[str] = "job.failed"
    reason: str
    message: str
    retryable: bool
    final: bool
    attempt: int
    exit_code: int | None = None
    signal: int | None = None
    failed_path: str | None = None  # failed-relative path when final
    counted: bool = True  # False when the attempt was lost through no fault of the job


@dataclass(frozen=True, kw_only=True)
class JobRetryScheduled(Event):
    """The next attempt may start at ``not_before`` (ISO UTC)."""

    type: ClassVar[str] = "job.retry_scheduled"
    attempt: int  # the attempt that will run next
    not_before: str
    delay_s: float


@dataclass(frozen=True, kw_only=True)
class JobOrphaned(Event):
    """A running attempt lost its supervisor or stopped making progress."""

    type: ClassVar[str] = "job.orphaned"
    reason: str  # daemon_died | dead | hung | pid_mismatch
    pid: int | None
    killed: bool  # whether a process tree was killed for it


@dataclass(frozen=True, kw_only=True)
class JobAdopted(Event):
    """A job publishing its outputs when its daemon's lease ran out is finished by another daemon.

    The transcript is done and staged in the shared spool; only the moves into
    outbox/ and done/ remain.  Recording the new owner fences the old one: if it
    comes back, its ``job.succeeded`` is refused.
    """

    type: ClassVar[str] = "job.adopted"
    worker: str  # the adopting daemon's publishing identity
    host: str
    instance: str
    from_instance: str | None


@dataclass(frozen=True, kw_only=True)
class JobCancelRequested(Event):
    """Someone (usually the CLI) asked for the job to stop."""

    type: ClassVar[str] = "job.cancel_requested"
    by: str = "cli"


@dataclass(frozen=True, kw_only=True)
class JobCancelled(Event):
    """The job stopped on request; its input goes to failed/ with reason ``cancelled``."""

    type: ClassVar[str] = "job.cancelled"
    failed_path: str


@dataclass(frozen=True, kw_only=True)
class JobRequeued(Event):
    """A finished-but-failed job was put back in the queue by hand (``spool retry``)."""

    type: ClassVar[str] = "job.requeued"
    class_version: ClassVar[int] = 2  # v2: options (the engine and model configured at the retry)
    from_path: str | None  # failed-relative path the input is brought back from
    by: str = "cli"
    options: dict[str, Any] | None = None  # the job's options from now on; None: as they were
    options_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobInputChanged(Event):
    """The input's bytes changed while it was being transcribed; the job starts over."""

    type: ClassVar[str] = "job.input_changed"
    size: int
    mtime_ns: int
    not_before: str  # give the writer settle time before the next look


# --- daemon-level facts ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DaemonStarted(Event):
    type: ClassVar[str] = "daemon.started"
    class_version: ClassVar[int] = 2  # v2: settings
    pid: int
    host: str
    instance: str
    version: str
    settings: dict[str, Any] = field(default_factory=dict)  # what decides a job's result (fleets: must agree)


@dataclass(frozen=True, kw_only=True)
class DaemonStopped(Event):
    type: ClassVar[str] = "daemon.stopped"
    pid: int
    instance: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class DaemonLeaseRenewed(Event):
    """A daemon is alive until ``until`` (ISO UTC); renewed at half the lease period (fleets only)."""

    type: ClassVar[str] = "daemon.lease"
    instance: str
    host: str
    pid: int
    until: str


@dataclass(frozen=True, kw_only=True)
class DaemonFolderRecreated(Event):
    """A spool folder (inbox/, outbox/ ...) was missing and the daemon made it again."""

    type: ClassVar[str] = "daemon.folder_recreated"
    folder: str
    instance: str


@dataclass(frozen=True, kw_only=True)
class AlertRaised(Event):
    type: ClassVar[str] = "alert.raised"
    rule: str
    level: str
    metric: str
    value: float
    threshold: float
    message: str


@dataclass(frozen=True, kw_only=True)
class AlertResolved(Event):
    type: ClassVar[str] = "alert.resolved"
    rule: str
    value: float


@dataclass(frozen=True, kw_only=True)
class LogsPruned(Event):
    type: ClassVar[str] = "logs.pruned"
    files: int
    bytes: int


@dataclass(frozen=True, kw_only=True)
class ReportWritten(Event):
    type: ClassVar[str] = "report.written"
    path: str
    status: str


@dataclass(frozen=True, kw_only=True)
class EventsCompacted(Event):
    type: ClassVar[str] = "events.compacted"
    jobs: int
    removed: int
    leases: int = 0  # lease renewals removed (each daemon's last is kept)


@dataclass(frozen=True, kw_only=True)
class NotificationQueued(Event):
    type: ClassVar[str] = "notification.queued"
    key: str  # idempotency key carried to the endpoint
    target: str
    payload: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class NotificationDelivered(Event):
    type: ClassVar[str] = "notification.delivered"
    key: str
    attempts: int


@dataclass(frozen=True, kw_only=True)
class NotificationFailed(Event):
    type: ClassVar[str] = "notification.failed"
    key: str
    attempts: int
    error: str
    final: bool
    not_before: str | None = None


CATALOGUE: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        JobSubmitted,
        JobStarted,
        JobProbed,
        JobHeartbeat,
        JobProgressed,
        JobSegments,
        JobTranscribed,
        JobDuplicate,
        JobSucceeded,
        JobFailed,
        JobRetryScheduled,
        JobOrphaned,
        JobAdopted,
        JobCancelRequested,
        JobCancelled,
        JobRequeued,
        JobInputChanged,
        DaemonStarted,
        DaemonStopped,
        DaemonLeaseRenewed,
        DaemonFolderRecreated,
        AlertRaised,
        AlertResolved,
        LogsPruned,
        ReportWritten,
        EventsCompacted,
        NotificationQueued,
        NotificationDelivered,
        NotificationFailed,
    )
}
