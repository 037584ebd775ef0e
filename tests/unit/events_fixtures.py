"""Event builders shared by the pure-core tests."""

from __future__ import annotations

from schema import events as ev

AT = "2026-01-01T00:00:00.000000+00:00"


def submitted(job_id: str = "j1", source: str | None = None) -> ev.JobSubmitted:
    """A new job; its source differs per job id (one unfinished job per dropped file)."""
    return ev.JobSubmitted(
        job_id=job_id,
        source=source or f"a/meeting-{job_id}.wav",
        size=10,
        mtime_ns=1,
        options={"formats": ["txt"]},
        options_key="k",
    )


def started(attempt: int = 1) -> ev.JobStarted:
    return ev.JobStarted(attempt=attempt, worker="w1", pid=123, create_time=1.5, engine="test", model="m")


def failed(final: bool, counted: bool = True) -> ev.JobFailed:
    return ev.JobFailed(
        reason="engine_error",
        message="boom",
        retryable=not final,
        final=final,
        attempt=1,
        failed_path="meeting.wav" if final else None,
        counted=counted,
    )


def transcribed() -> ev.JobTranscribed:
    return ev.JobTranscribed(
        out_stem="a/meeting", outputs=["transcript.txt"], language="en", duration_s=5.0, elapsed_s=1.0
    )


def succeeded() -> ev.JobSucceeded:
    return ev.JobSucceeded(outputs=["a/meeting.txt"], done_path="a/meeting.wav")


SAMPLES: dict[str, ev.Event] = {
    "job.started": started(),
    "job.probed": ev.JobProbed(sha256="ab", duration_s=5.0),
    "job.heartbeat": ev.JobHeartbeat(cpu_percent=50.0, rss_bytes=100, position_s=1.0),
    "job.progress": ev.JobProgressed(position_s=2.0, duration_s=5.0),
    "job.segments": ev.JobSegments(segments=[{"start": 0.0, "end": 2.0, "text": "hi"}], upto_s=2.0),
    "job.transcribed": transcribed(),
    "job.duplicate": ev.JobDuplicate(of_job="j0", out_stem="a/meeting", outputs=[]),
    "job.succeeded": succeeded(),
    "job.failed": failed(final=False),
    "job.retry_scheduled": ev.JobRetryScheduled(attempt=2, not_before=AT, delay_s=1.0),
    "job.orphaned": ev.JobOrphaned(reason="daemon_died", pid=1, killed=False),
    "job.adopted": ev.JobAdopted(worker="i2-publish", host="h2", instance="i2", from_instance="i1"),
    "job.cancel_requested": ev.JobCancelRequested(),
    "job.cancelled": ev.JobCancelled(failed_path="meeting.wav"),
    "job.requeued": ev.JobRequeued(from_path="meeting.wav"),
    "job.input_changed": ev.JobInputChanged(size=11, mtime_ns=2, not_before=AT),
}
